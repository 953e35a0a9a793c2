"""Contour condition: the XDoG default draws dark outlines on white; with a checkpoint the informative-drawings
generator (a tiny one of the same architecture, made here) runs instead, batched, and its output is what is stored."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from datagen.batch import SourceImage, WorkBatch
from datagen.config import ConfigError
from operators.conditions.contour import Contour, ContourConfig
from operators.conditions.informative_drawings import build_generator
from pipelines import load_recipe
from pipelines.rehearsal.tiny_vision import make_tiny_line_generator
from tests.conftest import load_photo


def _batch(*images, seed=0):
    return WorkBatch(
        "img-00000", {}, seed, "r", items=[SourceImage(f"mem://{i}", f"id{i}", im) for i, im in enumerate(images)]
    )


def test_classical_draws_dark_lines_on_white():
    photo = load_photo("camera.png", 128)
    op = Contour()
    assert not op.stateful and "XDoG" in op.describe() and "classical" in op.describe()
    batch = op(_batch(photo))
    drawing = batch.samples[0].current.target.image
    assert drawing.shape == photo.shape and drawing.dtype == np.uint8
    ink = drawing[..., 0] < 128
    assert 0.01 < ink.mean() < 0.4  # lines, not a blank page and not a silhouette
    # lines sit on edges of the photo: ink pixels are near Canny edges far more often than chance
    edges = cv2.dilate(cv2.Canny(cv2.cvtColor(photo, cv2.COLOR_RGB2GRAY), 50, 150), np.ones((5, 5), np.uint8)) > 0
    assert edges[ink].mean() > 2 * edges.mean()
    assert [s.task for s in batch.samples] == ["Contour Extraction", "Contour-guided Generation"]
    assert "xdog" in batch.samples[0].provenance.params and "checkpoint" in batch.samples[0].provenance.params


def test_model_backend_needs_a_checkpoint():
    with pytest.raises(ConfigError, match="operators.contour"):
        load_recipe(None, ["operators.contour.backend=model"])


@pytest.fixture
def tiny_generator(tmp_path):
    path = make_tiny_line_generator(tmp_path / "contour_style" / "netG_A_latest.pth")
    net = build_generator(ngf=8, n_residual_blocks=3).eval()
    net.load_state_dict(torch.load(path, weights_only=True))
    return net, str(path)


def test_model_backend_runs_the_checkpoint(tiny_generator):
    net, path = tiny_generator
    op = Contour(ContourConfig(backend="model", checkpoint=path, device="cpu", batch_size=4))
    assert op.stateful and "informative-drawings contour_style" in op.describe() and path in op.describe()
    assert op.resources().batch_size == 4
    op.setup()
    # two photos of one size share a batch, the third runs alone; all keep their own size
    photos = [load_photo("astronaut.png", 96), load_photo("coffee.png", 96), load_photo("chelsea.png", 80)]
    batch = op(_batch(*photos))
    maps = [s.current.target.image for s in batch.samples[::2]]
    assert [m.shape for m in maps] == [p.shape for p in photos]
    with torch.inference_mode():
        x = cv2.resize(photos[0], (256, 256), interpolation=cv2.INTER_CUBIC).astype(np.float32) / 255.0
        y = net(torch.from_numpy(x).permute(2, 0, 1)[None])[0, 0].numpy()
    expect = np.clip(cv2.resize(y, (96, 96), interpolation=cv2.INTER_LINEAR) * 255 + 0.5, 0, 255).astype(np.uint8)
    assert np.abs(maps[0][..., 0].astype(int) - expect).max() <= 1
    assert "xdog" not in batch.samples[0].provenance.params and batch.samples[0].provenance.params["checkpoint"] == path


def test_model_backend_is_deterministic(tiny_generator):
    _, path = tiny_generator
    photo = load_photo("rocket.jpg", 64)
    runs = []
    for _ in range(2):
        op = Contour(ContourConfig(backend="model", checkpoint=path, device="cpu"))
        op.setup()
        runs.append(op(_batch(photo)).samples[0])
    assert runs[0].key == runs[1].key and np.array_equal(runs[0].current.target.image, runs[1].current.target.image)
