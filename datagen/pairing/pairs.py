"""From disjoint sets to pairs: clean each set (resolution, aspect, near-duplicates counted once), then take every
pair inside it, or a seeded choice of `cap` pairs when there are more (sets can be huge; pairs are drawn by index and
never all listed)."""

from __future__ import annotations

import numpy as np

from datagen.pairing.config import CleanConfig

TOO_SMALL = "clean: shorter side below min_side"
TOO_ELONGATED = "clean: aspect ratio above max_aspect"
NEAR_DUPLICATE = "clean: near-duplicate of another image of the set"


def hamming(hashes: np.ndarray, h: np.ndarray) -> np.ndarray:
    """Bits differing between each row of `hashes` (n x bytes, uint8) and `h` (bytes, uint8)."""
    return np.unpackbits(hashes ^ h, axis=1).sum(axis=1)


def clean_members(
    members: list[int],
    width: np.ndarray,
    height: np.ndarray,
    dhash: np.ndarray | None,
    cfg: CleanConfig,
    skipped: dict[str, int],
    embeddings: np.ndarray | None = None,
    same_above: float = 1.0,
) -> list[int]:
    """The members of a set that may be paired, in their given order; what was dropped is counted in `skipped`.
    `dhash`: n x bytes uint8 hashes (rows of zero length mean unknown), or None to skip near-duplicate cleaning.
    `embeddings` (unit rows) and `same_above`: when given, two images are near-duplicates only when their dHashes
    are close and their cosine is at least `same_above` too (pass 1's upper edge): a dHash sees only coarse
    luminance layout, so a recoloured logo or a blurred document would pass for a copy of the original; the
    encoder, which sees colour and fine texture, tells those edits apart from a re-encoded copy."""
    kept = []
    for m in members:
        w, h = int(width[m]), int(height[m])
        if min(w, h) < cfg.min_side:
            skipped[TOO_SMALL] = skipped.get(TOO_SMALL, 0) + 1
        elif max(w, h) / max(1, min(w, h)) > cfg.max_aspect:
            skipped[TOO_ELONGATED] = skipped.get(TOO_ELONGATED, 0) + 1
        else:
            kept.append(m)
    if dhash is None or cfg.near_duplicate_bits < 0 or len(kept) < 2:
        return kept
    reps: list[int] = []
    for m in kept:
        close = hamming(dhash[reps], dhash[m]) <= cfg.near_duplicate_bits if reps else np.zeros(0, bool)
        if embeddings is not None and close.any():
            close &= embeddings[reps].astype(np.float64) @ embeddings[m].astype(np.float64) >= same_above
        if close.any():
            skipped[NEAR_DUPLICATE] = skipped.get(NEAR_DUPLICATE, 0) + 1
            continue
        reps.append(m)
    return reps


def n_pairs(n: int) -> int:
    return n * (n - 1) // 2


def unrank_pairs(k: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Pair indices k (0 .. n(n-1)/2 - 1, pairs (i, j), i < j, in lexicographic order) -> (i, j)."""
    k = np.asarray(k, dtype=np.int64)
    rows = np.arange(n, dtype=np.int64)
    offsets = rows * n - rows * (rows + 1) // 2  # index of the pair (i, i+1)
    i = np.searchsorted(offsets, k, side="right") - 1
    j = k - offsets[i] + i + 1
    return i, j


def set_pairs(n: int, cap: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Every pair of a set of n members, or `cap` of them drawn without replacement by `rng` (positions, i < j)."""
    total = n_pairs(n)
    if total <= cap:
        k = np.arange(total, dtype=np.int64)
    else:
        k = np.sort(rng.choice(total, size=cap, replace=False))
    return unrank_pairs(k, n)
