"""Doodle condition: a few coarse hand-drawn strokes that outline the photo's main objects. Dark strokes on white.

With a HED checkpoint: its soft edges through ControlNet's scribble recipe (NMS, blur, binarise), then simplified
to a skeleton without short bits and redrawn with one thick round pen. By default (no weights): the outlines of
the classical object regions (`operators/models/regions.py`, merged coarser than the segmentation map), smoothed,
without
the frame and short bits, redrawn with the same pen. The older classical source, a multi-scale colour gradient
through the scribble recipe, is `edges: gradient`; it draws texture as much as objects (scattered strokes)."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import cv2
import numpy as np
from pydantic import Field, model_validator

from datagen.imaging import fit_long_side
from operators.conditions.base import (
    ClassicalOrModelCondition,
    ModelConditionConfig,
    gray3,
)
from operators.conditions.hed import load_hed, soft_edges

REFERENCE_SIDE = 512  # pixel sizes below are for a 512px image and scale with it
_NMS_KERNELS = [
    np.array(k, np.uint8)
    for k in (
        [[0, 0, 0], [1, 1, 1], [0, 0, 0]],
        [[0, 1, 0], [0, 1, 0], [0, 1, 0]],
        [[1, 0, 0], [0, 1, 0], [0, 0, 1]],
        [[0, 0, 1], [0, 1, 0], [1, 0, 0]],
    )
]


class DoodleConfig(ModelConditionConfig):
    edges: Literal["regions", "gradient"] = Field(
        "regions", description="classical stroke source: object-region outlines or colour gradient"
    )
    region_merge_threshold: float = Field(
        0.4,
        gt=0,
        le=1,
        description="regions: boundaries weaker than this are merged away (coarser than the segmentation map)",
    )
    region_min_fraction: float = Field(
        0.03, ge=0, lt=1, description="regions: regions below this share of the image merge first"
    )
    outline_smoothing: int = Field(
        11, ge=1, description="regions: median filter on the region labels before outlining (px at 512px)"
    )
    gradient_sigmas: list[float] = Field(
        [1.0, 2.0, 4.0], min_length=1, description="classical soft edges: Gaussian scales (px at 512px)"
    )
    gradient_percentile: float = Field(
        98.0, gt=50, le=100, description="classical soft edges: gradient percentile mapped to full strength"
    )
    nms_sigma: float = Field(3.0, gt=0, description="smoothing before non-maximum suppression (ControlNet scribble: 3)")
    nms_threshold: int = Field(110, ge=0, le=255, description="soft-edge strength a stroke must reach")
    blur_sigma: float = Field(2.5, gt=0, description="blur that merges nearby stroke pieces before binarising")
    min_blob_area: int = Field(150, ge=0, description="stroke blobs smaller than this (px at 512px) are dropped")
    min_stroke_length: int = Field(40, ge=0, description="skeleton pieces shorter than this (px at 512px) are dropped")
    pen_radius_range: tuple[float, float] = Field((2.0, 4.0), description="pen radius drawn per image (px at 512px)")

    @model_validator(mode="after")
    def _check_range(self):
        lo, hi = self.pen_radius_range
        if not 0 < lo <= hi:
            raise ValueError(f"pen_radius_range must be (min, max) with 0 < min <= max, got {self.pen_radius_range}")
        return self


def gradient_edges(image: np.ndarray, sigmas: list[float], percentile: float) -> np.ndarray:
    """Classical soft edges: Lab gradient magnitude at several scales, each normalised by a high percentile,
    averaged."""
    scale = max(image.shape[:2]) / REFERENCE_SIDE
    lab = cv2.cvtColor(image, cv2.COLOR_RGB2LAB).astype(np.float32)
    acc = np.zeros(image.shape[:2], np.float32)
    for s in sigmas:
        blurred = cv2.GaussianBlur(lab, (0, 0), s * scale)
        gx = cv2.Sobel(blurred, cv2.CV_32F, 1, 0, ksize=3)
        gy = cv2.Sobel(blurred, cv2.CV_32F, 0, 1, ksize=3)
        mag = np.sqrt((gx * gx + gy * gy).sum(axis=2))
        acc += np.clip(mag / (np.percentile(mag, percentile) + 1e-6), 0, 1)
    return np.clip(acc * (255.0 / len(sigmas)) + 0.5, 0, 255).astype(np.uint8)


def nms(edges: np.ndarray, threshold: int, sigma: float) -> np.ndarray:
    """ControlNet's directional non-maximum suppression: keep pixels that are a maximum along one of 4 directions."""
    x = cv2.GaussianBlur(edges.astype(np.float32), (0, 0), sigma)
    y = np.zeros_like(x)
    for k in _NMS_KERNELS:
        np.putmask(y, cv2.dilate(x, kernel=k) == x, x)
    return np.where(y > threshold, 255, 0).astype(np.uint8)


def _drop_small(binary: np.ndarray, min_area: float) -> np.ndarray:
    n, labels, stats, _ = cv2.connectedComponentsWithStats(binary, connectivity=8)
    small = stats[:, cv2.CC_STAT_AREA] < min_area
    small[0] = False
    if n > 1 and small.any():
        binary = binary.copy()
        binary[small[labels]] = 0
    return binary


