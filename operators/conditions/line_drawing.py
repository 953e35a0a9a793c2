"""The shared operator behind contour and scribble: an informative-drawings generator from a local checkpoint, or
the classical XDoG default tuned to the same look. Both give dark lines on white."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from pydantic import Field

from operators.conditions.base import (
    ClassicalOrModelCondition,
    ModelConditionConfig,
    gray3,
)
from operators.conditions.informative_drawings import MODEL_SIDE, draw_lines, load_generator
from operators.conditions.xdog import XDoGParams, xdog


class LineDrawingConfig(ModelConditionConfig):
    xdog: XDoGParams = XDoGParams()
    model_side: int = Field(
        MODEL_SIDE, ge=32, description="shorter side the generator runs at (256 for the published models)"
    )


class LineDrawingOperator(ClassicalOrModelCondition):
    """Contour and scribble differ only in their XDoG defaults and the generator's style."""

    Config: ClassVar[type[LineDrawingConfig]] = LineDrawingConfig
    style: ClassVar[str] = ""  # the informative-drawings style this condition's checkpoint was trained for
    classical_keys = ("xdog",)
    model_keys = ("model_side",)

    def describe_model(self) -> str:
        c = self.config
        return (
            f"{self.name}: informative-drawings {self.style} generator from {c.checkpoint} at {c.model_side}px (model)"
        )

    def describe_classical(self) -> str:
        x = self.config.xdog
        return (
            f"{self.name}: XDoG sigma={x.sigma} k={x.k} tau={x.tau} eps={x.epsilon} phi={x.phi} (classical, tuned "
            f"to {self.style})"
        )

    def load_model(self, device: str) -> Any:
        return load_generator(self.config.checkpoint, device)[0]

    def classical_conditions(self, images: list[np.ndarray], rngs: list[np.random.Generator]):
        return [(gray3(xdog(im, self.config.xdog)), {}) for im in images]

    def model_conditions(self, images: list[np.ndarray], rngs: list[np.random.Generator]):
        drawings = draw_lines(self._model, images, self._device, self.config.model_side)
        return [(gray3(d), {}) for d in drawings]
