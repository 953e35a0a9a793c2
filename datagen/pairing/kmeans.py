"""Spherical K-means with faiss: trained on a seeded sample of the embeddings, then every embedding assigned to its
nearest centroid. Uses faiss's GPU index when faiss has GPUs, faiss-cpu otherwise; K shrinks for small inputs."""
from __future__ import annotations

import logging

import faiss
import numpy as np

log = logging.getLogger(__name__)


def faiss_gpus(mode: str = "auto") -> int:
    """GPUs faiss may use: 0 when off, when faiss is the CPU build, or when none are visible."""
    if mode == "off":
        return 0
    n = faiss.get_num_gpus() if hasattr(faiss, "get_num_gpus") else 0
    if mode == "on" and n == 0:
        log.warning("kmeans.gpu=on but this faiss has no GPU (faiss-cpu, or no visible GPU); using the CPU index")
    return n


def effective_clusters(n_items: int, wanted: int, min_cluster_size: int) -> int:
    """K for `n_items` embeddings: the recipe's K unless that would leave fewer than `min_cluster_size` per cluster."""
    k = max(1, min(wanted, n_items // max(1, min_cluster_size)))
    if k < wanted:
        log.info(
            "K-means: %d clusters asked for %d embeddings; using %d so clusters hold about %d (min_cluster_size)",
            wanted, n_items, k, min_cluster_size,
        )
    return k


def normalize(x: np.ndarray, center: np.ndarray | None = None) -> np.ndarray:
    """float32 rows of unit length, after subtracting `center` when given."""
    x = np.asarray(x, dtype=np.float32)
    if center is not None:
        x = x - center.astype(np.float32)
    n = np.linalg.norm(x, axis=1, keepdims=True)
    return np.ascontiguousarray(x / np.maximum(n, 1e-12), dtype=np.float32)


def train_spherical(x: np.ndarray, k: int, iterations: int = 20, seed: int = 0, gpus: int = 0) -> tuple[np.ndarray, float]:
    """Centroids (k x d, unit length) of unit-length rows `x`, and the final objective (sum of cosine similarities)."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    k = max(1, min(k, len(x)))
    if k == 1:
        c = normalize(x.mean(axis=0, keepdims=True))
        return c, float((x @ c[0]).sum())
    km = faiss.Kmeans(
        x.shape[1],
        k,
        niter=iterations,
        spherical=True,
        seed=int(seed % (2**31 - 1)),
        gpu=gpus if gpus else False,
        max_points_per_centroid=max(1, -(-len(x) // k)),  # we sample ourselves; faiss must not subsample again
        min_points_per_centroid=1,
        verbose=False,
    )
    km.train(x)
    obj = float(km.obj[-1]) if km.obj is not None and len(km.obj) else float("nan")
    return np.ascontiguousarray(km.centroids, dtype=np.float32), obj


class Assigner:
    """Nearest centroid by inner product (cosine for unit rows), on the GPU when available."""

    def __init__(self, centroids: np.ndarray, gpus: int = 0):
        self.index = faiss.IndexFlatIP(centroids.shape[1])
        self.index.add(np.ascontiguousarray(centroids, dtype=np.float32))
        if gpus:
            self.index = faiss.index_cpu_to_all_gpus(self.index)

    def __call__(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(cluster id per row, cosine to that centroid)"""
        sims, ids = self.index.search(np.ascontiguousarray(x, dtype=np.float32), 1)
        return ids[:, 0].astype(np.int64), sims[:, 0]
