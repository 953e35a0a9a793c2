"""Canny edge condition (OpenCV), thresholds 100/200 as in ACE, or drawn per image from ranges."""

from __future__ import annotations

from typing import ClassVar

import cv2
from pydantic import model_validator

from operators.conditions.base import ConditionConfig, ConditionOperator, gray3


class CannyConfig(ConditionConfig):
    low: int = 100
    high: int = 200
    random_thresholds: bool = False
    low_range: tuple[int, int] = (50, 150)  # used when random_thresholds
    high_range: tuple[int, int] = (150, 300)
    blur_sigma: float = 0.0  # optional Gaussian pre-blur against texture noise

    @model_validator(mode="after")
    def _check(self):
        if not 0 <= self.low < self.high:
            raise ValueError(f"need 0 <= low < high, got low={self.low} high={self.high}")
        if self.low_range[0] > self.low_range[1] or self.high_range[0] > self.high_range[1]:
            raise ValueError("ranges must be (min, max) with min <= max")
        return self


class Canny(ConditionOperator):
    name = "canny"
    condition = "canny"
    version = "1"
    Config: ClassVar[type[CannyConfig]] = CannyConfig

    def describe(self) -> str:
        c = self.config
        th = f"random low {c.low_range} high {c.high_range}" if c.random_thresholds else f"{c.low}/{c.high}"
        return f"canny: OpenCV Canny, thresholds {th} (classical)"

    def make_condition(self, image, rng):
        c = self.config
        if c.random_thresholds:
            low = int(rng.integers(c.low_range[0], c.low_range[1] + 1))
            high = int(rng.integers(max(low + 1, c.high_range[0]), max(low + 2, c.high_range[1] + 1)))
        else:
            low, high = c.low, c.high
        gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
        if c.blur_sigma > 0:
            gray = cv2.GaussianBlur(gray, (0, 0), c.blur_sigma)
        return gray3(cv2.Canny(gray, low, high)), {"low": low, "high": high}
