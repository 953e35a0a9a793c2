"""Grayscale condition (OpenCV luma): analysis = make the photo grayscale; generation = colorize it."""

from __future__ import annotations

import cv2

from operators.conditions.base import ConditionOperator, gray3


class Grayscale(ConditionOperator):
    name = "grayscale"
    condition = "grayscale"
    version = "1"

    def describe(self) -> str:
        return "grayscale: OpenCV RGB->luma (classical)"

    def make_condition(self, image, rng):
        return gray3(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)), {}
