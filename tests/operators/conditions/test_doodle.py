"""Doodle condition: outlines of classical object regions by default; soft edges (classical Lab gradients, or HED
from a tiny checkpoint of the ControlNetHED layout made
here) become thick, simplified, binary strokes drawn with one pen whose radius is drawn per image."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from datagen.batch import SourceImage, WorkBatch
from operators.conditions.doodle import Doodle, DoodleConfig, gradient_edges, strokes_from_edges
from operators.conditions.hed import architecture_of, build_hed, load_hed, soft_edges
from pipelines.rehearsal.tiny_vision import make_tiny_hed
from tests.conftest import load_photo, object_scene


def _batch(*images, seed=0):
    return WorkBatch(
        "img-00000", {}, seed, "r", items=[SourceImage(f"mem://{i}", f"id{i}", im) for i, im in enumerate(images)]
    )


def test_classical_doodle_is_binary_thick_strokes():
    photo = load_photo("camera.png", 160)
    batch = Doodle()(_batch(photo, seed=4))
    s = batch.samples[0]
    d = s.current.target.image[..., 0]
    assert d.shape == photo.shape[:2] and set(np.unique(d)) <= {0, 255}
    ink = d == 0
    assert 0.005 < ink.mean() < 0.3
    radius = s.provenance.params["pen_radius"]
    assert 2.0 <= radius <= 4.0
    # thick: eroding by a 3x3 square leaves most strokes standing (a 1px line would vanish)
    assert cv2.erode(ink.astype(np.uint8), np.ones((3, 3), np.uint8)).sum() > 0.1 * ink.sum()
    assert [x.task for x in batch.samples] == ["Doodle Extraction", "Doodle-guided Generation"]


def test_default_doodle_outlines_the_objects_in_few_strokes():
    image, objects = object_scene()
    d = Doodle()(_batch(image, seed=2)).samples[0].current.target.image[..., 0]
    ink = d == 0
    outlines = np.zeros(ink.shape, np.uint8)
    for mask in objects.values():
        m = mask.astype(np.uint8)
        outline = cv2.dilate(m, np.ones((3, 3), np.uint8)) - cv2.erode(m, np.ones((3, 3), np.uint8))
        near = cv2.dilate(outline, np.ones((13, 13), np.uint8)) > 0
        assert ink[outline > 0].mean() > 0.8  # the object's outline is drawn
        outlines |= near
    assert ink[outlines == 0].sum() < 0.1 * ink.sum()  # and little else: no strokes for texture or noise
    n, _ = cv2.connectedComponents(ink.astype(np.uint8))
    assert n - 1 <= 4  # a few strokes


def test_gradient_source_still_available():
    photo = load_photo("camera.png", 128)
    s = Doodle(DoodleConfig(edges="gradient"))(_batch(photo, seed=4)).samples[0]
    assert "gradient_sigmas" in s.provenance.params and "region_merge_threshold" not in s.provenance.params
    assert 0.005 < (s.current.target.image[..., 0] == 0).mean() < 0.3


def test_simplification_drops_specks():
    edges = np.zeros((128, 128), np.uint8)
    cv2.line(edges, (10, 64), (118, 64), 255, 3)  # one long edge
    cv2.circle(edges, (20, 20), 1, 255, -1)  # one speck
    d = strokes_from_edges(edges, DoodleConfig(), pen_radius=3.0)
    n, _ = cv2.connectedComponents((d == 0).astype(np.uint8))
    assert n - 1 == 1 and (d[64, 20:110] == 0).all() and d[20, 20] == 255


def test_pen_radius_and_determinism():
    photos = [load_photo("coffee.png", 96), load_photo("chelsea.png", 96)]
    cfg = DoodleConfig(pen_radius_range=(1.0, 6.0))
    a, b = Doodle(cfg)(_batch(*photos, seed=9)), Doodle(cfg)(_batch(*photos, seed=9))
    for s, t in zip(a.samples, b.samples):
        assert s.key == t.key and np.array_equal(s.current.target.image, t.current.target.image)
        assert 1.0 <= s.provenance.params["pen_radius"] <= 6.0


def test_gradient_edges_respond_to_edges():
    img = np.zeros((64, 64, 3), np.uint8)
    img[:, 32:] = 200
    e = gradient_edges(img, [1.0, 2.0], 98.0)
    assert e[32, 31] > 200 and e[32, 5] < 10


def test_bad_pen_range_is_refused():
    with pytest.raises(ValueError, match="pen_radius_range"):
        DoodleConfig(pen_radius_range=(4.0, 2.0))


@pytest.fixture
def tiny_hed(tmp_path):
    path = make_tiny_hed(tmp_path / "ControlNetHED.pth")
    net = build_hed(widths=(4, 8, 8, 8, 8), layers=(2, 2, 3, 3, 3)).eval()
    net.load_state_dict(torch.load(path, weights_only=True))
    return net, str(path)


def test_hed_layout_and_loader(tiny_hed):
    with torch.device("meta"):
        full = build_hed().state_dict()
    assert architecture_of(full) == {"widths": (64, 128, 256, 512, 512), "layers": (2, 2, 3, 3, 3)}
    net, path = tiny_hed
    loaded = load_hed(path, "cpu")
    photo = load_photo("astronaut.png", 64)
    (edge,) = soft_edges(loaded, [photo], "cpu")
    with torch.inference_mode():
        sides = net(torch.from_numpy(photo.astype(np.float32)).permute(2, 0, 1)[None])
    mean = np.mean([cv2.resize(s[0, 0].numpy(), (64, 64), interpolation=cv2.INTER_LINEAR) for s in sides], axis=0)
    expect = np.clip(255.0 / (1.0 + np.exp(-mean)) + 0.5, 0, 255).astype(np.uint8)
    assert edge.shape == (64, 64) and np.abs(edge.astype(int) - expect).max() <= 1


def test_model_backend(tiny_hed):
    _, path = tiny_hed
    op = Doodle(DoodleConfig(backend="model", checkpoint=path, device="cpu", nms_threshold=0))
    assert op.stateful and "HED" in op.describe()
    op.setup()
    photos = [load_photo("rocket.jpg", 80), load_photo("rocket.jpg", 80)]
    batch = op(_batch(*photos, seed=1))
    a = batch.samples[0].current.target.image
    assert a.shape == photos[0].shape and set(np.unique(a)) <= {0, 255}
    assert "gradient_sigmas" not in batch.samples[0].provenance.params
