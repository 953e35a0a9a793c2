"""The shared operator behind contour and scribble: an informative-drawings generator from a local checkpoint, or
the classical XDoG default tuned to the same look. Both give dark lines on white."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from pydantic import Field

from operators.conditions.base import (
    ConditionOperator,
    ModelConditionConfig,
    gray3,
    model_resources,
    resolve_device,
    uses_model,
)
from operators.conditions.informative_drawings import MODEL_SIDE, draw_lines, load_generator
from operators.conditions.xdog import XDoGParams, xdog


class LineDrawingConfig(ModelConditionConfig):
    xdog: XDoGParams = XDoGParams()
    model_side: int = Field(
        MODEL_SIDE, ge=32, description="shorter side the generator runs at (256 for the published models)"
    )


class LineDrawingOperator(ConditionOperator):
    Config: ClassVar[type[LineDrawingConfig]] = LineDrawingConfig
    style: ClassVar[str] = ""  # the informative-drawings style this condition's checkpoint was trained for

    def __init__(self, config=None, **context: Any):
        super().__init__(config, **context)
        self.stateful = uses_model(self.config)  # a model is loaded once per actor; XDoG needs no state
        self._net = None
        self._device = "cpu"

    def resources(self):
        return model_resources(self.config)

    def params(self) -> dict[str, Any]:
        p = super().params()
        if uses_model(self.config):
            p.pop("xdog")
        else:
            p.pop("model_side")
        return p

    def describe(self) -> str:
        c = self.config
        if uses_model(c):
            return (
                f"{self.name}: informative-drawings {self.style} generator from {c.checkpoint} at {c.model_side}px "
                f"(model)"
            )
        x = c.xdog
        return (
            f"{self.name}: XDoG sigma={x.sigma} k={x.k} tau={x.tau} eps={x.epsilon} phi={x.phi} (classical, tuned "
            f"to {self.style})"
        )

    def setup(self) -> None:
        if uses_model(self.config) and self._net is None:
            self._device = resolve_device(self.config.device)
            self._net, _ = load_generator(self.config.checkpoint, self._device)

    def make_conditions(self, images: list[np.ndarray], rngs: list[np.random.Generator]):
        if not uses_model(self.config):
            return [(gray3(xdog(im, self.config.xdog)), {}) for im in images]
        self.setup()
        drawings = draw_lines(self._net, images, self._device, self.config.model_side)
        return [(gray3(d), {}) for d in drawings]
