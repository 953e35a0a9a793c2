"""Aspect-ratio buckets as ACE sizes its inputs: sides divisible by 16, (H/16)*(W/16) <= a token budget
(1024 at 512px, 4096 at 1024px), aspect ratio at most 4. Every frame of a sample is cropped to one bucket."""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np


@dataclass(frozen=True)
class Bucket:
    height: int
    width: int

    @property
    def aspect(self) -> float:
        return self.width / self.height

    def cells(self, multiple: int) -> int:
        return (self.height // multiple) * (self.width // multiple)


@lru_cache(maxsize=32)
def make_buckets(max_tokens: int, multiple: int = 16, max_aspect: float = 4.0) -> tuple[Bucket, ...]:
    """For each height (in cells) the widest width under the budget, kept when its aspect ratio is allowed.
    Taking the widest width per height spends the whole budget, as a fixed-area bucket list does."""
    out = set()
    for h in range(1, max_tokens + 1):
        w = max_tokens // h
        if w < 1:
            break
        if max(h, w) / min(h, w) <= max_aspect + 1e-9:
            out.add(Bucket(h * multiple, w * multiple))
    if not out:
        raise ValueError(f"no bucket fits max_tokens={max_tokens} with max_aspect={max_aspect}")
    return tuple(sorted(out, key=lambda b: b.aspect))


def nearest_bucket(width: int, height: int, buckets: tuple[Bucket, ...]) -> Bucket:
    """The bucket closest in log aspect ratio (crops the least); ties go to the larger area."""
    if width <= 0 or height <= 0:
        raise ValueError(f"image size must be positive, got {width}x{height}")
    a = math.log(width / height)
    return min(buckets, key=lambda b: (abs(math.log(b.aspect) - a), -b.height * b.width))


def fit_to_bucket(image: np.ndarray, bucket: Bucket, nearest: bool = False) -> np.ndarray:
    """Resize to cover the bucket, then centre-crop. Masks use nearest-neighbour so 255 stays 255."""
    h, w = image.shape[:2]
    s = max(bucket.height / h, bucket.width / w)
    nh, nw = max(bucket.height, round(h * s)), max(bucket.width, round(w * s))
    if (nh, nw) != (h, w):
        interp = cv2.INTER_NEAREST if nearest else (cv2.INTER_AREA if s < 1 else cv2.INTER_CUBIC)
        image = cv2.resize(image, (nw, nh), interpolation=interp)
    top = (nh - bucket.height) // 2
    left = (nw - bucket.width) // 2
    return np.ascontiguousarray(image[top : top + bucket.height, left : left + bucket.width])
