"""Contour condition: informative-drawings contour_style (local checkpoint) or, by default, XDoG tuned to its look:
smooth, sparse outlines of the main shapes, little texture."""

from __future__ import annotations

from typing import ClassVar

from operators.conditions.line_drawing import LineDrawingConfig, LineDrawingOperator
from operators.conditions.xdog import XDoGParams


class ContourXDoG(XDoGParams):
    # strong edge-preserving smoothing and a wide DoG keep object outlines and drop texture
    sigma: float = 1.6
    tau: float = 0.99
    epsilon: float = 0.0
    phi: float = 60.0
    smooth: float = 4.0
    min_stroke_area: int = 30


class ContourConfig(LineDrawingConfig):
    xdog: ContourXDoG = ContourXDoG()


class Contour(LineDrawingOperator):
    name = "contour"
    condition = "contour"
    version = "1"
    style = "contour_style"
    Config: ClassVar[type[ContourConfig]] = ContourConfig
