"""Edits synthesized from one photo, embedded defaults (no weights): saliency-scored object proposals named by colour
and place, OpenCV removal only where the mask is small (and addition as its reverse), classical background filters
behind a GrabCut matte, OpenCV NPR styles, caption-only text-to-image CUs, and layers that fuse back to the photo.
Every sample carries the Emu Edit record, its mask and a schema task; its template instruction names what changes."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from datagen import schema
from datagen.batch import SourceImage, WorkBatch
from datagen.schema import EMU_FIELDS, PARAM_EMU_EDIT, PARAM_SLOTS
from datagen.shards.codec import decode_sample, encode_sample
from operators.assembly.lcu_chains import LcuChains
from operators.edits.background_change import BackgroundChange, BackgroundChangeConfig
from operators.edits.layers import Layers
from operators.edits.object_proposals import (
    ProposalConfig,
    caption_nouns,
    classical_proposals,
    colour_word,
    place_phrase,
)
from operators.edits.proposals import ObjectProposals
from operators.edits.remove_object import TOO_LARGE, InpaintConfig, RemoveObject, RemoveObjectConfig
from operators.edits.replace_object import ReplaceObject
from operators.edits.style_transfer import CLASSICAL_STYLES, StyleTransfer, StyleTransferConfig
from operators.edits.text_to_image import NO_CAPTION, TextToImage
from operators.instructions.templates import TemplateInstructions
from tests.conftest import load_photo


def scene(h: int = 160, w: int = 240, seed: int = 0, radius: float = 0.09) -> np.ndarray:
    """A textured green field with one red disc in the lower left: the disc is the salient object."""
    rng = np.random.default_rng(seed)
    img = np.zeros((h, w, 3), np.uint8)
    img[:] = (60, 140, 70)
    img = np.clip(img.astype(int) + rng.integers(-12, 13, img.shape), 0, 255).astype(np.uint8)
    img = cv2.GaussianBlur(img, (3, 3), 0)
    cv2.circle(img, (int(w * 0.2), int(h * 0.72)), int(h * radius), (220, 30, 30), -1)
    return img


def batch_of(*images: np.ndarray, captions=None, proposals: bool = True) -> WorkBatch:
    """A batch of these photos, each with its object proposals (the object_proposals stage's defaults) unless not."""
    captions = captions or [""] * len(images)
    batch = WorkBatch(
        "img-00000",
        {},
        0,
        "r",
        items=[SourceImage(f"mem://{i}", f"id{i}", im, c) for i, (im, c) in enumerate(zip(images, captions))],
    )
    return ObjectProposals()(batch) if proposals else batch


def check_record(s: schema.Sample) -> dict:
    """The Emu Edit record is complete, the task is the schema's, and the instruction's indicators fit."""
    assert s.task in schema.TASKS
    emu = s.provenance.params[PARAM_EMU_EDIT]
    assert tuple(emu) == EMU_FIELDS and emu["edit"]
    assert s.indicator_problems() == []
    return emu


def test_proposals_find_the_salient_object_and_name_it_by_colour_and_place():
    img = scene()
    props = classical_proposals(img, ProposalConfig())
    assert props, "the red disc is a proposal"
    best = props[0]
    ys, xs = np.nonzero(best.mask)
    assert img[ys, xs, 0].mean() > 150 and 0.01 <= best.area <= 0.6  # the disc, not the field
    assert best.definite == "the red object in the lower left" and best.indefinite == "a red object in the lower left"
    assert place_phrase(0.5, 0.5) == "in the centre" and place_phrase(0.9, 0.1) == "in the upper right"
    assert colour_word(np.array([20, 20, 20])) == "dark" and colour_word(np.array([30, 60, 220])) == "blue"
    assert caption_nouns("a tabby cat looking to the side") == ["tabby", "cat", "side"]
    # the segmentation map's merged regions find it too; a flat photo holds no object
    merged = classical_proposals(img, ProposalConfig(segmentation="regions"))
    assert (
        merged
        and merged[0].definite == "the red object in the lower left"
        and merged[0].extra["method"] == "regions+spectral_residual"
    )
    assert classical_proposals(np.full((120, 120, 3), 128, np.uint8), ProposalConfig()) == []


def test_remove_object_changes_the_mask_only_and_add_object_is_its_reverse():
    img = scene()
    batch = RemoveObject(RemoveObjectConfig())(batch_of(img, captions=["a red ball on grass"]))
    TemplateInstructions()(batch)
    rem, add = batch.samples
    assert (rem.task, add.task) == ("Remove Object", "Add Object")
    mask = rem.current.inputs[0].mask
    assert mask is not None and np.array_equal(mask, add.current.inputs[0].mask)
    inside, outside = mask > 0, mask == 0
    diff = np.abs(rem.current.inputs[0].image.astype(int) - rem.current.target.image.astype(int)).mean(2)
    assert diff[outside].max() == 0 and diff[inside].mean() > 40  # the disc is gone, nothing else moved
    assert np.array_equal(add.current.inputs[0].image, rem.current.target.image) and np.array_equal(
        add.current.target.image, img
    )
    emu_r, emu_a = check_record(rem), check_record(add)
    assert emu_r["original_object"] == "the red object in the lower left" and emu_r["edit"] == "remove"
    assert emu_a["edited_object"] == "a red object in the lower left" and emu_a["edit"] == "add"
    assert "the red object in the lower left" in rem.current.instruction
    assert "a red object in the lower left" in add.current.instruction
    assert rem.provenance.params["fill"] == "opencv_telea"
    # OpenCV inpainting only fills masks small enough to look plausible: a large limit breach is counted, not made
    small = RemoveObject(RemoveObjectConfig(inpaint=InpaintConfig(max_area=0.001)))(batch_of(img))
    assert not small.samples and small.stage("remove_object").skipped[TOO_LARGE] >= 1


def test_style_transfer_names_the_style_and_keeps_the_structure():
    photo = load_photo("astronaut.png", 128)
    batch = StyleTransfer(StyleTransferConfig(styles_per_image=len(CLASSICAL_STYLES)))(batch_of(photo))
    TemplateInstructions()(batch)
    assert sorted(s.provenance.params["style"] for s in batch.samples) == sorted(CLASSICAL_STYLES)
    other = cv2.resize(load_photo("coffee.png", 128), (photo.shape[1], photo.shape[0]))

    def layout(im):  # where the picture has structure: blurred gradient magnitude
        g = cv2.cvtColor(im, cv2.COLOR_RGB2GRAY).astype(np.float32)
        return cv2.GaussianBlur(
            np.hypot(cv2.Sobel(g, cv2.CV_32F, 1, 0), cv2.Sobel(g, cv2.CV_32F, 0, 1)), (0, 0), 3
        ).ravel()

    for s in batch.samples:
        emu = check_record(s)
        name = CLASSICAL_STYLES[s.provenance.params["style"]][0]
        assert emu["edited_object"] == name and name in s.current.instruction
        out = s.current.target.image
        assert out.shape == photo.shape and np.abs(out.astype(int) - photo.astype(int)).mean() > 3  # it changed
        # structure kept: the restyled picture's layout follows the photo's, not another photo's
        kept, unrelated = np.corrcoef(layout(photo), layout(out))[0, 1], np.corrcoef(layout(other), layout(out))[0, 1]
        assert kept > 0.3 and kept > unrelated + 0.25, (s.provenance.params["style"], kept, unrelated)
    assert "cv2.xphoto.oilPainting as an oil painting" in StyleTransfer().describe()


def test_text_to_image_has_no_input_and_survives_the_codec():
    photo = load_photo("coffee.png", 96)
    batch = TextToImage()(batch_of(photo, photo, captions=["a cup of coffee on a saucer", ""]))
    assert len(batch.samples) == 1 and batch.stage("text_to_image").skipped == {NO_CAPTION: 1}
    TemplateInstructions()(batch)
    s = batch.samples[0]
    assert s.current.inputs == [] and s.direction == "text" and schema.TASKS[s.task].group == "text_guided_generation"
    assert "coffee" in s.current.instruction and not schema.indicators(s.current.instruction)
    check_record(s)
    back = decode_sample(encode_sample(s))
    assert back.current.inputs == [] and back.current.instruction == s.current.instruction and back.key == s.key


def test_layers_decompose_and_fuse_back_to_the_photo():
    img = scene(radius=0.2)
    batch = Layers()(batch_of(img))
    TemplateInstructions()(batch)
    tasks = [s.task for s in batch.samples]
    assert tasks == ["Layer Decomposition", "Layer Decomposition", "Layer Fusion"]
    fg_s, bg_s, fuse = batch.samples
    fg, bg = fuse.current.inputs
    alpha = fg.mask > 0
    assert 0.02 < alpha.mean() < 0.2 and np.array_equal(bg.mask, fg.mask)
    # the layers hold the photo exactly: the foreground inside its alpha, the background outside
    rebuilt = np.where(alpha[..., None], fg.image, bg.image)
    assert np.array_equal(rebuilt, fuse.current.target.image) and np.array_equal(rebuilt, img)
    assert np.array_equal(fg_s.current.target.image, fg.image) and np.array_equal(fg_s.current.target.mask, fg.mask)
    assert "foreground layer" in fg_s.current.instruction or "the red object" in fg_s.current.instruction
    assert "{image1}" in fuse.current.instruction and "{image2}" in fuse.current.instruction
    for s in batch.samples:
        check_record(s)
        assert schema.TASKS[s.task].group == "layer_editing"


def test_background_change_keeps_the_foreground():
    img = scene(radius=0.2)
    batch = BackgroundChange(BackgroundChangeConfig(classical=["grayscale"]))(batch_of(img))
    TemplateInstructions()(batch)
    (s,) = batch.samples
    bg = s.current.inputs[0].mask > 0
    out = s.current.target.image
    core = cv2.erode((~bg).astype(np.uint8), np.ones((7, 7), np.uint8)) > 0
    assert np.array_equal(out[core], img[core])  # the foreground is untouched
    far = cv2.erode(bg.astype(np.uint8), np.ones((7, 7), np.uint8)) > 0
    assert np.abs(out[far, 0].astype(int) - out[far, 1].astype(int)).max() <= 1  # the background went grey
    emu = check_record(s)
    assert (
        emu["edited_object"] == "a black-and-white background"
        and s.provenance.params[PARAM_SLOTS]["background"] in s.current.instruction
    )


def test_model_only_makers_say_why_they_are_off_and_configs_name_the_key():
    assert "diffusers inpainting model" in ReplaceObject().unavailable_reason()
    from datagen.config import ConfigError
    from pipelines import build_recipe

    with pytest.raises(ConfigError) as err:
        build_recipe({"operators": {"style_transfer": {"classical": ["cubism"]}}})
    assert "classical" in str(err.value) and "watercolour" in str(err.value)
    with pytest.raises(ConfigError) as err:
        build_recipe({"operators": {"object_proposals": {"min_area": 0.7}}})
    assert "min_area" in str(err.value)


def test_lcu_chains_never_continue_from_a_synthesized_target():
    from operators.conditions.canny import Canny

    img = scene()
    batch = batch_of(img, captions=["a red ball on grass"])
    for op in (Canny(), RemoveObject(), StyleTransfer(), TextToImage(), TemplateInstructions(), LcuChains()):
        op(batch)
    chains = [s for s in batch.samples if s.kind == schema.KIND_LCU]
    assert chains
    for c in chains:
        assert c.turns[0].task not in ("Remove Object", "Style Transfer")
        assert np.array_equal(c.turns[0].target.image, img)


def test_subject_reference_cuts_the_subject_out_onto_a_plain_canvas():
    from operators.edits.subject_reference import SubjectReference

    img = scene(radius=0.2)
    batch = SubjectReference()(batch_of(img, captions=["a red ball on grass"]))
    TemplateInstructions()(batch)
    (s,) = batch.samples
    ref = s.current.inputs[0].image
    assert s.task == "Reference Generation" and np.array_equal(s.current.target.image, img)
    red = (ref[..., 0] > 150) & (ref[..., 1] < 100)
    ys, xs = np.nonzero(red)
    assert abs(xs.mean() - img.shape[1] / 2) < 8 and abs(ys.mean() - img.shape[0] / 2) < 8  # centred
    assert (ref[~red] >= 250).all() or (ref[~red] >= 250).mean() > 0.95  # on white
    check_record(s)
    assert "the main subject" in s.current.instruction and "{image1}" in s.current.instruction


def test_trainer_examples_take_zero_and_two_input_edits():
    """The trainer's example builder takes a text-to-image CU (no input) and a layer fusion CU (two inputs)."""
    from datagen.trainer.buckets import make_buckets, nearest_bucket
    from datagen.trainer.examples import to_example

    img = scene(radius=0.2)
    batch = batch_of(img, captions=["a red ball on grass"])
    for op in (TextToImage(), Layers(), TemplateInstructions()):
        op(batch)
    bucket = nearest_bucket(img.shape[1], img.shape[0], make_buckets(256))
    frames = {s.task: to_example(s, bucket, 4).masks.shape[0] for s in batch.samples}
    assert frames["Text-to-Image"] == 1 and frames["Layer Fusion"] == 3  # the target alone; two layers + target
