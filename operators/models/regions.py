"""Classical object regions: SLIC superpixels merged across weak boundaries into a few regions that follow objects.

Felzenszwalb's graph segmentation (and SLIC alone) cut a photo into hundreds of pieces along texture and shading.
Here, after an edge-preserving blur, SLIC superpixels are the nodes of scikit-image's region-adjacency graph weighted
by the mean Lab gradient along each shared boundary; hierarchical merging then joins the pair with the weakest
boundary first, until every remaining boundary is at least `merge_threshold` strong. Small regions are merged
sooner (a boundary's weight is scaled down by sqrt(area / min_region_area) of its smaller side), so specks fold into
their surroundings instead of surviving as regions. The segmentation map and the doodle's strokes both use it."""

from __future__ import annotations

import cv2
import numpy as np

from datagen.worker_cache import ItemCache

REFERENCE_SIDE = 256  # the work size that the defaults below are tuned for


def boundary_strength(image: np.ndarray, sigma: float) -> np.ndarray:
    """HxW float64 in [0, 1]: Lab gradient magnitude after a Gaussian blur, normalised by its 99th percentile."""
    lab = cv2.cvtColor(image, cv2.COLOR_RGB2LAB).astype(np.float32)
    blurred = cv2.GaussianBlur(lab, (0, 0), sigma)
    gx = cv2.Sobel(blurred, cv2.CV_32F, 1, 0)
    gy = cv2.Sobel(blurred, cv2.CV_32F, 0, 1)
    magnitude = np.sqrt((gx * gx + gy * gy).sum(axis=2))
    return np.clip(magnitude / (np.percentile(magnitude, 99) + 1e-6), 0, 1).astype(np.float64)


_SUPERPIXELS = ItemCache(8)


def superpixels_of(
    image: np.ndarray, superpixels: int, compactness: float, edge_sigma: float
) -> tuple[np.ndarray, np.ndarray]:
    """(SLIC labels, boundary strength) of the photo after an edge-preserving blur. The segmentation map and the
    doodle start from the same photo at the same size: a small per-process memo keyed by the pixels and the
    parameters computes this once for both (each then merges to its own threshold). Callers must not modify them."""
    from skimage.segmentation import slic

    from datagen.identity import photo_key

    def compute() -> tuple[np.ndarray, np.ndarray]:
        smoothed = cv2.bilateralFilter(image, 9, 40, 7)
        labels = slic(smoothed, n_segments=superpixels, compactness=compactness, start_label=0)
        return labels, boundary_strength(smoothed, edge_sigma)

    key = (photo_key(image), superpixels, compactness, edge_sigma)
    return _SUPERPIXELS.get(key, compute)


def object_regions(
    image: np.ndarray,
    *,
    superpixels: int = 300,
    compactness: float = 15.0,
    edge_sigma: float = 1.5,
    merge_threshold: float = 0.3,
    min_region_fraction: float = 0.02,
) -> np.ndarray:
    """HxWx3 uint8 RGB -> HxW int64 labels 0..n-1 (n small: typically 5-40 on a photo). Deterministic."""
    from skimage import graph
    from skimage.segmentation import relabel_sequential

    superpixel_labels, strength = superpixels_of(image, superpixels, compactness, edge_sigma)
    if superpixel_labels.min() == superpixel_labels.max():
        # SLIC made one superpixel (it does on pure noise): one region; rag_boundary would fail on no boundary
        return np.zeros(superpixel_labels.shape, np.int64)
    rag = graph.rag_boundary(superpixel_labels, strength)
    areas = np.bincount(superpixel_labels.ravel())
    small_area = max(1.0, min_region_fraction * superpixel_labels.size)

    def size_factor(a: float, b: float) -> float:
        return min(1.0, float(np.sqrt(min(a, b) / small_area)))

    for node in rag.nodes:
        rag.nodes[node]["area"] = float(areas[node])
    for u, v, data in rag.edges(data=True):
        data["mean"] = data["weight"]  # rag_boundary's weight: mean boundary strength along the shared border
        data["weight"] = data["mean"] * size_factor(rag.nodes[u]["area"], rag.nodes[v]["area"])

    def weight(g, src, dst, n):
        none = {"mean": 0.0, "count": 0}
        a, b = g[src].get(n, none), g[dst].get(n, none)
        count = a["count"] + b["count"]
        mean = (a["count"] * a["mean"] + b["count"] * b["mean"]) / count
        return {"count": count, "mean": mean, "weight": mean * size_factor(g.nodes[dst]["area"], g.nodes[n]["area"])}

    def merge(g, src, dst):
        g.nodes[dst]["area"] += g.nodes[src]["area"]

    merged = graph.merge_hierarchical(
        superpixel_labels,
        rag,
        thresh=merge_threshold,
        rag_copy=False,
        in_place_merge=True,
        merge_func=merge,
        weight_func=weight,
    )
    return relabel_sequential(merged)[0].astype(np.int64)


def label_boundaries(labels: np.ndarray) -> np.ndarray:
    """HxW bool: pixels whose right or lower neighbour has another label."""
    edges = np.zeros(labels.shape, bool)
    edges[:, 1:] |= labels[:, 1:] != labels[:, :-1]
    edges[1:, :] |= labels[1:, :] != labels[:-1, :]
    return edges
