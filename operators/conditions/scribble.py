"""Scribble condition: informative-drawings anime_style (local checkpoint) or, by default, XDoG tuned to its look:
denser, crisper lines with tone fills in dark areas, like anime line art."""

from __future__ import annotations

from typing import ClassVar

from operators.conditions.line_drawing import LineDrawingConfig, LineDrawingOperator
from operators.conditions.xdog import XDoGParams


class ScribbleXDoG(XDoGParams):
    # a narrow DoG keeps detail; a positive threshold with a steep ramp fills dark regions with flat tone
    sigma: float = 1.0
    tau: float = 0.98
    epsilon: float = 0.003
    phi: float = 200.0
    smooth: float = 2.0
    min_stroke_area: int = 12


class ScribbleConfig(LineDrawingConfig):
    xdog: ScribbleXDoG = ScribbleXDoG()


class Scribble(LineDrawingOperator):
    name = "scribble"
    condition = "scribble"
    version = "1"
    style = "anime_style"
    Config: ClassVar[type[ScribbleConfig]] = ScribbleConfig
