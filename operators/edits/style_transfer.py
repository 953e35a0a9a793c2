"""Style Transfer: the photo restyled with its structure kept. Embedded default: OpenCV's non-photorealistic filters,
each named as the style it imitates (stylization -> watercolour, pencilSketch -> pencil / coloured-pencil drawing,
xphoto.oilPainting -> oil painting, edgePreservingFilter -> airbrushed painting, bilateral + edges -> cartoon).
Model: a diffusers image-to-image pipeline prompted with a style from the bank, at a strength that keeps the layout."""

from __future__ import annotations

from typing import Any, Callable, ClassVar, Literal, Optional

import cv2
import numpy as np
from pydantic import Field

from datagen.batch import WorkBatch
from datagen.devices import resolve_device
from datagen.schema import Frame
from operators.edits.base import EditConfig, EditOperator, emu_edit, pick
from operators.edits.diffusion import IMG2IMG, DiffusionConfig, DiffusionRunner

STYLE = "Style Transfer"


def _bgr(f: Callable[[np.ndarray], np.ndarray]) -> Callable[[np.ndarray], np.ndarray]:
    return lambda rgb: cv2.cvtColor(f(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)), cv2.COLOR_BGR2RGB)


def _pencil(bgr: np.ndarray) -> np.ndarray:
    gray, _ = cv2.pencilSketch(bgr, sigma_s=60, sigma_r=0.07, shade_factor=0.05)
    return cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR)


def _colour_pencil(bgr: np.ndarray) -> np.ndarray:
    return cv2.pencilSketch(bgr, sigma_s=60, sigma_r=0.07, shade_factor=0.05)[1]


