"""The model versions of the synthesized edits on tiny checkpoints of the real architectures, saved at test time and
loaded through the loaders users take: a Stable Diffusion inpainting pipeline (DiffusionPipeline.from_pretrained)
fills removals, replacements and new backgrounds with the photo kept exactly outside the mask; a text-to-image SD
checkpoint becomes an img2img pipeline for style transfer; an OWLv2 detector (AutoModelForZeroShotObjectDetection)
with segment-anything masks proposes objects named after caption nouns."""

from __future__ import annotations

import numpy as np
import pytest

from datagen.batch import SourceImage, WorkBatch
from operators.edits.background_change import BackgroundChange, BackgroundChangeConfig
from operators.edits.diffusion import DiffusionConfig, work_size
from operators.edits.object_proposals import ProposalConfig, Proposer
from operators.edits.proposals import ObjectProposals
from operators.edits.remove_object import InpaintConfig, RemoveObject, RemoveObjectConfig
from operators.edits.replace_object import ReplaceObject, ReplaceObjectConfig
from operators.edits.style_transfer import StyleTransfer, StyleTransferConfig
from operators.instructions.templates import TemplateInstructions
from pipelines.rehearsal.tiny_vision import make_tiny_owlv2, make_tiny_sam, make_tiny_sd
from tests.operators.edits.test_synthesized_edits import check_record, scene


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("edit-models")
    return {
        "inpaint": str(make_tiny_sd(root / "sd-inpainting", inpainting=True)),
        "sd": str(make_tiny_sd(root / "sd", inpainting=False)),
        "owlv2": str(make_tiny_owlv2(root / "owlv2")),
        "sam": str(make_tiny_sam(root / "sam.pth")),
    }


def _batch(img, caption=""):
    batch = WorkBatch("img-00000", {}, 0, "r", items=[SourceImage("mem://0", "id-model", img, caption)])
    return ObjectProposals()(batch)  # the classical proposals, as the images job's stage writes them


def _inpaint(tiny) -> InpaintConfig:
    return InpaintConfig(backend="model", checkpoint=tiny["inpaint"], steps=2, resolution=64)


def test_diffusers_removal_and_replacement_keep_the_photo_outside_the_mask(tiny):
    img = scene(96, 144)
    op = RemoveObject(RemoveObjectConfig(inpaint=_inpaint(tiny), device="cpu"))
    assert op.stateful and "diffusers inpainting" in op.describe()
    batch = TemplateInstructions()(op(_batch(img, "a red ball on grass")))
    assert type(op._inpainter.runner.pipe).__name__ == "StableDiffusionInpaintPipeline"
    rem, add = batch.samples
    mask = rem.current.inputs[0].mask > 0
    out = rem.current.target.image
    assert np.array_equal(out[~mask], img[~mask])  # pasted back exactly
    assert np.abs(out[mask].astype(int) - img[mask].astype(int)).mean() > 10  # the model painted inside
    assert rem.provenance.params["fill"] == "diffusers" and np.array_equal(add.current.target.image, img)
    check_record(rem)
    # replacement is available with a model, and names both objects
    rep = ReplaceObject(ReplaceObjectConfig(inpaint=_inpaint(tiny), device="cpu"))
    assert rep.unavailable_reason() is None
    batch = TemplateInstructions()(rep(_batch(img, "a red ball on grass")))
    (s,) = batch.samples
    emu = check_record(s)
    assert emu["edit"] == "replace" and emu["original_object"] == "the red object in the lower left"
    assert s.provenance.params["new_object"] in s.current.instruction and "the red object" in s.current.instruction
    m = s.current.inputs[0].mask > 0
    assert np.array_equal(s.current.target.image[~m], img[~m])


