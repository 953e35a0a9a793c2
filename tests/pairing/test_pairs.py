"""Every pair of a set, capped per set with a seeded choice; the cleaning filters (resolution, aspect,
near-duplicates) decide who may be paired."""

import itertools

import numpy as np

from datagen.pairing.config import CleanConfig
from datagen.pairing.pairs import (
    NEAR_DUPLICATE,
    TOO_ELONGATED,
    TOO_SMALL,
    clean_members,
    n_pairs,
    set_pairs,
    unrank_pairs,
)


def test_unrank_enumerates_pairs_in_order():
    for n in (2, 3, 7, 20):
        i, j = unrank_pairs(np.arange(n_pairs(n)), n)
        assert list(zip(i.tolist(), j.tolist())) == list(itertools.combinations(range(n), 2))


def test_small_set_gives_every_pair():
    i, j = set_pairs(5, cap=50, rng=np.random.default_rng(0))
    assert len(i) == 10 and set(zip(i.tolist(), j.tolist())) == set(itertools.combinations(range(5), 2))


def test_cap_draws_distinct_pairs_seeded():
    i, j = set_pairs(100, cap=50, rng=np.random.default_rng(1))
    pairs = list(zip(i.tolist(), j.tolist()))
    assert len(pairs) == 50 == len(set(pairs))
    assert all(0 <= a < b < 100 for a, b in pairs)
    again = list(zip(*[a.tolist() for a in set_pairs(100, cap=50, rng=np.random.default_rng(1))]))
    other = list(zip(*[a.tolist() for a in set_pairs(100, cap=50, rng=np.random.default_rng(2))]))
    assert again == pairs and other != pairs


def test_cap_scales_to_huge_sets():
    n = 2_000_000  # ~2e12 pairs: never listed
    i, j = set_pairs(n, cap=1000, rng=np.random.default_rng(0))
    assert len(i) == 1000 and (i < j).all() and j.max() < n


def test_cap_is_uniform_over_pairs():
    counts = np.zeros((10, 10))
    for s in range(400):
        i, j = set_pairs(10, cap=9, rng=np.random.default_rng(s))
        counts[i, j] += 1
    upper = counts[np.triu_indices(10, 1)]
    assert upper.min() > 0.5 * upper.mean() and upper.max() < 1.5 * upper.mean()


def test_clean_filters_resolution_aspect_and_near_duplicates():
    width = np.array([800, 100, 1200, 800, 800])
    height = np.array([600, 600, 300, 600, 600])
    rng = np.random.default_rng(0)
    h0 = rng.integers(0, 256, 32, dtype=np.uint8)
    near = h0.copy()
    near[0] ^= 0b111  # 3 bits off: a re-encode
    far = h0.copy()
    far[:4] ^= 0xFF  # 32 bits off: an edit
    hashes = np.stack([h0, h0, h0, near, far])
    skipped: dict[str, int] = {}
    kept = clean_members(
        [0, 1, 2, 3, 4],
        width,
        height,
        hashes,
        CleanConfig(min_side=256, max_aspect=3.0, near_duplicate_bits=6),
        skipped,
    )
    assert kept == [0, 4]
    assert skipped == {TOO_SMALL: 1, TOO_ELONGATED: 1, NEAR_DUPLICATE: 1}
    off = clean_members([0, 3, 4], width, height, hashes, CleanConfig(near_duplicate_bits=-1), {})
    assert off == [0, 3, 4]


def test_a_recoloured_or_blurred_copy_is_not_a_near_duplicate():
    """Same coarse layout (equal dHash) but the encoder tells them apart (cosine below pass 1's upper edge): an
    edit, kept; the same dHash with a cosine above the edge: a copy, dropped."""
    size = np.full(3, 448)
    h = np.random.default_rng(1).integers(0, 256, 32, dtype=np.uint8)
    hashes = np.stack([h, h, h])
    e = np.array([[1.0, 0.0], [0.99, np.sqrt(1 - 0.99**2)], [1.0, 0.0]], np.float32)  # 1: an edit of 0; 2: a copy of 0
    skipped: dict[str, int] = {}
    kept = clean_members([0, 1, 2], size, size, hashes, CleanConfig(near_duplicate_bits=6), skipped, e, 0.995)
    assert kept == [0, 1] and skipped == {NEAR_DUPLICATE: 1}
