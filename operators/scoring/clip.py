"""Embedding scores with the CLIP / SigLIP model a recipe names (open_clip): text-image similarity of the target and
its caption (the prompt for text-to-image), image-image similarity of input and target, the directional similarity of
InstructPix2Pix (the image change against the instruction's text embedding; input captions are not recorded), and
optionally the LAION aesthetic score of photo targets from the same image embedding. Each distinct photo and text is
embedded once per partition (a photo recurs in many samples and chunks); on a GPU the images are resized and
normalised there and the image tower is compiled for one batch shape."""

from __future__ import annotations

import logging
import os
from typing import Any, ClassVar, Literal, Optional

import numpy as np
from pydantic import Field

from datagen import placement, schema
from datagen.devices import resolve_device
from datagen.identity import photo_key
from datagen.operator import Resources
from datagen.placement import EncoderSpeed, Placement
from operators.models.gpu_images import DeviceEncoder, Preprocess
from operators.models.open_clip_source import missing_local_dir, resolve_source
from operators.models.precision import (
    attention_backends,
    compile_fixed_shape,
    resolve_compile,
    resolve_precision,
    torch_dtype,
)
from operators.scoring.base import Scorer, ScorerConfig, TurnView

log = logging.getLogger(__name__)


class ClipScoresConfig(ScorerConfig, Placement, EncoderSpeed):
    model: str = Field(
        "ViT-L-14", description="open_clip architecture (ignored when pretrained is hf-hub: or local-dir:)"
    )
    pretrained: Optional[str] = Field(
        None, description="hf-hub:ORG/REPO, local-dir:PATH, a checkpoint file, or an open_clip tag; unset: OFF"
    )
    aesthetic_checkpoint: Optional[str] = Field(
        None,
        description="LAION improved-aesthetic MLP state dict for this model's embeddings (e.g. "
        "sac+logos+ava1-l14-linearMSE.pth for ViT-L/14)",
    )
    precision: Literal["auto", "fp32", "fp16", "bf16"] = Field("auto", description="auto: bf16 on GPU, fp32 on CPU")
    batch_size: int = Field(32, ge=1, description="samples per model call")
    image_batch_size: int = Field(64, ge=1, description="images per forward pass of the image tower")


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    return float(a @ b / (na * nb)) if na > 0 and nb > 0 else 0.0