def strokes_from_edges(edges: np.ndarray, c: DoodleConfig, pen_radius: float) -> np.ndarray:
    """Soft edges (HxW uint8) -> doodle (HxW uint8, dark strokes on white)."""
    scale = max(edges.shape[:2]) / REFERENCE_SIDE
    d = nms(edges, c.nms_threshold, c.nms_sigma * scale)
    d = cv2.GaussianBlur(d, (0, 0), c.blur_sigma * scale)
    d = np.where(d > 4, 1, 0).astype(np.uint8)
    d = _drop_small(d, c.min_blob_area * scale * scale)
    from skimage.morphology import skeletonize  # imported on first use: keeps operator discovery light

    skeleton = _drop_small(skeletonize(d > 0).astype(np.uint8), c.min_stroke_length * scale)
    r = max(1, int(round(pen_radius * scale)))
    pen = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
    return 255 - cv2.dilate(skeleton * 255, pen)


def region_outlines(image: np.ndarray, c: DoodleConfig, pen_radius: float) -> np.ndarray:
    """Photo -> doodle (HxW uint8, dark strokes on white) from the outlines of its coarse object regions."""
    from skimage.morphology import skeletonize

    from operators.models.regions import REFERENCE_SIDE as REGION_SIDE
    from operators.models.regions import label_boundaries, object_regions

    h, w = image.shape[:2]
    scale = max(h, w) / REFERENCE_SIDE
    small, _ = fit_long_side(image, REGION_SIDE)
    labels = object_regions(small, merge_threshold=c.region_merge_threshold, min_region_fraction=c.region_min_fraction)
    labels = cv2.resize(labels.astype(np.uint16), (w, h), interpolation=cv2.INTER_NEAREST)
    k = max(3, int(round(c.outline_smoothing * scale)) | 1)  # odd; medianBlur takes 16-bit input only up to 5
    labels = (
        cv2.medianBlur(labels.astype(np.uint8), k)
        if labels.max() < 256
        else cv2.medianBlur(labels.astype(np.float32), 5)
    )
    outline = label_boundaries(labels)
    margin = max(1, int(round(4 * scale)))  # the frame is not a stroke
    outline[:margin] = outline[-margin:] = False
    outline[:, :margin] = outline[:, -margin:] = False
    skeleton = skeletonize(cv2.dilate(outline.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0).astype(np.uint8)
    skeleton = _drop_small(skeleton, c.min_stroke_length * 1.5 * scale)
    r = max(2, int(round(pen_radius * scale)))  # a coarse pen even on small images
    pen = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
    return 255 - cv2.dilate(skeleton * 255, pen)


REGION_KEYS = ("region_merge_threshold", "region_min_fraction", "outline_smoothing")
GRADIENT_KEYS = ("gradient_sigmas", "gradient_percentile")


class Doodle(ClassicalOrModelCondition):
    name = "doodle"
    condition = "doodle"
    version = "1"
    Config: ClassVar[type[DoodleConfig]] = DoodleConfig
    classical_keys = ("edges", *REGION_KEYS, *GRADIENT_KEYS)

    def unused_keys(self) -> tuple[str, ...]:
        if self.uses_model:
            return self.classical_keys
        return GRADIENT_KEYS if self.config.edges == "regions" else REGION_KEYS  # the other classical stroke source

    def describe_model(self) -> str:
        c = self.config
        return (
            f"doodle: HED from {c.checkpoint} (model) -> NMS/blur/binarise -> skeleton -> pen radius "
            f"{c.pen_radius_range}"
        )

    def describe_classical(self) -> str:
        c = self.config
        if c.edges == "regions":
            return (
                f"doodle: outlines of classical object regions (merged SLIC, threshold {c.region_merge_threshold}) "
                f"-> skeleton -> pen radius {c.pen_radius_range}"
            )
        return (
            f"doodle: multi-scale Lab gradient sigmas {c.gradient_sigmas} (classical) -> NMS/blur/binarise -> "
            f"skeleton -> pen radius {c.pen_radius_range}"
        )

    def load_model(self, device: str) -> Any:
        return load_hed(self.config.checkpoint, device)

    def _pen_radii(self, rngs: list[np.random.Generator]) -> list[float]:
        return [float(rng.uniform(*self.config.pen_radius_range)) for rng in rngs]

    @staticmethod
    def _drawn(doodles: list[np.ndarray], radii: list[float]) -> list:
        return [(gray3(d), {"pen_radius": round(r, 3)}) for d, r in zip(doodles, radii)]

    def classical_conditions(self, images: list[np.ndarray], rngs: list[np.random.Generator]):
        c = self.config
        radii = self._pen_radii(rngs)
        if c.edges == "regions":
            return self._drawn([region_outlines(im, c, r) for im, r in zip(images, radii)], radii)
        edges = [gradient_edges(im, c.gradient_sigmas, c.gradient_percentile) for im in images]
        return self._drawn([strokes_from_edges(e, c, r) for e, r in zip(edges, radii)], radii)

    def model_conditions(self, images: list[np.ndarray], rngs: list[np.random.Generator]):
        radii = self._pen_radii(rngs)
        edges = soft_edges(self._model, images, self._device)
        return self._drawn([strokes_from_edges(e, self.config, r) for e, r in zip(edges, radii)], radii)
