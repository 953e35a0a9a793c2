"""Mosaic condition: the photo as flat blocks (area-average down, nearest up). The block size comes from a downsample
ratio drawn per image from 48-96 as in scepter, read at ACE's 1024px training side and scaled to the image."""

from __future__ import annotations

from typing import ClassVar

import cv2
from pydantic import Field, model_validator

from operators.conditions.base import ConditionConfig, ConditionOperator


class MosaicConfig(ConditionConfig):
    ratio_range: tuple[int, int] = Field(
        (48, 96), description="downsample ratio drawn per image (block side in px at reference_side)"
    )
    reference_side: int = Field(
        1024, ge=0, description="long side the ratio refers to; 0 = the ratio is the block side in px"
    )
    min_block: int = Field(2, ge=1)

    @model_validator(mode="after")
    def _check(self):
        lo, hi = self.ratio_range
        if not 1 <= lo <= hi:
            raise ValueError(f"ratio_range must be (min, max) with 1 <= min <= max, got {self.ratio_range}")
        return self


def mosaic(image, block: int):
    h, w = image.shape[:2]
    small = cv2.resize(image, (max(1, round(w / block)), max(1, round(h / block))), interpolation=cv2.INTER_AREA)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_NEAREST)


class Mosaic(ConditionOperator):
    name = "mosaic"
    condition = "mosaic"
    version = "1"
    Config: ClassVar[type[MosaicConfig]] = MosaicConfig

    def describe(self) -> str:
        c = self.config
        ref = f" at {c.reference_side}px" if c.reference_side else " px"
        return f"mosaic: area-average blocks, downsample ratio {c.ratio_range}{ref} (classical)"

    def block_size(self, ratio: int, long_side: int) -> int:
        c = self.config
        block = ratio * long_side / c.reference_side if c.reference_side else ratio
        return max(c.min_block, min(int(round(block)), long_side))

    def make_condition(self, image, rng):
        ratio = int(rng.integers(self.config.ratio_range[0], self.config.ratio_range[1] + 1))
        block = self.block_size(ratio, max(image.shape[:2]))
        return mosaic(image, block), {"ratio": ratio, "block": block}
