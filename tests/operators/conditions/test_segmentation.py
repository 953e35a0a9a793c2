"""Segmentation condition: classical object regions (merged SLIC) by default, or plain Felzenszwalb/SLIC; with a
checkpoint, segment-anything's
automatic mask generator on a tiny SAM built from segment_anything.modeling and loaded through the same path
as the published ViT-H/L/B weights (whose sizes the loader reads off the state dict)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from datagen.batch import SourceImage, WorkBatch
from operators.conditions.segmentation import PALETTE, Segmentation, SegmentationConfig, colour_labels, masks_to_labels
from operators.models.sam import sam_architecture
from pipelines.rehearsal.tiny_vision import make_tiny_sam
from tests.conftest import load_photo, object_scene


def _batch(*images, seed=0):
    return WorkBatch(
        "img-00000", {}, seed, "r", items=[SourceImage(f"mem://{i}", f"id{i}", im) for i, im in enumerate(images)]
    )


def _colours(m):
    return {tuple(c) for c in np.unique(m.reshape(-1, 3), axis=0)}


@pytest.mark.parametrize("method", ["regions", "felzenszwalb", "slic"])
def test_classical_colour_map(method):
    photo = load_photo("coffee.png", 128)
    batch = Segmentation(SegmentationConfig(method=method, work_side=64))(_batch(photo))
    s = batch.samples[0]
    m = s.current.target.image
    assert m.shape == photo.shape and m.dtype == np.uint8
    n = s.provenance.params["regions"]
    assert 2 <= n <= 256 and len(_colours(m)) <= n
    # the largest region has the palette's first colour
    values, counts = np.unique(m.reshape(-1, 3), axis=0, return_counts=True)
    assert tuple(values[counts.argmax()]) == tuple(PALETTE[0])
    assert [x.task for x in batch.samples] == ["Image Segmentation", "Segmentation-guided Generation"]
    assert "points_per_side" not in s.provenance.params


def test_regions_follow_objects_not_texture():
    from operators.models.regions import object_regions

    image, objects = object_scene()
    labels = object_regions(image)
    for name, mask in objects.items():
        best = np.bincount(labels[mask]).argmax()  # the region holding most of the object
        region = labels == best
        iou = (region & mask).sum() / (region | mask).sum()
        assert iou > 0.85, (name, iou)
    assert labels.max() + 1 <= 6  # background, disc, square and at most a few shading bands


def test_regions_are_few_on_photos_where_felzenszwalb_fragments():
    photo = load_photo("astronaut.png", 256)
    seg = {m: Segmentation(SegmentationConfig(method=m, work_side=256)) for m in ("regions", "felzenszwalb")}
    regions = {m: int(op.classical_labels(photo).max()) + 1 for m, op in seg.items()}
    assert 4 <= regions["regions"] <= 60
    assert regions["regions"] * 3 < regions["felzenszwalb"], regions


def test_an_image_slic_keeps_whole_is_one_region():
    from operators.models.regions import object_regions

    noise = np.random.default_rng(0).integers(0, 255, (120, 90, 3), dtype=np.uint8)  # SLIC: a single superpixel
    assert not object_regions(noise).any()
    image, params = Segmentation().make_condition(noise, np.random.default_rng(0))
    assert image.shape == noise.shape and params == {"regions": 1}


def test_colour_labels_by_area_rank():
    labels = np.array([[5, 5, 5, 2], [5, 5, 2, 2], [-1, -1, 9, 9]])
    m = colour_labels(labels)
    assert (
        tuple(m[0, 0]) == tuple(PALETTE[0])
        and tuple(m[0, 3]) == tuple(PALETTE[1])
        and tuple(m[2, 3]) == tuple(PALETTE[2])
    )
    assert (m[2, 0] == 0).all()  # uncovered stays black
    masks = [np.zeros((4, 4), bool), np.zeros((4, 4), bool)]
    masks[0][:, :] = True
    masks[1][1:3, 1:3] = True
    lab = masks_to_labels(masks, (4, 4), 256)
    assert lab[0, 0] == 0 and lab[1, 1] == 1  # the small mask is painted on top of the big one


def test_loader_reads_published_sizes():
    from segment_anything.build_sam import build_sam_vit_b, build_sam_vit_h

    with torch.device("meta"):
        vit_h, vit_b = build_sam_vit_h().state_dict(), build_sam_vit_b().state_dict()
    h, b = sam_architecture(vit_h), sam_architecture(vit_b)
    assert (h["embed_dim"], h["depth"], h["num_heads"], h["global_attn_indexes"]) == (1280, 32, 16, [7, 15, 23, 31])
    assert (b["embed_dim"], b["depth"], b["num_heads"], b["global_attn_indexes"]) == (768, 12, 12, [2, 5, 8, 11])
    assert h["img_size"] == 1024 and h["window_size"] == 14 and h["out_chans"] == 256 and h["decoder_mlp_dim"] == 2048


@pytest.fixture
def tiny_sam(tmp_path):
    from operators.models.sam import load_sam

    path = make_tiny_sam(tmp_path / "sam_tiny.pth", seed=0)
    return load_sam(str(path), "cpu"), str(path)


def test_model_backend_paints_sam_masks(tiny_sam):
    from segment_anything import SamAutomaticMaskGenerator

    sam, path = tiny_sam
    knobs = dict(
        points_per_side=6, pred_iou_thresh=0.0, stability_score_thresh=0.0, box_nms_thresh=0.95, min_mask_region_area=0
    )
    op = Segmentation(SegmentationConfig(backend="model", checkpoint=path, device="cpu", **knobs))
    assert op.stateful and "segment-anything" in op.describe()
    op.setup()
    photo = load_photo("astronaut.png", 96)
    batch = op(_batch(photo))
    m = batch.samples[0].current.target.image
    # the same masks from the stock generator on the in-memory model, painted the same way
    records = SamAutomaticMaskGenerator(sam, **knobs).generate(photo)
    assert records
    expect = colour_labels(masks_to_labels([r["segmentation"] for r in records], photo.shape[:2], 256))
    assert np.array_equal(m, expect)
    assert batch.samples[0].provenance.params["regions"] == len(records)
    assert "fz_scale" not in batch.samples[0].provenance.params
