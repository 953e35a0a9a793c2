"""Mosaic condition: flat blocks whose size follows the drawn 48-96 ratio, scaled from ACE's 1024px side."""

from __future__ import annotations

import numpy as np

from datagen.batch import SourceImage, WorkBatch
from operators.conditions.mosaic import Mosaic, MosaicConfig, mosaic
from tests.conftest import load_photo


def _batch(*images, seed=0):
    return WorkBatch(
        "img-00000", {}, seed, "r", items=[SourceImage(f"mem://{i}", f"id{i}", im) for i, im in enumerate(images)]
    )


def test_blocks_are_flat_and_sized_by_ratio():
    photo = load_photo("chelsea.png", 160)
    batch = Mosaic()(_batch(photo, seed=1))
    s = batch.samples[0]
    p = s.provenance.params
    assert 48 <= p["ratio"] <= 96
    assert p["block"] == max(2, round(p["ratio"] * 160 / 1024))
    m = s.current.target.image
    assert m.shape == photo.shape and m.dtype == np.uint8
    # a mosaic has far fewer distinct colours than the photo: about one per block
    n_blocks = round(m.shape[0] / p["block"]) * round(m.shape[1] / p["block"])
    assert len(np.unique(m.reshape(-1, 3), axis=0)) <= n_blocks
    assert [x.task for x in batch.samples] == ["Mosaic", "Image Demosaicing"]


def test_fixed_block_when_reference_side_is_zero():
    photo = load_photo("coffee.png", 96)
    op = Mosaic(MosaicConfig(ratio_range=(16, 16), reference_side=0))
    m, p = op.make_condition(photo, np.random.default_rng(0))
    assert p == {"ratio": 16, "block": 16}
    assert np.array_equal(m, mosaic(photo, 16))
    block = m[:16, :16].reshape(-1, 3)
    assert (block == block[0]).all()


def test_deterministic_for_a_seed():
    photos = [load_photo(n, 64) for n in ("astronaut.png", "rocket.jpg")]
    a, b = Mosaic()(_batch(*photos, seed=7)), Mosaic()(_batch(*photos, seed=7))
    assert [s.key for s in a.samples] == [s.key for s in b.samples]
    assert all(np.array_equal(s.current.target.image, t.current.target.image) for s, t in zip(a.samples, b.samples))