def test_diffusers_background_and_img2img_style(tiny):
    img = scene(96, 144, radius=0.2)
    bg = BackgroundChange(
        BackgroundChangeConfig(
            backend="model", inpaint=_inpaint(tiny), device="cpu", scenes=["a snowy mountain landscape"]
        )
    )
    batch = TemplateInstructions()(bg(_batch(img, "a red ball on grass")))
    (s,) = batch.samples
    back = s.current.inputs[0].mask > 0
    assert np.array_equal(s.current.target.image[~back], img[~back])  # the foreground is kept
    assert (
        check_record(s)["edited_object"] == "a snowy mountain landscape"
        and "a snowy mountain landscape" in s.current.instruction
    )
    assert BackgroundChange(
        BackgroundChangeConfig(backend="model")
    ).unavailable_reason()  # a model backend needs a checkpoint
    st = StyleTransfer(
        StyleTransferConfig(
            backend="model",
            model=DiffusionConfig(checkpoint=tiny["sd"], steps=2, strength=0.6, resolution=64),
            styles=["an oil painting"],
            styles_per_image=1,
            device="cpu",
        )
    )
    batch = TemplateInstructions()(st(_batch(img, "a red ball on grass")))
    assert (
        type(st._runner.pipe).__name__ == "StableDiffusionImg2ImgPipeline"
    )  # converted from a text-to-image checkpoint
    (s,) = batch.samples
    assert s.current.target.image.shape == img.shape and "an oil painting" in s.current.instruction
    assert check_record(s)["output"] == "an oil painting of a red ball on grass"


def test_open_vocabulary_detector_with_sam_masks(tiny):
    img = scene(80, 120)
    cfg = ProposalConfig(
        backend="model",
        detector=tiny["owlv2"],
        sam_checkpoint=tiny["sam"],
        queries=["bench"],
        min_area=0.001,
        max_area=0.9,
    )
    props = Proposer(cfg, "cpu").propose(img, "a red ball on grass")
    assert props
    for p in props:
        assert p.mask.shape == img.shape[:2] and p.mask.dtype == np.uint8 and 0.001 <= p.area <= 0.9
        assert p.noun in ("red", "ball", "grass", "bench") and p.definite.startswith(f"the {p.noun} ")
        assert p.extra["method"] == "Owlv2ForObjectDetection+sam"
    boxes = Proposer(cfg.model_copy(update={"sam_checkpoint": None}), "cpu").propose(img, "a red ball on grass")
    assert boxes and all(p.extra["method"].endswith("+box") for p in boxes)
    with pytest.raises(ValueError, match="detector"):
        ProposalConfig(backend="model")


def test_work_size_keeps_the_aspect_in_multiples_of_16():
    assert work_size(512, 768, 1024) == (688, 1024)
    assert work_size(1000, 1000, 64) == (64, 64) and all(v % 16 == 0 for v in work_size(333, 901, 1024))


def _shared_recipe(tiny, **proposals):
    from pipelines import build_recipe

    inpaint = {"backend": "model", "checkpoint": tiny["inpaint"], "steps": 2, "resolution": 64}
    detector = {"backend": "model", "detector": tiny["owlv2"], "sam_checkpoint": tiny["sam"], "queries": ["bench"]}
    return build_recipe(
        {
            "operators": {
                "object_proposals": {**detector, "min_area": 0.001, "max_area": 0.9, "device": "cpu", **proposals},
                "remove_object": {"inpaint": inpaint, "device": "cpu"},
                "replace_object": {"inpaint": inpaint, "device": "cpu"},
                "background_change": {
                    "backend": "model",
                    "inpaint": inpaint,
                    "device": "cpu",
                    "min_foreground": 0.001,
                    "max_foreground": 0.99,
                },
                "layers": {"min_foreground": 0.001, "max_foreground": 0.99},
                "subject_reference": {"min_foreground": 0.001, "max_foreground": 0.99},
            }
        }
    )


