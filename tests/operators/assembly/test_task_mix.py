"""Task mix: the recipe's proportions are met inside a partition, over-supplied tasks are cut with a seeded
choice, and the run reports achieved against target."""

import pytest

from datagen.config import ConfigError
from pipelines import load_recipe, run


def _recipe(tmp_path, photo_dir, *extra):
    return load_recipe(
        "tests/tiny_recipe.yaml",
        [
            f"input.path={photo_dir}",
            f"output.dir={tmp_path / 'out'}",
            "runtime.executor=local",
            "runtime.progress=false",
            "input.max_side=96",
            "input.images_per_partition=6",
            "operators.grayscale.enabled=true",
            "operators.canny.enabled=true",
            *extra,
        ],
    )


def test_mix_meets_target_shares(tmp_path, photo_dir):
    r = _recipe(
        tmp_path,
        photo_dir,
        "operators.task_mix.weights={Grayscale: 3, Edge map Extraction: 1}",
        "operators.task_mix.others=drop",
    )
    summary = run(r)
    tasks = summary["tasks"]
    assert set(tasks) == {"Grayscale", "Edge map Extraction"}
    assert tasks["Grayscale"] == 3 * tasks["Edge map Extraction"]
    mix = summary["mix"]
    assert mix["Grayscale"]["target"] == pytest.approx(0.75)
    assert mix["Grayscale"]["achieved"] == pytest.approx(0.75)


def test_mix_is_deterministic(tmp_path, photo_dir):
    args = ["operators.task_mix.weights={Grayscale: 1, Edge map Extraction: 1, Image Colorization: 2}"]
    a = run(_recipe(tmp_path / "a", photo_dir, *args))
    b = run(_recipe(tmp_path / "b", photo_dir, *args))
    assert a["tasks"] == b["tasks"]


def test_unknown_mix_key_is_a_config_error(tmp_path, photo_dir):
    with pytest.raises(ConfigError, match="unknown mix keys"):
        _recipe(tmp_path, photo_dir, "operators.task_mix.weights={Teleport: 1}")


def test_mix_drops_are_rejects_and_a_resumed_run_funnel_still_sums(tmp_path, photo_dir):
    """What the mix cuts is kept in OUT/rejects/ and counted in the funnel; after a kill (markers lost) the resumed
    run's funnel is the uninterrupted one's, made = written + dropped for every task, rejects = dropped."""
    from datagen import paths
    from datagen.shards.reader import read_index

    args = ["operators.task_mix.weights={Grayscale: 1, Edge map Extraction: 1}", "operators.task_mix.others=drop"]
    args += ["input.images_per_partition=2"]
    first = run(_recipe(tmp_path, photo_dir, *args))
    funnel = first["funnel"]
    assert all(f["made"] == f["written"] + sum(f["dropped"].values()) for f in funnel.values())
    assert {t: f["written"] for t, f in funnel.items() if f["written"]} == first["tasks"]
    assert funnel["Image Colorization"]["dropped"] == {"not in mix": funnel["Image Colorization"]["made"]}
    rejected = read_index(tmp_path / "out" / paths.REJECTS_DIR)
    assert rejected.num_rows == first["rejected"] == sum(sum(f["dropped"].values()) for f in funnel.values()) > 0
    assert set(rejected.column("rejected_by").to_pylist()) == {"task_mix"}
    for m in sorted((tmp_path / "out" / paths.PROGRESS_DIR).glob("*.done.json"))[:2]:
        m.unlink()
    again = run(_recipe(tmp_path, photo_dir, *args))
    assert again["invocation"]["partitions_done"] == 2
    assert again["funnel"] == funnel and again["rejected"] == first["rejected"]
    assert read_index(tmp_path / "out" / paths.REJECTS_DIR).num_rows == first["rejected"]
