"""The diffusers side of the synthesized edits: load a local (or cached hub) checkpoint through diffusers' own loader
as an inpainting or image-to-image pipeline (SD, SDXL, FLUX Fill, ...), and run it on photos of any size at a
working resolution whose sides the model accepts, with the untouched pixels pasted back from the photo."""

from __future__ import annotations

import inspect
import logging
from typing import Any, Literal, Optional

import cv2
import numpy as np
from pydantic import Field

from datagen import worker_cache
from datagen.config import Section

log = logging.getLogger(__name__)

INPAINT, IMG2IMG = "inpaint", "img2img"


class DiffusionConfig(Section):
    checkpoint: Optional[str] = Field(
        None, description="diffusers folder (model_index.json) or hub id: SD/SDXL inpainting, FLUX.1 Fill, SD img2img"
    )
    steps: int = Field(30, ge=1, description="denoising steps")
    guidance_scale: float = Field(7.5, ge=0, description="classifier-free guidance (FLUX Fill wants ~30)")
    strength: float = Field(1.0, gt=0, le=1, description="how much of the input is re-noised (img2img style: ~0.6)")
    resolution: int = Field(1024, ge=64, description="long side the model runs at (sides rounded to multiples of 16)")
    dtype: Literal["auto", "float32", "float16", "bfloat16"] = Field(
        "auto", description="auto: float16 on CUDA (bfloat16 for FLUX), float32 on CPU"
    )
    negative_prompt: str = Field(
        "blurry, distorted, low quality, text, watermark", description="where the pipeline takes one"
    )


def _dtype(name: str, device: str, class_name: str):
    import torch

    if name == "auto":
        if not device.startswith("cuda"):
            return torch.float32
        return torch.bfloat16 if "Flux" in class_name else torch.float16
    return getattr(torch, name)


def load_pipeline(cfg: DiffusionConfig, kind: str, device: str):
    """A diffusers pipeline for `kind` (inpaint or img2img) from cfg.checkpoint: the checkpoint's own pipeline class
    when it already is one of that kind (FluxFillPipeline, StableDiffusionInpaintPipeline, ...), else diffusers'
    AutoPipeline conversion of the same components."""
    from diffusers import AutoPipelineForImage2Image, AutoPipelineForInpainting, DiffusionPipeline

    if not cfg.checkpoint:
        raise ValueError("no diffusers checkpoint set")
    probe = DiffusionPipeline.load_config(cfg.checkpoint)
    class_name = str(probe.get("_class_name", ""))
    dtype = _dtype(cfg.dtype, device, class_name)
    pipe = DiffusionPipeline.from_pretrained(cfg.checkpoint, dtype=dtype)
    name = type(pipe).__name__
    if kind == INPAINT and not ("Inpaint" in name or "Fill" in name):
        pipe = AutoPipelineForInpainting.from_pipe(pipe)
    elif kind == IMG2IMG and "Img2Img" not in name:
        pipe = AutoPipelineForImage2Image.from_pipe(pipe)
    pipe = pipe.to(device)
    pipe.set_progress_bar_config(disable=True)
    log.info("diffusers %s pipeline %s from %s (%s, %s)", kind, type(pipe).__name__, cfg.checkpoint, device, dtype)
    return pipe


def work_size(h: int, w: int, resolution: int, multiple: int = 16) -> tuple[int, int]:
    """(height, width) with the long side at `resolution`, both multiples of `multiple`."""
    s = resolution / max(h, w)
    return max(multiple, int(round(h * s / multiple)) * multiple), max(
        multiple, int(round(w * s / multiple)) * multiple
    )


def feather(mask: np.ndarray, px: int) -> np.ndarray:
    """HxW uint8 mask -> HxW float32 alpha in 0..1, softened inward so the inside stays fully generated."""
    a = (mask > 0).astype(np.float32)
    if px <= 0:
        return a
    k = 2 * px + 1
    return np.clip(cv2.GaussianBlur(a, (k, k), 0) * 2.0, 0.0, 1.0) * a + 0.0


def paste(photo: np.ndarray, generated: np.ndarray, mask: np.ndarray, px: int = 3) -> np.ndarray:
    """The generated pixels inside the mask, the photo's own pixels outside it (exactly), a soft seam inside."""
    a = feather(mask, px)[..., None]
    out = photo.astype(np.float32) * (1 - a) + generated.astype(np.float32) * a
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


class DiffusionRunner:
    """Runs one pipeline on lists of photos; photos of one working size go through the model together."""

    def __init__(self, cfg: DiffusionConfig, kind: str, device: str):
        self.cfg, self.kind, self.device = cfg, kind, device
        self.pipe = None
        self._accepts: set[str] = set()

    def models(self) -> tuple[str, ...]:
        """The pipeline, as operators name it to share an actor: makers that run the same one share its load."""
        return (f"diffusers {self.kind} {self.cfg.checkpoint} ({self.cfg.dtype})",)

    def setup(self) -> None:
        """The pipeline, loaded once per process for every maker that runs it (remove, replace and background change
        share one inpainting pipeline); the sampling settings (steps, guidance) are per call, not part of the load."""
        if self.pipe is None:
            key = ("diffusers", self.kind, self.cfg.checkpoint, self.cfg.dtype, self.device)
            self.pipe = worker_cache.per_process(key, lambda: load_pipeline(self.cfg, self.kind, self.device))
            self._accepts = set(inspect.signature(self.pipe.__call__).parameters)

    def run(
        self,
        images: list[np.ndarray],
        prompts: list[str],
        seeds: list[int],
        masks: Optional[list[np.ndarray]] = None,
        batch_size: int = 4,
    ) -> list[np.ndarray]:
        import torch
        from PIL import Image

        self.setup()
        out: list[Optional[np.ndarray]] = [None] * len(images)
        groups: dict[tuple[int, int], list[int]] = {}
        for i, im in enumerate(images):
            groups.setdefault(work_size(im.shape[0], im.shape[1], self.cfg.resolution), []).append(i)
        for (wh, ww), idx in groups.items():
            for start in range(0, len(idx), batch_size):
                chunk = idx[start : start + batch_size]
                kw: dict[str, Any] = {
                    "prompt": [prompts[i] for i in chunk],
                    "image": [
                        Image.fromarray(cv2.resize(images[i], (ww, wh), interpolation=cv2.INTER_AREA)) for i in chunk
                    ],
                    "num_inference_steps": self.cfg.steps,
                    "guidance_scale": self.cfg.guidance_scale,
                    "generator": [torch.Generator("cpu").manual_seed(int(seeds[i]) % (2**63)) for i in chunk],
                    "output_type": "np",
                }
                if masks is not None:
                    kw["mask_image"] = [
                        Image.fromarray(cv2.resize(masks[i], (ww, wh), interpolation=cv2.INTER_NEAREST)) for i in chunk
                    ]
                for key, value in (
                    ("height", wh),
                    ("width", ww),
                    ("strength", self.cfg.strength),
                    ("negative_prompt", [self.cfg.negative_prompt] * len(chunk)),
                ):
                    if key in self._accepts:
                        kw[key] = value
                with torch.inference_mode():
                    result = self.pipe(**kw).images
                for i, gen in zip(chunk, result):
                    h, w = images[i].shape[:2]
                    gen8 = np.clip(np.asarray(gen, np.float32) * 255.0 + 0.5, 0, 255).astype(np.uint8)
                    out[i] = cv2.resize(gen8, (w, h), interpolation=cv2.INTER_CUBIC)
        return [o for o in out if o is not None]