def _watercolour(bgr: np.ndarray) -> np.ndarray:
    """cv2.stylization, at half size above 384 px (its domain-transform filter is slow and its output smooth anyway),
    with the spatial sigma scaled to the picture (OpenCV's 60 px is tuned for ~500 px photos)."""
    h, w = bgr.shape[:2]
    half = max(h, w) > 384
    small = cv2.resize(bgr, (max(1, w // 2), max(1, h // 2)), interpolation=cv2.INTER_AREA) if half else bgr
    sigma_s = float(np.clip(60.0 * max(small.shape[:2]) / 512.0, 5.0, 60.0))
    out = cv2.stylization(small, sigma_s=sigma_s, sigma_r=0.45)
    return cv2.resize(out, (w, h), interpolation=cv2.INTER_CUBIC) if half else out


def _cartoon(bgr: np.ndarray) -> np.ndarray:
    """The classic cartoon filter: flattened colours (repeated bilateral filtering, quantised) under bold edges."""
    small = cv2.pyrDown(bgr)
    for _ in range(4):
        small = cv2.bilateralFilter(small, 9, 40, 7)
    flat = cv2.resize(small, (bgr.shape[1], bgr.shape[0]), interpolation=cv2.INTER_LINEAR)
    flat = (flat // 32) * 32 + 16
    gray = cv2.medianBlur(cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY), 7)
    edges = cv2.adaptiveThreshold(gray, 255, cv2.ADAPTIVE_THRESH_MEAN_C, cv2.THRESH_BINARY, 9, 4)
    return cv2.bitwise_and(flat, flat, mask=edges)


# style id -> (how it is named in the instruction, the OpenCV filter that imitates it)
CLASSICAL_STYLES: dict[str, tuple[str, Callable[[np.ndarray], np.ndarray]]] = {
    "watercolour": ("a watercolour painting", _bgr(_watercolour)),
    "pencil_sketch": ("a pencil sketch", _bgr(_pencil)),
    "coloured_pencil": ("a coloured-pencil drawing", _bgr(_colour_pencil)),
    "oil_painting": ("an oil painting", _bgr(lambda b: cv2.xphoto.oilPainting(b, 7, 1))),
    "airbrushed": (
        "a smooth airbrushed painting",
        _bgr(lambda b: cv2.edgePreservingFilter(b, flags=cv2.RECURS_FILTER, sigma_s=60, sigma_r=0.4)),
    ),
    "cartoon": ("a cartoon", _bgr(_cartoon)),
}
CLASSICAL_FILTERS = {
    "watercolour": "cv2.stylization",
    "pencil_sketch": "cv2.pencilSketch (gray)",
    "coloured_pencil": "cv2.pencilSketch (colour)",
    "oil_painting": "cv2.xphoto.oilPainting",
    "airbrushed": "cv2.edgePreservingFilter",
    "cartoon": "bilateral filter + adaptive-threshold edges",
}
MODEL_STYLES = [
    "a watercolour painting",
    "an oil painting",
    "a pencil sketch",
    "an anime illustration",
    "a Van Gogh style painting",
    "a ukiyo-e woodblock print",
    "a pixel-art picture",
    "a charcoal drawing",
    "a pop-art poster",
    "a low-poly 3D render",
    "a stained-glass window",
    "a comic book panel",
]


class StyleTransferConfig(EditConfig):
    backend: Literal["classical", "model"] = Field(
        "classical", description="classical: OpenCV NPR filters; model: diffusers img2img `model.checkpoint`"
    )
    styles_per_image: int = Field(2, ge=1, le=12, description="styles drawn per photo")
    classical: list[
        Literal["watercolour", "pencil_sketch", "coloured_pencil", "oil_painting", "airbrushed", "cartoon"]
    ] = Field(list(CLASSICAL_STYLES), min_length=1, description="classical styles drawn from")
    styles: list[str] = Field(
        MODEL_STYLES, min_length=1, description="model: style phrases drawn from (indefinite noun phrases)"
    )
    model: DiffusionConfig = DiffusionConfig(strength=0.6, steps=30)


class StyleTransfer(EditOperator):
    name = "style_transfer"
    version = "1"
    Config: ClassVar[type[StyleTransferConfig]] = StyleTransferConfig

    def __init__(self, config=None, **context: Any):
        super().__init__(config, **context)
        self.stateful = self.uses_model()
        self._runner: Optional[DiffusionRunner] = None

    def uses_model(self) -> bool:
        return self.config.backend == "model"

    def unavailable_reason(self) -> str | None:
        if self.uses_model() and not self.config.model.checkpoint:
            return "backend=model needs model.checkpoint (a diffusers img2img-capable checkpoint)"
        return None

    def models(self) -> tuple[str, ...]:
        return DiffusionRunner(self.config.model, IMG2IMG, "cpu").models() if self.uses_model() else ()

    def describe(self) -> str:
        c = self.config
        if self.uses_model():
            return (
                f"style_transfer: diffusers img2img {c.model.checkpoint} strength {c.model.strength}, "
                f"{len(c.styles)} styles (model)"
            )
        return (
            "style_transfer: OpenCV NPR filters "
            + ", ".join(f"{CLASSICAL_FILTERS[s]} as {CLASSICAL_STYLES[s][0]}" for s in c.classical)
            + " (classical)"
        )

    def setup(self) -> None:
        if self.uses_model() and self._runner is None:
            self._runner = DiffusionRunner(self.config.model, IMG2IMG, resolve_device(self.config.device))
            self._runner.setup()

    def process(self, batch: WorkBatch) -> WorkBatch:
        self.setup()
        c = self.config
        jobs = []
        for item in batch.items:
            rng = batch.rng(item.source_id, self.name)
            options = list(c.styles) if self.uses_model() else list(c.classical)
            for v, style in enumerate(pick(rng, options, c.styles_per_image)):
                jobs.append((item, v, style, int(rng.integers(2**62))))
        if not jobs:
            return batch
        if self.uses_model():
            prompts = [f"{style} of {item.caption}" if item.caption else style for item, _, style, _ in jobs]
            outs = self._runner.run([j[0].image for j in jobs], prompts, [j[3] for j in jobs], batch_size=c.batch_size)
        else:
            outs = [CLASSICAL_STYLES[style][1](item.image) for item, _, style, _ in jobs]
        for (item, v, style, _), out in zip(jobs, outs):
            phrase = style if self.uses_model() else CLASSICAL_STYLES[style][0]
            emu = emu_edit(
                "style",
                edited_object=phrase,
                output=f"{phrase} of {item.caption}" if item.caption else phrase,
                original_object="the photo",
            )
            drawn = {"style": style, "how": "diffusers_img2img" if self.uses_model() else CLASSICAL_FILTERS[style]}
            batch.samples.append(
                self.sample(
                    batch, item, STYLE, [Frame(item.image)], Frame(out), emu, {"style": phrase}, drawn, variant=v
                )
            )
        return batch
