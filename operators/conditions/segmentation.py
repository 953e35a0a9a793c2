"""Segmentation condition: segment-anything's automatic mask generator (local checkpoint) or, by default, classical
object regions (SLIC superpixels merged across weak boundaries, `operators/models/regions.py`; plain Felzenszwalb or
SLIC
from scikit-image remain as methods), rendered as a colour map: one fixed palette colour per region by area rank, so
the largest region always gets the first colour; pixels no mask covers stay black."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import cv2
import numpy as np
from pydantic import Field

from datagen.imaging import fit_long_side
from operators.conditions.base import (
    ClassicalOrModelCondition,
    ModelConditionConfig,
)

# A fixed, seeded palette: the same region rank has the same colour in every map, which keeps analysis learnable.
PALETTE = np.random.default_rng(20241001).integers(40, 256, size=(256, 3)).astype(np.uint8)
CLASSICAL_KEYS = (
    "method",
    "work_side",
    "merge_threshold",
    "min_region_fraction",
    "fz_scale",
    "fz_sigma",
    "fz_min_size",
    "slic_segments",
    "slic_compactness",
)
SAM_KEYS = (
    "points_per_side",
    "points_per_batch",
    "pred_iou_thresh",
    "stability_score_thresh",
    "box_nms_thresh",
    "min_mask_region_area",
)


class SegmentationConfig(ModelConditionConfig):
    # classical
    # regions: SLIC merged across weak boundaries (follows objects); felzenszwalb / slic: the raw over-segmentations
    method: Literal["regions", "felzenszwalb", "slic"] = "regions"
    work_side: int = Field(
        256, ge=32, description="long side the classical segmentation runs at; labels are scaled back"
    )
    merge_threshold: float = Field(
        0.3, gt=0, le=1, description="regions: boundaries weaker than this (0-1 Lab gradient) are merged away"
    )
    min_region_fraction: float = Field(
        0.02, ge=0, lt=1, description="regions: regions below this share of the image merge first"
    )
    fz_scale: float = Field(100.0, gt=0, description="Felzenszwalb scale (larger: fewer, bigger regions)")
    fz_sigma: float = Field(0.8, ge=0)
    fz_min_size: int = Field(160, ge=1, description="smallest Felzenszwalb region, px at work_side")
    slic_segments: int = Field(100, ge=2)
    slic_compactness: float = Field(10.0, gt=0)
    # segment-anything automatic mask generator (defaults are SAM's, tuned for ViT-H)
    points_per_side: int = Field(32, ge=1)
    points_per_batch: int = Field(64, ge=1)
    pred_iou_thresh: float = Field(0.88, ge=0, le=1)
    stability_score_thresh: float = Field(0.95, ge=0, le=1)
    box_nms_thresh: float = Field(0.7, ge=0, le=1)
    min_mask_region_area: int = Field(100, ge=0)
    max_regions: int = Field(256, ge=1, le=256, description="regions painted, largest first")


def colour_labels(labels: np.ndarray, max_regions: int = 256) -> np.ndarray:
    """HxW int labels (-1 = uncovered) -> HxWx3 colour map; colours by area rank."""
    flat = labels.ravel()
    covered = flat >= 0
    n = int(flat.max()) + 1 if covered.any() else 0
    out = np.zeros((flat.size, 3), np.uint8)
    if n == 0:
        return out.reshape(*labels.shape, 3)
    areas = np.bincount(flat[covered], minlength=n)
    rank = np.empty(n, np.int64)
    rank[np.argsort(-areas, kind="stable")] = np.arange(n)
    lut = np.zeros((n, 3), np.uint8)
    visible = rank < max_regions
    lut[visible] = PALETTE[rank[visible] % len(PALETTE)]
    out[covered] = lut[flat[covered]]
    return out.reshape(*labels.shape, 3)


def masks_to_labels(masks: list[np.ndarray], shape: tuple[int, int], max_regions: int) -> np.ndarray:
    """Boolean masks -> label map: larger masks painted first so that smaller ones on top stay visible."""
    labels = np.full(shape, -1, np.int64)
    order = sorted(range(len(masks)), key=lambda i: -int(masks[i].sum()))[:max_regions]
    for rank, i in enumerate(order):
        labels[masks[i]] = rank
    return labels


class Segmentation(ClassicalOrModelCondition):
    name = "segmentation"
    condition = "segmentation"
    version = "1"
    Config: ClassVar[type[SegmentationConfig]] = SegmentationConfig
    classical_keys = CLASSICAL_KEYS
    model_keys = SAM_KEYS

    def describe_model(self) -> str:
        c = self.config
        return (
            f"segmentation: segment-anything automatic masks from {c.checkpoint}, {c.points_per_side}^2 points (model)"
        )

    def describe_classical(self) -> str:
        c = self.config
        if c.method == "regions":
            return (
                f"segmentation: SLIC superpixels merged across boundaries weaker than {c.merge_threshold} "
                f"at {c.work_side}px (classical object regions)"
            )
        if c.method == "felzenszwalb":
            return f"segmentation: scikit-image Felzenszwalb scale={c.fz_scale} at {c.work_side}px (classical)"
        return f"segmentation: scikit-image SLIC {c.slic_segments} segments at {c.work_side}px (classical)"

    def load_model(self, device: str) -> Any:
        from segment_anything import SamAutomaticMaskGenerator

        from operators.models.sam import load_sam

        c = self.config
        return SamAutomaticMaskGenerator(
            load_sam(c.checkpoint, device),
            points_per_side=c.points_per_side,
            points_per_batch=c.points_per_batch,
            pred_iou_thresh=c.pred_iou_thresh,
            stability_score_thresh=c.stability_score_thresh,
            box_nms_thresh=c.box_nms_thresh,
            min_mask_region_area=c.min_mask_region_area,
        )

    def classical_labels(self, image: np.ndarray) -> np.ndarray:
        from skimage.segmentation import felzenszwalb, slic

        c = self.config
        h, w = image.shape[:2]
        small, _ = fit_long_side(image, c.work_side)
        if c.method == "regions":
            from operators.models.regions import object_regions

            labels = object_regions(small, merge_threshold=c.merge_threshold, min_region_fraction=c.min_region_fraction)
        elif c.method == "felzenszwalb":
            labels = felzenszwalb(small, scale=c.fz_scale, sigma=c.fz_sigma, min_size=c.fz_min_size)
        else:
            labels = slic(small, n_segments=c.slic_segments, compactness=c.slic_compactness, start_label=0)
        if small is not image:
            labels = cv2.resize(labels.astype(np.int32), (w, h), interpolation=cv2.INTER_NEAREST)
        return labels.astype(np.int64)

    def classical_condition(self, image, rng):
        labels = self.classical_labels(image)
        return colour_labels(labels, self.config.max_regions), {"regions": int(labels.max()) + 1}

    def model_condition(self, image, rng):
        c = self.config
        records = self._model.generate(image)
        labels = masks_to_labels([r["segmentation"] for r in records], image.shape[:2], c.max_regions)
        return colour_labels(labels, c.max_regions), {"regions": min(len(records), c.max_regions)}
