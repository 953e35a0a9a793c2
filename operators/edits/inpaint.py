"""Inpainting behind one call (OpenCV Telea / Navier-Stokes, or a diffusers inpainting model), and the base of the
makers that propose objects and inpaint their masks (remove/add, replace)."""

from __future__ import annotations

from typing import Any, Literal, Optional

import cv2
import numpy as np
from pydantic import Field

from datagen.devices import resolve_device
from operators.edits.base import ProposalEdit
from operators.edits.diffusion import INPAINT, DiffusionConfig, DiffusionRunner, paste
from operators.edits.object_proposals import Proposer

TOO_LARGE = "mask too large for OpenCV inpainting"


class InpaintConfig(DiffusionConfig):
    backend: Literal["classical", "model"] = Field(
        "classical", description="classical: OpenCV inpainting; model: diffusers `checkpoint`"
    )
    method: Literal["telea", "ns"] = Field(
        "telea", description="OpenCV inpainting: Telea's fast marching or Navier-Stokes"
    )
    radius: int = Field(7, ge=1, description="OpenCV inpainting neighbourhood, px")
    max_area: float = Field(
        0.05,
        gt=0,
        le=1,
        description="classical only: largest (dilated) mask OpenCV fills plausibly, share of the image",
    )
    prompt: str = Field(
        "empty background, nothing there, seamless continuation of the surroundings",
        description="model prompt for filling a removed object's place",
    )


def opencv_inpaint(image: np.ndarray, mask: np.ndarray, method: str, radius: int) -> np.ndarray:
    flag = cv2.INPAINT_TELEA if method == "telea" else cv2.INPAINT_NS
    bgr = cv2.inpaint(cv2.cvtColor(image, cv2.COLOR_RGB2BGR), (mask > 0).astype(np.uint8) * 255, radius, flag)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


class Inpainter:
    """OpenCV or diffusers inpainting behind one call; model outputs keep the photo's own pixels outside the mask."""

    def __init__(self, cfg: InpaintConfig, device: str):
        self.cfg = cfg
        self.runner = DiffusionRunner(cfg, INPAINT, device) if cfg.backend == "model" else None

    def setup(self) -> None:
        if self.runner is not None:
            self.runner.setup()

    def models(self) -> tuple[str, ...]:
        return self.runner.models() if self.runner is not None else ()

    def describe(self) -> str:
        c = self.cfg
        if self.runner is None:
            return (
                f"OpenCV {'Telea' if c.method == 'telea' else 'Navier-Stokes'} inpainting r={c.radius}, masks <= "
                f"{c.max_area:.0%} (classical)"
            )
        return f"diffusers inpainting {c.checkpoint}, {c.steps} steps at {c.resolution}px (model)"

    def too_large(self, mask: np.ndarray) -> bool:
        return self.runner is None and float((mask > 0).mean()) > self.cfg.max_area

    def fill(
        self, images: list[np.ndarray], masks: list[np.ndarray], prompts: list[str], seeds: list[int], batch_size: int
    ) -> list[np.ndarray]:
        if self.runner is None:
            return [opencv_inpaint(im, m, self.cfg.method, self.cfg.radius) for im, m in zip(images, masks)]
        gen = self.runner.run(images, prompts, seeds, masks=masks, batch_size=batch_size)
        return [paste(im, g, m) for im, g, m in zip(images, gen, masks)]


class ObjectInpaintOperator(ProposalEdit):
    """Shared by the makers that inpaint the masks of a photo's proposed objects (remove/add, replace). Their one model
    is the inpainting pipeline, which the makers of one worker share (datagen.worker_cache: loaded once per process)."""

    def __init__(self, config=None, **context: Any):
        super().__init__(config, **context)
        self.stateful = self.uses_model()
        self._inpainter: Optional[Inpainter] = None

    def uses_model(self) -> bool:
        return self.config.inpaint.backend == "model"

    def models(self) -> tuple[str, ...]:
        return Inpainter(self.config.inpaint, "cpu").models()

    def setup(self) -> None:
        if self._inpainter is None:
            self._inpainter = Inpainter(self.config.inpaint, resolve_device(self.config.device))
            self._inpainter.setup()

    def describe(self) -> str:
        return (
            f"{self.name}: objects from {Proposer(self.proposal_settings).describe()}; fill by "
            f"{Inpainter(self.config.inpaint, 'cpu').describe()}"
        )
