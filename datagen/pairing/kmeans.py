"""Spherical K-means with faiss: trained on a seeded sample of the embeddings, then every embedding assigned to its
nearest centroid. faiss's index (on the GPU when faiss has GPUs) proposes the nearest centroids and the exact cosine
decides, so GPU and CPU give the same clusters; K shrinks for small inputs.
faiss is imported where it is used, so that discovering operators stays light."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from datagen import devices
from datagen.optional import require

log = logging.getLogger(__name__)


def faiss_gpus(mode: bool | str = "auto") -> int:
    """GPUs faiss may use: 0 when off, when faiss is the CPU build, or when none are visible."""
    if mode is False or devices.assigned_gpus() == []:  # off, or a Ray task that was given no GPU
        return 0
    faiss = require("faiss")

    n = faiss.get_num_gpus() if hasattr(faiss, "get_num_gpus") else 0
    if mode is True and n == 0:
        log.warning(
            "pairing.kmeans.gpu=true but this faiss has no GPU (faiss-cpu, or no visible GPU); using CPU indexes"
        )
    return n


def effective_clusters(n_items: int, wanted: int, min_cluster_size: int) -> int:
    """K for `n_items` embeddings: the recipe's K unless that would leave fewer than `min_cluster_size` per cluster."""
    k = max(1, min(wanted, n_items // max(1, min_cluster_size)))
    if k < wanted:
        log.info(
            "K-means: %d clusters asked for %d embeddings; using %d so clusters hold about %d (min_cluster_size)",
            wanted,
            n_items,
            k,
            min_cluster_size,
        )
    return k


def normalize(x: np.ndarray, center: np.ndarray | None = None) -> np.ndarray:
    """float32 rows of unit length, after subtracting `center` when given."""
    x = np.asarray(x, dtype=np.float32)
    if center is not None:
        x = x - center.astype(np.float32)
    n = np.linalg.norm(x, axis=1, keepdims=True)
    return np.ascontiguousarray(x / np.maximum(n, 1e-12), dtype=np.float32)


def normalize_inplace(x: np.ndarray, center: np.ndarray | None = None, chunk: int = 8_192) -> np.ndarray:
    """`normalize` without the copies: the same float32 operations (so the same bits) on `x` itself, a chunk
    of rows at a time (the only temporaries are one chunk's squares and norms). `x`: a writable float32 array."""
    if x.dtype != np.float32:
        raise TypeError(f"normalize_inplace needs float32 rows, got {x.dtype}")
    c = None if center is None else center.astype(np.float32)
    for s in range(0, len(x), chunk):
        part = x[s : s + chunk]
        if c is not None:
            part -= c
        part /= np.maximum(np.linalg.norm(part, axis=1, keepdims=True), 1e-12)
    return x


KMEANSPP_MAX_K = 5000  # above this, k-means++ seeding costs more than it gives; faiss's random seeding is used


def kmeanspp_seeds(x: np.ndarray, k: int, rng: np.random.Generator, trials: int | None = None) -> np.ndarray:
    """Greedy k-means++ seeding (as scikit-learn does it) of unit rows `x`: each new seed is the best of `trials`
    candidates drawn with probability proportional to the squared distance to the nearest seed so far."""
    n = len(x)
    trials = trials or 2 + int(np.log(k))
    first = int(rng.integers(n))
    chosen = [first]
    closest = np.maximum(0.0, 2.0 - 2.0 * (x @ x[first])).astype(np.float64)
    for _ in range(1, k):
        pot = closest.sum()
        if pot <= 0:  # fewer distinct points than seeds
            chosen.append(int(rng.integers(n)))
            continue
        cand = np.minimum(np.searchsorted(np.cumsum(closest), rng.random(trials) * pot), n - 1)
        d = np.maximum(0.0, 2.0 - 2.0 * (x @ x[cand].T))
        new = np.minimum(closest[:, None], d)
        best = int(np.argmin(new.sum(axis=0)))
        closest = new[:, best]
        chosen.append(int(cand[best]))
    return np.ascontiguousarray(x[chosen], dtype=np.float32)


CANDIDATES = 4  # nearest centroids the index proposes per row; the exact float64 cosine picks among them
_EXACT_ROWS = 2_048  # rows rescored at a time (rows x CANDIDATES x d float64: 75 MB at d = 1152)
_SUM_ROWS = 16_384  # rows summed into the centroids at a time (float64)
_SPLIT_EPS = 1.0 / 1024.0  # faiss's perturbation when a large cluster is split to fill an empty one


def centroid_index(centroids: np.ndarray, gpus: int = 0) -> Any:
    """A flat inner-product index of the centroids, moved to the GPUs when `gpus` (faiss's GPU index). The one place
    where a GPU enters K-means: training and assignment both search through it, then decide on the CPU."""
    faiss = require("faiss")

    index = faiss.IndexFlatIP(centroids.shape[1])
    index.add(np.ascontiguousarray(centroids, dtype=np.float32))
    if gpus:
        index = faiss.index_cpu_to_all_gpus(index)
    return index


def nearest(x: np.ndarray, centroids: np.ndarray, index: Any) -> tuple[np.ndarray, np.ndarray]:
    """(nearest centroid per row, its cosine) for unit rows `x`. The index (CPU or GPU) only proposes each row's
    CANDIDATES best centroids; the exact float64 cosine on the CPU decides among them (ties: the lowest id). A GPU
    computes its float32 inner products in another order than the CPU, so its own top-1 can differ at near-ties;
    the decision made here does not, so a GPU and a CPU give the same clusters for the same inputs (unless more than
    CANDIDATES centroids lie within float32 rounding of a row's best, which the index's error never reaches)."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    n, k = len(x), len(centroids)
    c = min(CANDIDATES, k)
    _, cand = index.search(x, c)
    cand = np.where(cand < 0, 0, cand).astype(np.int64)  # faiss pads with -1 only when k < c, never here
    c64 = centroids.astype(np.float64)
    ids = np.empty(n, np.int64)
    sims = np.empty(n, np.float64)
    for s in range(0, n, _EXACT_ROWS):
        rows = x[s : s + _EXACT_ROWS].astype(np.float64)
        cs = np.sort(cand[s : s + _EXACT_ROWS], axis=1)  # lowest id first, so argmax breaks ties by id
        exact = np.einsum("nd,ncd->nc", rows, c64[cs])
        best = np.argmax(exact, axis=1)
        ids[s : s + len(rows)] = cs[np.arange(len(rows)), best]
        sims[s : s + len(rows)] = exact[np.arange(len(rows)), best]
    return ids, sims


def _update(x: np.ndarray, ids: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """New unit centroids: the float64 mean of each cluster's rows (summed in row order, so every run adds the same
    numbers in the same order), renormalised. An empty cluster takes half of a large one, as faiss does: the
    large cluster's centroid, perturbed in opposite directions for the two."""
    d = x.shape[1]
    sums = np.zeros((k, d), np.float64)
    for s in range(0, len(x), _SUM_ROWS):
        part = ids[s : s + _SUM_ROWS]
        order = np.argsort(part, kind="stable")
        keys = part[order]
        starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
        sums[keys[starts]] += np.add.reduceat(x[s : s + _SUM_ROWS][order].astype(np.float64), starts, axis=0)
    sizes = np.bincount(ids, minlength=k).astype(np.float64)
    cent = sums / np.maximum(sizes, 1)[:, None]
    for ci in np.flatnonzero(sizes == 0):
        p = np.maximum(sizes - 1, 0)
        cj = int(rng.choice(k, p=p / p.sum())) if p.sum() > 0 else int(rng.integers(k))
        cent[ci] = cent[cj]
        sign = np.where(np.arange(d) % 2 == 0, 1.0, -1.0)
        cent[ci] *= 1 + sign * _SPLIT_EPS
        cent[cj] *= 1 - sign * _SPLIT_EPS
        sizes[ci] = sizes[cj] / 2
        sizes[cj] -= sizes[ci]
    cent /= np.maximum(np.linalg.norm(cent, axis=1, keepdims=True), 1e-12)
    return np.ascontiguousarray(cent, dtype=np.float32)


def train_spherical(
    x: np.ndarray,
    k: int,
    iterations: int = 20,
    seed: int = 0,
    gpus: int = 0,
    init: str = "auto",
    init_size: int = 10_000,
    redo: int = 1,
) -> tuple[np.ndarray, float]:
    """Centroids (k x d, unit length) of unit-length rows `x`, and the objective (sum of cosines to the nearest
    centroid, higher is better) of the best of `redo` runs. init: "kmeans++" (greedy, on `init_size` rows),
    "random" (k distinct rows, seeded), or "auto" (k-means++ up to KMEANSPP_MAX_K clusters).

    Lloyd's iterations, spherical: each assigns every row with `nearest` (the faiss index, on the GPU when `gpus`,
    proposes; the exact cosine on the CPU decides) and moves each centroid to its rows' renormalised float64 mean.
    So the GPU only speeds the search up: a GPU and a CPU train the same centroids for the same inputs."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    k = max(1, min(k, len(x)))
    if k == 1:
        c = normalize(x.mean(axis=0, keepdims=True))
        return c, float((x @ c[0]).sum())

    use_pp = init == "kmeans++" or (init == "auto" and k <= KMEANSPP_MAX_K)
    best: tuple[np.ndarray, float] | None = None
    for r in range(redo):
        rng = np.random.default_rng([seed, r])
        if use_pp:
            sub = (
                x
                if len(x) <= max(init_size, 3 * k)
                else x[rng.choice(len(x), size=max(init_size, 3 * k), replace=False)]
            )
            cent = kmeanspp_seeds(sub, k, rng)
        else:
            cent = np.ascontiguousarray(x[np.sort(rng.choice(len(x), size=k, replace=False))], dtype=np.float32)
        for _ in range(iterations):
            ids, _ = nearest(x, cent, centroid_index(cent, gpus))
            cent = _update(x, ids, k, rng)
        _, sims = nearest(x, cent, centroid_index(cent, gpus))
        obj = float(sims.sum())
        if best is None or obj > best[1]:
            best = (cent, obj)
    assert best is not None
    return best


class Assigner:
    """Nearest centroid by cosine (unit rows): the index proposes on the GPU when available, the exact cosine decides
    (see `nearest`), so every device assigns the same clusters."""

    def __init__(self, centroids: np.ndarray, gpus: int = 0):
        self.centroids = np.ascontiguousarray(centroids, dtype=np.float32)
        self.index = centroid_index(self.centroids, gpus)

    def __call__(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(cluster id per row, cosine to that centroid)"""
        ids, sims = nearest(x, self.centroids, self.index)
        return ids, sims.astype(np.float32)
