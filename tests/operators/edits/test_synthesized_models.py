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
    return WorkBatch("img-00000", {}, 0, "r", items=[SourceImage("mem://0", "id-model", img, caption)])


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
