"""Band edges: [low, high) by default, each edge switchable, NaN never inside; pass 1 applies the band exactly at
its edges even though faiss searches in float32."""

import numpy as np
import pytest

from datagen.pairing.band import in_band
from datagen.pairing.config import Band
from datagen.pairing.search import band_links


def test_default_band_includes_low_and_excludes_high():
    b = Band(low=0.8, high=0.9)
    assert in_band([0.8, 0.85, 0.9, 0.7999999, 0.95], b).tolist() == [True, True, False, False, False]


def test_ace_face_band_is_open_at_both_ends():
    b = Band(low=0.8, high=0.9, include_low=False)
    assert in_band([0.8, 0.8000001, 0.8999999, 0.9], b).tolist() == [False, True, True, False]


def test_closed_high_edge_and_nan():
    b = Band(low=0.0, high=1.0, include_high=True)
    assert in_band([1.0, np.nan, 0.0], b).tolist() == [True, False, True]


def test_band_rejects_low_above_high():
    with pytest.raises(ValueError):
        Band(low=0.9, high=0.8)


def _pair_at(cos: float) -> np.ndarray:
    """Two unit rows in 3-D whose dot product is exactly `cos` (both factors exact in float32)."""
    return np.array([[1.0, 0.0, 0.0], [cos, np.sqrt(1 - cos * cos), 0.0]], np.float32)


@pytest.mark.parametrize("mode", ["range", "knn"])
def test_pass1_links_exactly_at_the_low_edge_but_not_at_the_high_edge(mode):
    x = _pair_at(0.75)
    assert len(band_links(x, Band(low=0.75, high=0.9), mode)[0]) == 1
    assert len(band_links(x, Band(low=0.5, high=0.75), mode)[0]) == 0
    assert len(band_links(x, Band(low=0.5, high=0.75, include_high=True), mode)[0]) == 1
    assert len(band_links(x, Band(low=0.75, high=0.9, include_low=False), mode)[0]) == 0


def test_pass1_matches_brute_force_and_caps_neighbours():
    rng = np.random.default_rng(0)
    base = rng.standard_normal((8, 16))
    x = np.repeat(base, 6, axis=0) + 0.5 * rng.standard_normal((48, 16))
    x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    band = Band(low=0.6, high=0.99)
    sims = x.astype(np.float64) @ x.T.astype(np.float64)
    want = {(i, j) for i in range(48) for j in range(i + 1, 48) if band.low <= sims[i, j] < band.high}
    for mode in ("range", "knn"):
        i, j, s = band_links(x, band, mode, max_neighbors=100)
        assert set(zip(i.tolist(), j.tolist())) == want
        assert np.allclose(s, sims[i, j], atol=1e-6)
        assert (i < j).all()
    i, j, _ = band_links(x, band, "range", max_neighbors=2)
    got = set(zip(i.tolist(), j.tolist()))
    # each image keeps its 2 most similar partners in the band (a link may be chosen from both ends)
    assert got <= want and len(got) <= 2 * 48
    for r in range(48):
        partners = sorted(
            ((sims[r, c], c) for c in range(48) if c != r and (min(r, c), max(r, c)) in want), reverse=True
        )[:2]
        assert all((min(r, c), max(r, c)) in got for _, c in partners)
