"""The embedded-default pairing encoder: a classical descriptor, unit length, deterministic, named as classical in
its log line, and closer for two views of one scene than for unrelated photos."""

import numpy as np

from datagen.batch import SourceImage, WorkBatch
from datagen.testing import load_photo
from operators.features.classical import ClassicalFeatures, ClassicalFeaturesConfig, classical_descriptor


def test_descriptor_is_unit_length_and_deterministic():
    img = load_photo("coffee.png", 160)
    d = classical_descriptor(img)
    assert d.dtype == np.float32 and d.ndim == 1 and abs(np.linalg.norm(d) - 1) < 1e-5
    assert np.array_equal(d, classical_descriptor(img))
    assert d.shape == (128 + 216 + 2 * 4 * 4 * 8 + 16,)


def test_related_views_are_closer_than_unrelated_photos():
    names = ["motorcycle_left.png", "motorcycle_right.png", "coffee.png", "coins.png", "chelsea.png", "rocket.jpg"]
    x = np.stack([classical_descriptor(load_photo(n, 160)) for n in names])
    x = x - x.mean(axis=0)  # the recipe centres on the collection mean
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    sims = x @ x.T
    stereo = sims[0, 1]
    others = [sims[i, j] for i in range(6) for j in range(i + 1, 6) if (i, j) != (0, 1)]
    assert stereo > max(others) and stereo > 0.55


def test_operator_writes_embeddings_and_says_it_is_classical():
    op = ClassicalFeatures(ClassicalFeaturesConfig(side=96))
    assert "classical" in op.describe() and op.unavailable_reason() is None and not op.stateful
    batch = WorkBatch("feat-00000", {}, 0, "r")
    batch.items = [SourceImage(f"u{i}", f"s{i}", load_photo(n, 96)) for i, n in enumerate(["coffee.png", "coins.png"])]
    out = op(batch)
    assert [len(it.features.embedding) for it in out.items] == [128 + 216 + 256 + 16] * 2
    assert all("classical" in it.features.encoder for it in out.items)
