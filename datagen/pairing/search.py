"""Pass 1 of the two-pass union-find: inside one cluster, link images whose cosine similarity lies in the band,
found with a faiss range or kNN search over that cluster only (never all pairs of the collection).

Always on the CPU, whatever the cluster has: a cluster holds a few thousand rows (an exact search over one costs
a tenth of a second), while a GPU index has no range search (its kNN would link other images than the CPU's for
the same settings) and costs more to build per cluster than the search itself. K-means, where a GPU pays, keeps it."""

from __future__ import annotations

import numpy as np

from datagen.optional import require
from datagen.pairing.band import in_band
from datagen.pairing.config import Band

# faiss compares in float32; ask for a hair below the band so the exact test below decides the edge
_EDGE = 1e-5


def band_links(
    x: np.ndarray, band: Band, mode: str = "range", max_neighbors: int = 16
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Links (i, j, cosine) with i < j among the unit rows `x` of one cluster, cosine in `band`, keeping for each
    image its `max_neighbors` most similar partners in the band."""
    m = len(x)
    empty = (np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, np.float32))
    if m < 2:
        return empty
    faiss = require("faiss")

    x = np.ascontiguousarray(x, dtype=np.float32)
    index = faiss.IndexFlatIP(x.shape[1])
    index.add(x)
    if mode == "range":
        lims, sims, ids = index.range_search(x, float(band.low) - _EDGE)
        rows = np.repeat(np.arange(m, dtype=np.int64), np.diff(lims).astype(np.int64))
        cols = ids.astype(np.int64)
    else:
        # kNN: the band's upper end can hide near-duplicates in the top neighbours, so look a little deeper than
        # max_neighbors
        k = min(m, max_neighbors * 2 + 1)
        sims, ids = index.search(x, k)
        rows = np.repeat(np.arange(m, dtype=np.int64), k)
        cols, sims = ids.reshape(-1).astype(np.int64), sims.reshape(-1)
    keep = (cols >= 0) & (cols != rows) & (sims >= band.low - _EDGE) & (sims <= band.high + _EDGE)
    rows, cols = rows[keep], cols[keep]
    # the exact cosine in float64 decides the band edge, not faiss's float32 arithmetic order
    exact = np.einsum("ij,ij->i", x[rows].astype(np.float64), x[cols].astype(np.float64))
    keep = in_band(exact, band)
    rows, cols, sims = rows[keep], cols[keep], exact[keep].astype(np.float32)
    # the most similar max_neighbors per image, then each undirected link once
    order = np.lexsort((-sims, rows))
    rows, cols, sims = rows[order], cols[order], sims[order]
    rank = np.arange(len(rows)) - np.searchsorted(rows, rows)
    keep = rank < max_neighbors
    rows, cols, sims = rows[keep], cols[keep], sims[keep]
    lo, hi = np.minimum(rows, cols), np.maximum(rows, cols)
    key = lo * m + hi
    _, first = np.unique(key, return_index=True)
    return lo[first], hi[first], sims[first]
