"""Spherical K-means with faiss: trained on a seeded sample of the embeddings, then every embedding assigned to its
nearest centroid. Uses faiss's GPU index when faiss has GPUs, faiss-cpu otherwise; K shrinks for small inputs.
faiss is imported where it is used, so that discovering operators stays light."""

from __future__ import annotations

import logging

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
    "random" (faiss's), or "auto" (k-means++ up to KMEANSPP_MAX_K clusters)."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    k = max(1, min(k, len(x)))
    if k == 1:
        c = normalize(x.mean(axis=0, keepdims=True))
        return c, float((x @ c[0]).sum())
    faiss = require("faiss")

    use_pp = init == "kmeans++" or (init == "auto" and k <= KMEANSPP_MAX_K)
    best: tuple[np.ndarray, float] | None = None
    for r in range(redo):
        rng = np.random.default_rng([seed, r])
        km = faiss.Kmeans(
            x.shape[1],
            k,
            niter=iterations,
            spherical=True,
            seed=int((seed + r) % (2**31 - 1)),
            gpu=gpus if gpus else False,
            max_points_per_centroid=max(1, -(-len(x) // k)),  # we sample ourselves; faiss must not subsample again
            min_points_per_centroid=1,
            verbose=False,
        )
        if use_pp:
            sub = (
                x
                if len(x) <= max(init_size, 3 * k)
                else x[rng.choice(len(x), size=max(init_size, 3 * k), replace=False)]
            )
            km.train(x, init_centroids=kmeanspp_seeds(sub, k, rng))
        else:
            km.train(x)
        obj = float(km.obj[-1]) if km.obj is not None and len(km.obj) else float("-inf")
        if best is None or obj > best[1]:
            best = (np.ascontiguousarray(km.centroids, dtype=np.float32), obj)
    assert best is not None
    return best


class Assigner:
    """Nearest centroid by inner product (cosine for unit rows), on the GPU when available."""

    def __init__(self, centroids: np.ndarray, gpus: int = 0):
        faiss = require("faiss")

        self.index = faiss.IndexFlatIP(centroids.shape[1])
        self.index.add(np.ascontiguousarray(centroids, dtype=np.float32))
        if gpus:
            self.index = faiss.index_cpu_to_all_gpus(self.index)

    def __call__(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(cluster id per row, cosine to that centroid)"""
        sims, ids = self.index.search(np.ascontiguousarray(x, dtype=np.float32), 1)
        return ids[:, 0].astype(np.int64), sims[:, 0]
