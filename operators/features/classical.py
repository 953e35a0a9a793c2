"""The embedded-default image encoder for pairing: a classical global descriptor that needs no weights and runs on
any CPU. Colour (HSV and Lab histograms) plus layout of gradients (a GIST-like 4x4 grid of orientation energy at two
scales, and a global orientation histogram), each block L2-normalised, concatenated, L2-normalised."""

from __future__ import annotations

from typing import ClassVar

import cv2
import numpy as np
from pydantic import Field

from datagen import placement
from datagen.batch import ITEM_FEATURES
from datagen.imaging import fit_long_side
from datagen.operator import OperatorConfig, Resources
from datagen.pairing.config import Band
from datagen.placement import Batching
from datagen.schema import PhotoFeatures
from operators.features.base import FeatureOperator


class ClassicalFeaturesConfig(OperatorConfig, Batching):
    side: int = Field(192, ge=32, description="images are analysed at this long side")
    grid: int = Field(4, ge=1, description="GIST-like grid cells per side")
    orientations: int = Field(8, ge=2)
    batch_size: int = Field(64, ge=1)


def _sqrt_l1(h: np.ndarray) -> np.ndarray:
    # Hellinger mapping: cosine on square roots of normalised histograms
    return np.sqrt(h / max(float(h.sum()), 1e-12))


def _unit(v: np.ndarray) -> np.ndarray:
    return v / max(float(np.linalg.norm(v)), 1e-12)


def colour_histograms(img: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    hsv = cv2.cvtColor(img, cv2.COLOR_RGB2HSV)
    h1 = cv2.calcHist([hsv], [0, 1, 2], None, [8, 4, 4], [0, 180, 0, 256, 0, 256]).ravel()
    lab = cv2.cvtColor(img, cv2.COLOR_RGB2LAB)
    h2 = cv2.calcHist([lab], [0, 1, 2], None, [6, 6, 6], [0, 256, 0, 256, 0, 256]).ravel()
    return _sqrt_l1(h1), _sqrt_l1(h2)


def gradient_layout(gray: np.ndarray, grid: int, orientations: int) -> np.ndarray:
    """Orientation energy per grid cell at two scales (the spirit of GIST, with gradients instead of Gabor filters)."""
    feats = []
    for scale in (1, 2):
        g = (
            gray
            if scale == 1
            else cv2.resize(gray, (gray.shape[1] // 2, gray.shape[0] // 2), interpolation=cv2.INTER_AREA)
        )
        gx = cv2.Sobel(g, cv2.CV_32F, 1, 0, ksize=3)
        gy = cv2.Sobel(g, cv2.CV_32F, 0, 1, ksize=3)
        mag = np.sqrt(gx * gx + gy * gy)
        bins = np.minimum(((np.arctan2(gy, gx) % np.pi) / np.pi * orientations).astype(np.int64), orientations - 1)
        c = g.shape[0] // grid
        for i in range(grid):
            for j in range(grid):
                sl = (slice(i * c, (i + 1) * c), slice(j * c, (j + 1) * c))
                feats.append(np.bincount(bins[sl].ravel(), mag[sl].ravel(), orientations))
    return _sqrt_l1(np.concatenate(feats))


def orientation_histogram(gray: np.ndarray, bins: int = 16) -> np.ndarray:
    gx = cv2.Sobel(gray, cv2.CV_32F, 1, 0)
    gy = cv2.Sobel(gray, cv2.CV_32F, 0, 1)
    mag = np.sqrt(gx * gx + gy * gy)
    b = np.minimum(((np.arctan2(gy, gx) % np.pi) / np.pi * bins).astype(np.int64), bins - 1)
    return _sqrt_l1(np.bincount(b.ravel(), mag.ravel(), bins))


def classical_descriptor(img: np.ndarray, side: int = 192, grid: int = 4, orientations: int = 8) -> np.ndarray:
    """HxWx3 uint8 RGB -> unit float32 vector (colour 344 + layout 2*grid^2*orientations + 16 dims)."""
    small, _ = fit_long_side(img, side, upscale=True)
    hsv, lab = colour_histograms(small)
    # layout on a square resample: the same scene at another aspect still lands in the same cells
    gray = (
        cv2.resize(cv2.cvtColor(small, cv2.COLOR_RGB2GRAY), (side, side), interpolation=cv2.INTER_AREA).astype(
            np.float32
        )
        / 255.0
    )
    blocks = [hsv, lab, gradient_layout(gray, grid, orientations), orientation_histogram(gray)]
    return _unit(np.concatenate([_unit(b) for b in blocks])).astype(np.float32)


class ClassicalFeatures(FeatureOperator):
    name = "classical_features"
    writes = (
        ITEM_FEATURES["embedding"],
        ITEM_FEATURES["encoder"],
    )
    version = "1"
    Config: ClassVar[type[ClassicalFeaturesConfig]] = ClassicalFeaturesConfig
    # cosines of these non-negative descriptors are all high; centred on the collection mean they spread out
    default_center: ClassVar[bool] = True
    default_band: ClassVar[Band] = Band(low=0.55, high=0.995)

    def resources(self) -> Resources:
        return placement.resources(self.config)

    def describe(self) -> str:
        c = self.config
        return (
            f"classical_features: colour histograms + GIST-like gradient layout (classical, no weights), side {c.side}"
        )

    def compute(self, images: list[np.ndarray]) -> list[PhotoFeatures]:
        c = self.config
        tag = self.describe()
        return [
            PhotoFeatures(embedding=classical_descriptor(im, c.side, c.grid, c.orientations), encoder=tag)
            for im in images
        ]