def test_one_proposal_pass_per_photo_and_one_inpainting_pipeline_serve_every_edit(tiny, monkeypatch):
    """The images job of a recipe with remove, replace, background change, layers and subject references on model
    proposals: the detector and SAM load once, each photo is proposed on once, and the one inpainting pipeline the
    three inpainting makers name loads once in the worker (one actor of their shared pool), its object shared."""
    import diffusers
    import transformers

    from datagen import worker_cache
    from datagen.runtime import _run_stages, setup_stages
    from operators.edits import object_proposals
    from pipelines import images

    loads, proposed = {"pipeline": 0, "detector": 0}, []
    pipe_load = diffusers.DiffusionPipeline.from_pretrained.__func__
    det_load = transformers.AutoModelForZeroShotObjectDetection.from_pretrained.__func__

    def count_pipe(cls, *a, **kw):
        loads["pipeline"] += 1
        return pipe_load(cls, *a, **kw)

    def count_det(cls, *a, **kw):
        loads["detector"] += 1
        return det_load(cls, *a, **kw)

    propose = object_proposals.Proposer.propose

    def count_propose(self, image, caption=""):
        proposed.append(caption)
        return propose(self, image, caption)

    monkeypatch.setattr(diffusers.DiffusionPipeline, "from_pretrained", classmethod(count_pipe))
    monkeypatch.setattr(transformers.AutoModelForZeroShotObjectDetection, "from_pretrained", classmethod(count_det))
    monkeypatch.setattr(object_proposals.Proposer, "propose", count_propose)
    worker_cache.clear()  # the pipeline earlier tests loaded in this process

    stages = [op for op in images.stages(_shared_recipe(tiny)) if op.role.name == "MAKE"]
    names = [op.name for op in stages]
    assert names[:2] == ["object_proposals", "remove_object"]  # one pass, before the first edit that reads it
    inpainters = [op for op in stages if any(m.startswith("diffusers inpaint") for m in op.models())]
    assert [op.name for op in inpainters] == ["remove_object", "replace_object", "background_change"]
    setup_stages(stages)
    photos = [scene(96, 144), scene(96, 144, seed=1, radius=0.2)]
    batch = WorkBatch(
        "img-00000",
        {},
        0,
        "r",
        items=[SourceImage(f"mem://{i}", f"id{i}", im, "a red ball") for i, im in enumerate(photos)],
    )
    batch = _run_stages(stages, batch)
    assert loads == {"pipeline": 1, "detector": 1}
    assert len(proposed) == len(photos)  # once per photo, for five edits
    pipes = {id(op._inpainter.runner.pipe) for op in inpainters}
    assert len(pipes) == 1
    made = {s.provenance.operator for s in batch.samples}
    assert {"remove_object", "replace_object"} <= made
    # the matte edits read the same proposals (the tiny detector's boxes span the photo: their mattes are skipped)
    for name in ("background_change", "layers", "subject_reference"):
        assert batch.stats[name].items_in == len(photos) and sum(batch.stats[name].skipped.values()) == len(photos)
    assert not batch.quarantine
    # every edit records the proposal settings it read, as when each had its own `proposals` key
    for s in batch.samples:
        assert s.provenance.params["proposals"]["detector"] == tiny["owlv2"]


def test_the_plan_puts_the_makers_sharing_a_pipeline_in_one_pool(tiny):
    from datagen.config import RuntimeConfig
    from datagen.jobs import check_stage_order
    from datagen.planning import ClusterShape, plan_wave
    from pipelines import images

    recipe = _shared_recipe(tiny, num_gpus=0.5, device="auto")
    for name in ("remove_object", "replace_object", "background_change"):
        recipe.operators[name] = recipe.operators[name].model_copy(update={"device": "auto", "num_gpus": 1.0})
    stages = images.stages(recipe)
    wave = plan_wave([("images", stages, 8)], RuntimeConfig(), ClusterShape(cpus=8, gpus=2))
    pools = {sp.name: sp for sp in wave.jobs["images"] if sp.kind == "actors"}
    shared = pools["remove_object+replace_object+background_change"]
    assert len(shared.models) == 1 and shared.models[0].startswith("diffusers inpaint ") and shared.num_gpus > 0
    assert "object_proposals" in pools and pools["object_proposals"].models[0].startswith("detector ")
    assert "sharing diffusers inpaint" in wave.table()
    # layers and subject references hold no model of their own any more: they run in tasks
    assert not any("layers" in name for name in pools)
    # an edit that reads proposals with no stage before it to write them is refused before any work
    without = [op for op in stages if op.name != "object_proposals"]
    with pytest.raises(ValueError, match="remove_object reads items.proposals"):
        check_stage_order("images", without, ("entries",))
