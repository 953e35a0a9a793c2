"""DINOv2 image-image similarity of a turn's input and target (UltraEdit keeps DINOv2 >= 0.3; MagicBrush's DINO
metric): the CLS embedding (pooler output) of a transformers Dinov2Model checkpoint, from a local dir or hub id. Each
distinct photo is embedded once per partition; on a GPU the images are resized and normalised there, attention is
SDPA and the model is compiled for one batch shape. On a masked edit also the outside region's (dino_outside): the
mask's inside painted one grey in both images, so that only what the edit should have kept is compared."""

from __future__ import annotations

import logging
from typing import Any, ClassVar, Literal, Optional

import numpy as np
from pydantic import Field

from datagen import placement
from datagen.devices import resolve_device
from datagen.identity import photo_key
from datagen.operator import Resources
from datagen.placement import EncoderSpeed, Placement
from operators.models.gpu_images import DeviceEncoder, Preprocess
from operators.models.precision import (
    attention_backends,
    compile_fixed_shape,
    resolve_compile,
    resolve_precision,
    torch_dtype,
)
from operators.scoring.base import Scorer, ScorerConfig, TurnView

log = logging.getLogger(__name__)


class DinoScoreConfig(ScorerConfig, Placement, EncoderSpeed):
    checkpoint: Optional[str] = Field(
        None, description="local dir or hub id of a DINOv2 checkpoint (facebook/dinov2-base); unset: OFF"
    )
    precision: Literal["auto", "fp32", "fp16", "bf16"] = Field("auto", description="auto: bf16 on GPU, fp32 on CPU")
    batch_size: int = Field(32, ge=1, description="samples per model call")
    image_batch_size: int = Field(64, ge=1, description="images per forward pass")
    # exclude: a score, not part of any sample's content (out of the recipe fingerprint)
    outside: bool = Field(True, exclude=True, description="dino_outside on masked edits (two more images each)")


OUTSIDE_FILL = 127  # the grey that both images' inside is painted with


def paint_inside(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The image with the inside of the edit mask (255 = edit; resized to the image, nearest) painted OUTSIDE_FILL."""
    import cv2

    h, w = image.shape[:2]
    if mask.shape[:2] != (h, w):
        mask = cv2.resize(mask, (w, h), interpolation=cv2.INTER_NEAREST)
    out = image.copy()
    out[mask > 127] = OUTSIDE_FILL
    return out


class DinoScore(Scorer):
    name = "dino_score"
    makes = ("dino_image", "dino_outside")
    version = "1"
    stateful = True
    Config: ClassVar[type[DinoScoreConfig]] = DinoScoreConfig

    def __init__(self, config: DinoScoreConfig | None = None, **context: Any):
        super().__init__(config, **context)
        self._model = None
        self._encoder: DeviceEncoder | None = None

    def unavailable_reason(self) -> str | None:
        if not self.config.checkpoint:
            return "dino_score.checkpoint is not set (a local dir or hub id of DINOv2 weights)"
        return None

    def resources(self) -> Resources:
        return placement.resources(self.config)

    def describe(self) -> str:
        return f"dino_score: DINOv2 {self.config.checkpoint} CLS cosine of input and target"

    def setup(self) -> None:
        from transformers import AutoImageProcessor, AutoModel

        c = self.config
        self._device = resolve_device(c.device)
        precision = resolve_precision(c.precision, self._device)
        self._dtype = torch_dtype(precision, self._device)
        self._processor = AutoImageProcessor.from_pretrained(c.checkpoint)
        model = AutoModel.from_pretrained(c.checkpoint, attn_implementation="sdpa")
        if model.config.model_type != "dinov2":
            raise ValueError(
                f"dino_score.checkpoint={c.checkpoint!r} is a {model.config.model_type!r} model, not dinov2"
            )
        self._model = model.to(self._device, self._dtype).eval()
        on_device = self._device == "cuda" if c.preprocess_on_device is None else c.preprocess_on_device
        spec = Preprocess.from_hf_processor(self._processor) if on_device else None
        if spec is not None:
            compiled = resolve_compile(c.compile, self._device)
            net = compile_fixed_shape(self._model) if compiled else self._model
            self._encoder = DeviceEncoder(
                lambda x: net(pixel_values=x).pooler_output,
                spec,
                self._device,
                self._dtype,
                c.image_batch_size,
                fixed_shape=compiled,
                attention=attention_backends(c.attention, self._device),
            )
        log.info("dino_score loaded %s on %s (%s)", c.checkpoint, self._device, precision)

    def embed(self, images: list[np.ndarray]) -> np.ndarray:
        import torch

        if self._encoder is not None:
            return self._encoder.arrays(images)
        x = self._processor(images=images, return_tensors="pt")["pixel_values"].to(self._device, self._dtype)
        with torch.inference_mode():
            e = self._model(pixel_values=x).pooler_output.float()
        return torch.nn.functional.normalize(e, dim=-1).cpu().numpy()

    def skip_reason(self, v: TurnView) -> Optional[str]:
        return "no input image" if v.input is None else None

    def score(self, views: list[TurnView]) -> list[dict[str, float]]:
        if self._model is None:
            self.setup()
        # one embedding per distinct photo of the partition, whichever chunk it recurs in
        memo = self.partition_memo if self.partition_memo is not None else {}
        by_key: dict[bytes, np.ndarray] = memo.setdefault("images", {})
        keys: dict[int, bytes] = {}
        new: dict[bytes, np.ndarray] = {}
        for v in views:
            for f in (v.input, v.target):
                if id(f.image) not in keys:
                    k = keys[id(f.image)] = photo_key(f.image)
                    if k not in by_key:
                        new.setdefault(k, f.image)
        # the outside views are this sample's own (its mask painted into both images): embedded, not memoised
        outside: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        if self.config.outside:
            for v in views:
                if v.mask is not None:
                    outside[id(v)] = (paint_inside(v.input.image, v.mask), paint_inside(v.target.image, v.mask))
        flat = list(new.values()) + [im for pair in outside.values() for im in pair]
        vectors = self.embed(flat) if flat else np.zeros((0, 0))
        if new:
            by_key.update(zip(new, vectors[: len(new)]))
        out_emb = {k: (vectors[len(new) + 2 * j], vectors[len(new) + 2 * j + 1]) for j, k in enumerate(outside)}
        emb = {i: by_key[k] for i, k in keys.items()}
        results = []
        for v in views:
            r = {"dino_image": float(emb[id(v.input.image)] @ emb[id(v.target.image)])}
            if id(v) in out_emb:
                a, b = out_emb[id(v)]
                r["dino_outside"] = float(a @ b)
            results.append(r)
        return results