class ClipScores(Scorer):
    name = "clip_scores"
    makes = ("clip_text", "clip_image", "clip_direction", "aesthetic")
    version = "1"
    stateful = True
    Config: ClassVar[type[ClipScoresConfig]] = ClipScoresConfig

    def __init__(self, config: ClipScoresConfig | None = None, **context: Any):
        super().__init__(config, **context)
        self._model = None
        self._encoder: DeviceEncoder | None = None

    def unavailable_reason(self) -> str | None:
        c = self.config
        if not c.pretrained:
            return (
                "clip_scores.pretrained is not set (a hub id, local-dir:PATH or a checkpoint file of CLIP/SigLIP "
                "weights)"
            )
        if missing := missing_local_dir("clip_scores.pretrained", c.pretrained):
            return missing
        if c.aesthetic_checkpoint and not os.path.isfile(c.aesthetic_checkpoint):
            return f"clip_scores.aesthetic_checkpoint={c.aesthetic_checkpoint!r}: no such file"
        return None

    def resources(self) -> Resources:
        return placement.resources(self.config)

    def describe(self) -> str:
        c = self.config
        aes = f" + LAION aesthetic MLP {c.aesthetic_checkpoint}" if c.aesthetic_checkpoint else ""
        return f"clip_scores: open_clip {c.model} weights {c.pretrained} ({c.precision}, {c.device}){aes}"

    def setup(self) -> None:
        import open_clip

        c = self.config
        self._device = resolve_device(c.device)
        precision = resolve_precision(c.precision, self._device)
        name, pt, _ = resolve_source(c.model, c.pretrained or "")
        model, _, self._transform = open_clip.create_model_and_transforms(
            name, pretrained=pt, device="cpu", precision="fp32", require_pretrained=True
        )
        self._tokenizer = open_clip.get_tokenizer(name)
        self._dtype = torch_dtype(precision, self._device)
        self._model = model.to(device=self._device, dtype=self._dtype).eval()
        on_device = self._device == "cuda" if c.preprocess_on_device is None else c.preprocess_on_device
        spec = Preprocess.from_open_clip(getattr(model.visual, "preprocess_cfg", {})) if on_device else None
        if spec is not None:
            compiled = resolve_compile(c.compile, self._device)
            tower = compile_fixed_shape(self._model.visual) if compiled else self._model.visual
            self._encoder = DeviceEncoder(
                tower,
                spec,
                self._device,
                self._dtype,
                c.image_batch_size,
                fixed_shape=compiled,
                attention=attention_backends(c.attention, self._device),
            )
        self._mlp = None
        if c.aesthetic_checkpoint:
            from operators.scoring.aesthetic_mlp import load_aesthetic_mlp

            self._mlp = load_aesthetic_mlp(c.aesthetic_checkpoint).to(self._device)
        log.info(
            "clip_scores loaded %s on %s (%s)%s",
            c.pretrained,
            self._device,
            precision,
            f", aesthetic MLP {c.aesthetic_checkpoint}" if self._mlp is not None else "",
        )

    def images(self, images: list[np.ndarray]) -> np.ndarray:
        import torch
        from PIL import Image

        if self._encoder is not None:
            return self._encoder.arrays(images)
        x = torch.stack([self._transform(Image.fromarray(im)) for im in images]).to(self._device, self._dtype)
        with torch.inference_mode():
            e = self._model.encode_image(x).float()
        return torch.nn.functional.normalize(e, dim=-1).cpu().numpy()

    def texts(self, texts: list[str]) -> np.ndarray:
        import torch

        tokens = self._tokenizer(texts).to(self._device)
        with torch.inference_mode():
            e = self._model.encode_text(tokens).float()
        return torch.nn.functional.normalize(e, dim=-1).cpu().numpy()

    def aesthetic(self, emb: np.ndarray) -> np.ndarray:
        import torch

        with torch.inference_mode():
            return self._mlp(torch.from_numpy(emb).to(self._device)).float().cpu().numpy()[:, 0]

    def score(self, views: list[TurnView]) -> list[dict[str, float]]:
        if self._model is None:
            self.setup()
        # one embedding per distinct image and text of the partition
        memo = self.partition_memo if self.partition_memo is not None else {}
        by_key: dict[bytes, np.ndarray] = memo.setdefault("images", {})
        txt_emb: dict[str, np.ndarray] = memo.setdefault("texts", {})
        keys: dict[int, bytes] = {}
        new: dict[bytes, np.ndarray] = {}
        texts: dict[str, None] = {}
        for v in views:
            for f in (v.target, v.input):
                if f is not None and id(f.image) not in keys:
                    k = keys[id(f.image)] = photo_key(f.image)
                    if k not in by_key:
                        new.setdefault(k, f.image)
            for t in (self._caption(v), v.instruction):
                if t and t not in txt_emb:
                    texts[t] = None
        if new:
            by_key.update(zip(new, self.images(list(new.values()))))
        if texts:
            txt_emb.update(zip(texts, self.texts(list(texts))))
        img_emb = {i: by_key[k] for i, k in keys.items()}
        aes = {}
        if self._mlp is not None:
            photo_targets = [id(v.target.image) for v in views if v.target.role == schema.ROLE_PHOTO]
            if photo_targets:
                aes = dict(zip(photo_targets, self.aesthetic(np.stack([img_emb[i] for i in photo_targets]))))
        out = []
        for v in views:
            t = img_emb[id(v.target.image)]
            s: dict[str, float] = {}
            cap = self._caption(v)
            if cap and v.target.role == schema.ROLE_PHOTO:
                s["clip_text"] = _cos(t, txt_emb[cap])
            if v.input is not None:
                i = img_emb[id(v.input.image)]
                s["clip_image"] = _cos(i, t)
                if v.instruction and v.input.role == v.target.role == schema.ROLE_PHOTO:
                    s["clip_direction"] = _cos(t - i, txt_emb[v.instruction])
            if v.target.role == schema.ROLE_PHOTO and id(v.target.image) in aes:
                s["aesthetic"] = float(aes[id(v.target.image)])
            out.append(s)
        return out

    @staticmethod
    def _caption(v: TurnView) -> str:
        """What the target should show: its caption, or the prompt of a text-to-image turn."""
        if v.caption:
            return v.caption
        return v.instruction if v.sample.direction == schema.DIRECTION_TEXT else ""
