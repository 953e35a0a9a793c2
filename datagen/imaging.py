"""Small image helpers the core and the operators share: one way to bring a photo to a working size, so every
stage that says "at most N pixels on the long side" computes the same pixels."""

from __future__ import annotations

import cv2
import numpy as np


def fit_long_side(image: np.ndarray, side: int, upscale: bool = False, min_size: int = 1) -> tuple[np.ndarray, float]:
    """(image resized so its long side is `side`, the scale applied). By default only shrinks: an image already
    within `side` comes back as is, with scale 1. `upscale` also enlarges smaller ones; `min_size` is the smallest
    width or height the result may have. INTER_AREA, sizes rounded: `max(min_size, round(w * scale))`."""
    h, w = image.shape[:2]
    s = side / max(h, w)
    if not upscale:
        s = min(1.0, s)
        if s == 1.0:
            return image, 1.0
    size = (max(min_size, round(w * s)), max(min_size, round(h * s)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA), s
