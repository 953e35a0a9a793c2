"""Repainting: inpainting masks (4-10 strokes of width <= 100 and length <= 200, or 1-5 boxes of 30-150 px, each kind
half the time) and outpainting masks. The input is the photo blacked out where the mask is 255, the mask travels with
it, and the target is the photo."""

from __future__ import annotations

import numpy as np
import pytest

from datagen import schema
from datagen.batch import SourceImage, WorkBatch
from operators.conditions.masks import (
    BoxParams,
    OutpaintParams,
    StrokeParams,
    box_mask,
    inpaint_mask,
    outpaint_mask,
    stroke_mask,
)
from operators.conditions.repainting import Repainting, RepaintingConfig
from tests.conftest import load_photo


def _batch(*images, seed=0):
    return WorkBatch(
        "img-00000", {}, seed, "r", items=[SourceImage(f"mem://{i}", f"id{i}", im) for i, im in enumerate(images)]
    )


def test_cu_carries_masked_source_mask_and_target():
    photo = load_photo("chelsea.png", 160)
    batch = Repainting()(_batch(photo, seed=2))
    assert [s.task for s in batch.samples] == ["Inpainting", "Outpainting"]
    for s in batch.samples:
        turn = s.current
        assert turn.direction == schema.DIRECTION_EDIT and schema.TASKS[s.task].group == "repainting"
        (inp,) = turn.inputs
        mask = inp.mask
        assert mask is not None and mask.dtype == np.uint8 and set(np.unique(mask)) == {0, 255}
        edit = mask == 255
        assert (inp.image[edit] == 0).all()  # the region to repaint is blanked
        assert np.array_equal(inp.image[~edit], photo[~edit])  # the rest is the photo
        assert np.array_equal(turn.target.image, photo) and turn.target.mask is None
        assert inp.role == schema.ROLE_PHOTO


def test_outpainting_keeps_an_inner_box():
    rng = np.random.default_rng(0)
    for _ in range(30):
        mask, p = outpaint_mask(120, 160, rng, OutpaintParams())
        x, y, w, h = p["keep_box"]
        assert 1 <= len(p["sides"]) <= 4
        assert (mask[y : y + h, x : x + w] == 0).all() and (mask == 0).sum() == w * h
        for side in ("left", "right", "top", "bottom"):
            cut = {"left": x, "right": 160 - x - w, "top": y, "bottom": 120 - y - h}[side]
            if side in p["sides"]:
                assert (0.1 * (160 if side in ("left", "right") else 120)) - 1 <= cut <= 0.3 * 160 + 1
            else:
                assert cut == 0


def test_stroke_and_box_masks_follow_scepter_ranges():
    rng = np.random.default_rng(1)
    for _ in range(40):
        m, p = stroke_mask(256, 256, rng, StrokeParams())
        assert 4 <= p["strokes"] <= 10 and p["max_width"] <= 100 and p["max_length"] <= 200 and m.any()
        m, p = box_mask(256, 256, rng, BoxParams())
        assert 1 <= len(p["boxes"]) <= 5
        for x, y, w, h in p["boxes"]:
            assert 30 <= w <= 150 and 30 <= h <= 150 and (m[y : y + h, x : x + w] == 255).all()
    kinds = [inpaint_mask(64, 64, rng, StrokeParams(), BoxParams(), 0.5)[1]["kind"] for _ in range(200)]
    assert 70 < kinds.count("strokes") < 130  # each kind about half the time


def test_boxes_fit_small_images():
    m, p = box_mask(40, 50, np.random.default_rng(0), BoxParams(size=(30, 150)))
    assert m.shape == (40, 50) and all(x + w <= 50 and y + h <= 40 for x, y, w, h in p["boxes"])


def test_deterministic_and_recorded():
    photos = [load_photo("coffee.png", 96), load_photo("rocket.jpg", 96)]
    a, b = Repainting()(_batch(*photos, seed=3)), Repainting()(_batch(*photos, seed=3))
    for s, t in zip(a.samples, b.samples):
        assert s.key == t.key and np.array_equal(s.current.inputs[0].mask, t.current.inputs[0].mask)
    inpaint = a.samples[0].provenance.params
    assert inpaint["kind"] in ("strokes", "boxes") and "outpaint" not in inpaint and inpaint["stroke_prob"] == 0.5
    assert a.samples[1].provenance.params["kind"] == "outpaint"
    c = Repainting()(_batch(*photos, seed=4))
    assert [s.key for s in c.samples] != [s.key for s in a.samples]


def test_one_task_only_and_validation():
    batch = Repainting(RepaintingConfig(tasks=["Outpainting"]))(_batch(load_photo("coffee.png", 64)))
    assert [s.task for s in batch.samples] == ["Outpainting"]
    with pytest.raises(ValueError):
        RepaintingConfig(tasks=["Inpainting", "Inpainting"])
    with pytest.raises(ValueError):
        OutpaintParams(ratio=(0.2, 0.6))
