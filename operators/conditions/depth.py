"""Depth condition: a DPT / MiDaS / Depth Anything model through transformers (local directory or hub id), rendered
as 8-bit inverse depth (near = bright), normalised per image. There is no classical default: without a checkpoint
the operator is off and the run says so. Photos share a forward pass when their model inputs have one size."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import Field

from datagen.devices import resolve_device
from operators.conditions.base import ModelCondition, ModelOnlyConfig, gray3


class DepthConfig(ModelOnlyConfig):
    prediction: Literal["inverse_depth", "depth"] = Field(
        "inverse_depth",
        description="what the model predicts: relative inverse depth (DPT, MiDaS, Depth Anything) or metric depth",
    )


def to_inverse_depth_u8(pred: np.ndarray, prediction: str) -> np.ndarray:
    """Model output (HxW float) -> HxW uint8 with near bright, min-max normalised per image."""
    d = pred.astype(np.float64)
    if prediction == "depth":
        d = 1.0 / np.maximum(d, 1e-6)
    lo, hi = float(d.min()), float(d.max())
    if not np.isfinite([lo, hi]).all() or hi - lo < 1e-12:
        return np.zeros(d.shape, np.uint8)
    return np.clip((d - lo) / (hi - lo) * 255.0 + 0.5, 0, 255).astype(np.uint8)


class Depth(ModelCondition):
    name = "depth"
    condition = "depth"
    version = "1"
    Config: ClassVar[type[DepthConfig]] = DepthConfig

    def __init__(self, config=None, **context: Any):
        super().__init__(config, **context)
        self._model = None
        self._processor = None
        self._device = "cpu"

    def unavailable_reason(self) -> str | None:
        if not self.config.checkpoint:
            return (
                "no depth checkpoint (operators.depth.checkpoint: a DPT / MiDaS / Depth Anything directory); depth "
                "has no classical default"
            )
        return None

    def describe(self) -> str:
        return f"depth: transformers depth-estimation model {self.config.checkpoint}, 8-bit inverse depth (model)"

    def setup(self) -> None:
        if self._model is not None:
            return
        if not self.config.checkpoint:
            raise ValueError(f"depth: {self.unavailable_reason()}")
        from transformers import AutoImageProcessor, AutoModelForDepthEstimation

        self._device = resolve_device(self.config.device)
        self._processor = AutoImageProcessor.from_pretrained(self.config.checkpoint)
        self._model = (
            AutoModelForDepthEstimation.from_pretrained(self.config.checkpoint)
            .eval()
            .requires_grad_(False)
            .to(self._device)
        )

    def make_conditions(self, images: list[np.ndarray], rngs: list[np.random.Generator]):
        import torch
        import torch.nn.functional as F

        self.setup()
        out: list[Any] = [None] * len(images)
        # bucket by the model input's size, not the photo's: the processor brings photos of many sizes to a few
        # input sizes (DPT keeps the aspect ratio in multiples of 32), and each photo is processed alone, so its
        # input is the same whichever bucket it lands in
        inputs = [self._processor(images=[im], return_tensors="pt")["pixel_values"][0] for im in images]
        buckets: dict[tuple[int, ...], list[int]] = {}
        for i, x in enumerate(inputs):
            buckets.setdefault(tuple(x.shape), []).append(i)
        with torch.inference_mode():
            for idx in buckets.values():
                x = torch.stack([inputs[i] for i in idx]).to(self._device)
                pred = self._model(pixel_values=x).predicted_depth[:, None].float()
                for j, i in enumerate(idx):
                    h, w = images[i].shape[:2]
                    up = F.interpolate(pred[j : j + 1], size=(h, w), mode="bicubic", align_corners=False)
                    out[i] = (gray3(to_inverse_depth_u8(up[0, 0].cpu().numpy(), self.config.prediction)), {})
        return out
