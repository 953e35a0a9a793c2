"""Depth condition: tiny Depth Anything and DPT models made with transformers configs and save_pretrained, loaded
from their directories through AutoModelForDepthEstimation; 8-bit inverse depth at the photo's size. Without a
checkpoint the operator is plainly off and a run leaves it out."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from datagen.batch import SourceImage, WorkBatch
from operators.conditions.depth import Depth, DepthConfig, to_inverse_depth_u8
from pipelines import load_recipe
from pipelines.rehearsal.tiny_vision import make_tiny_dpt
from tests.conftest import load_photo


def _batch(*images, seed=0):
    return WorkBatch(
        "img-00000", {}, seed, "r", items=[SourceImage(f"mem://{i}", f"id{i}", im) for i, im in enumerate(images)]
    )


@pytest.fixture(scope="module")
def tiny_depth_anything(tmp_path_factory):
    from transformers import DepthAnythingConfig, DepthAnythingForDepthEstimation, Dinov2Config, DPTImageProcessor

    torch.manual_seed(0)
    backbone = Dinov2Config(
        hidden_size=16,
        num_hidden_layers=4,
        num_attention_heads=2,
        intermediate_size=32,
        image_size=28,
        patch_size=14,
        out_features=["stage1", "stage2", "stage3", "stage4"],
        reshape_hidden_states=False,
    )
    cfg = DepthAnythingConfig(
        backbone_config=backbone,
        reassemble_hidden_size=16,
        patch_size=14,
        neck_hidden_sizes=[8, 8, 16, 16],
        fusion_hidden_size=8,
        head_hidden_size=8,
    )
    d = tmp_path_factory.mktemp("depth_anything_tiny")
    model = DepthAnythingForDepthEstimation(cfg).eval()
    model.save_pretrained(d)
    processor = DPTImageProcessor(
        size={"height": 56, "width": 56},
        keep_aspect_ratio=True,
        ensure_multiple_of=14,
        image_mean=[0.485, 0.456, 0.406],
        image_std=[0.229, 0.224, 0.225],
    )
    processor.save_pretrained(d)
    return model, processor, str(d)


@pytest.fixture(scope="module")
def tiny_dpt(tmp_path_factory):
    return str(make_tiny_dpt(tmp_path_factory.mktemp("dpt_tiny")))


def test_depth_anything_directory(tiny_depth_anything):
    model, processor, path = tiny_depth_anything
    op = Depth(DepthConfig(checkpoint=path, device="cpu"))
    assert op.unavailable_reason() is None and op.stateful and path in op.describe()
    op.setup()
    photos = [load_photo("astronaut.png", 96), load_photo("chelsea.png", 96), load_photo("astronaut.png", 96)]
    batch = op(_batch(*photos))
    maps = [s.current.target.image for s in batch.samples[::2]]
    assert [m.shape for m in maps] == [p.shape for p in photos] and maps[0].dtype == np.uint8
    assert maps[0].min() == 0 and maps[0].max() == 255 and np.array_equal(maps[0][..., 0], maps[0][..., 2])
    assert np.array_equal(maps[0], maps[2])  # same photo, same map, inside one batch
    with torch.inference_mode():
        pred = model(**processor(images=[photos[0]], return_tensors="pt")).predicted_depth
        pred = F.interpolate(pred[:, None], size=photos[0].shape[:2], mode="bicubic", align_corners=False)[0, 0].numpy()
    assert np.abs(maps[0][..., 0].astype(int) - to_inverse_depth_u8(pred, "inverse_depth").astype(int)).max() <= 1
    assert [s.task for s in batch.samples[:2]] == ["Depth Estimation", "Depth-guided Generation"]


def test_dpt_directory(tiny_dpt):
    op = Depth(DepthConfig(checkpoint=tiny_dpt, device="cpu"))
    op.setup()
    photo = load_photo("coffee.png", 80)
    m = op(_batch(photo)).samples[0].current.target.image
    assert m.shape == photo.shape and m.dtype == np.uint8 and m.max() == 255


def test_inverse_depth_rendering():
    disparity = np.array([[1.0, 2.0], [3.0, 5.0]])
    assert to_inverse_depth_u8(disparity, "inverse_depth").tolist() == [[0, 64], [128, 255]]
    depth = 1.0 / disparity
    assert to_inverse_depth_u8(depth, "depth").tolist() == [[0, 64], [128, 255]]  # near stays bright
    assert to_inverse_depth_u8(np.ones((2, 2)), "inverse_depth").tolist() == [[0, 0], [0, 0]]


def test_without_checkpoint_depth_cannot_run():
    from datagen.probe import check_ops
    from pipelines.images import stages

    op = Depth()
    assert "no depth checkpoint" in op.unavailable_reason()
    recipe = load_recipe(None, ["operators.depth.enabled=true", "operators.grayscale.enabled=true"])
    ops = stages(recipe)  # listed: whether it can run is asked on its workers, before work (datagen.probe)
    assert {"read", "grayscale", "depth"} <= {o.name for o in ops}
    assert "no classical default" in check_ops(ops, 0.0, False)["depth"]
    with pytest.raises(ValueError, match="no depth checkpoint"):
        op.setup()


def test_photos_of_different_sizes_share_a_batch_when_their_inputs_do(tiny_dpt, monkeypatch):
    op = Depth(DepthConfig(checkpoint=tiny_dpt, device="cpu", batch_size=8))
    op.setup()
    photos = [load_photo("coffee.png", 80), load_photo("coffee.png", 96), load_photo("chelsea.png", 90)]
    alone = [op.make_conditions([p], [np.random.default_rng(0)])[0][0] for p in photos]
    calls = []
    real = op._model.forward
    monkeypatch.setattr(op._model, "forward", lambda **kw: (calls.append(kw["pixel_values"].shape[0]), real(**kw))[1])
    together = [m for m, _ in op.make_conditions(photos, [np.random.default_rng(0)] * 3)]
    assert len({p.shape for p in photos}) == 3 and sum(calls) == 3 and len(calls) < 3
    for a, b in zip(alone, together):
        assert a.shape == b.shape and np.abs(a.astype(int) - b).max() <= 1
