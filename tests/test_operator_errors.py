"""An operator that raises on one input does not take its partition down: the stage is retried item by item,
the failing input is quarantined with the error, and every other input's samples are kept."""

import numpy as np
import pyarrow.parquet as pq

from datagen.batch import WorkBatch
from datagen.runtime import Job, execute_local, run_stage
from operators.conditions.grayscale import Grayscale
from pipelines import load_recipe
from pipelines.images import plan, stages


class GrayscaleThatFailsOnGrayPhotos(Grayscale):
    """A real grayscale operator that raises on one kind of input (photos already gray), as a buggy one would."""

    def make_condition(self, image, rng):
        if np.array_equal(image[..., 0], image[..., 1]):
            raise ValueError("already gray")
        return super().make_condition(image, rng)


def test_failing_item_is_quarantined_and_the_rest_kept(tmp_path, photo_dir):
    recipe = load_recipe(
        "tests/tiny_recipe.yaml",
        [
            f"input.path={photo_dir}",
            f"output.dir={tmp_path}",
            "input.images_per_partition=8",
            "operators.canny.enabled=false",
            "operators.lcu_chains.enabled=false",
        ],
    )
    ops = [GrayscaleThatFailsOnGrayPhotos(op.config) if op.name == "grayscale" else op for op in stages(recipe)]
    job = Job("images", plan(recipe, tmp_path), ops, tmp_path, recipe.output, recipe.seed, recipe.fingerprint())
    [result] = list(execute_local(job))
    q = pq.read_table(tmp_path / "_quarantine" / "img-00000.parquet").to_pylist()
    assert q, "the gray photos should have been quarantined"
    assert all(
        r["reason"] == "operator_error" and "already gray" in r["detail"] and r["stage"] == "grayscale" for r in q
    )
    n_photos = len(list(photo_dir.iterdir()))
    assert result["items"] == n_photos - len(q)
    assert result["samples"] == 2 * (n_photos - len(q))


def test_sample_stage_errors_are_isolated_per_sample(photo):
    from datagen.batch import SourceImage
    from operators.instructions.templates import TemplateInstructions

    class Flaky(TemplateInstructions):
        name = "flaky_instructions"

        def process(self, batch):
            if any(s.task == "Image Colorization" for s in batch.samples):
                raise RuntimeError("cannot phrase colorization")
            return super().process(batch)

    batch = WorkBatch("img-00000", {}, seed=0, recipe="r")
    batch.items = [SourceImage("file:///a.png", "sid", photo)]
    batch = Grayscale()(batch)
    batch = run_stage(Flaky(), batch)
    assert [s.task for s in batch.samples] == ["Grayscale"]
    assert [q.reason for q in batch.quarantine] == ["operator_error"]
    assert np.all([s.current.instruction for s in batch.samples])
