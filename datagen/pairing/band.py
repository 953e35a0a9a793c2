"""Band membership of scores, with explicit edges: a band is [low, high) unless it says otherwise, so that
"related but not identical" is decided the same way by pass 1, pass 2 and the tests."""

from __future__ import annotations

import numpy as np

from datagen.pairing.config import Band


def in_band(values: np.ndarray | float, band: Band) -> np.ndarray:
    """Boolean mask of `values` inside `band`; NaN (no score) is never inside."""
    v = np.asarray(values, dtype=np.float64)
    lo = v >= band.low if band.include_low else v > band.low
    hi = v <= band.high if band.include_high else v < band.high
    return lo & hi & ~np.isnan(v)
