"""SigLIP image embeddings with open_clip (the SO400M and B/16 SigLIP families): batched, bf16/fp16 on GPU,
L2-normalised. Only the vision tower is kept; the tokenizer is never loaded (it needs hub files, images do not).
`pretrained` is a hub id (hf-hub:timm/...), a local checkpoint file, a local-dir: folder, or an open_clip tag.
On a GPU the images are resized and normalised there (JPEG files decode there too, `compute_encoded`), the next
batch is prepared while this one runs, and the tower is compiled for one batch shape; on the CPU the model's own
PIL transform runs, as before."""

from __future__ import annotations

import logging
from typing import Any, ClassVar, Literal, Optional

import numpy as np
from pydantic import Field

from datagen import placement
from datagen.batch import ITEM_FEATURES
from datagen.devices import resolve_device
from datagen.operator import OperatorConfig, Resources
from datagen.pairing.config import Band
from datagen.placement import EncoderSpeed, Placement
from datagen.schema import PhotoFeatures
from operators.features.base import FeatureOperator
from operators.models.gpu_images import DeviceEncoder, Preprocess
from operators.models.open_clip_source import missing_local_dir, resolve_source
from operators.models.precision import (
    attention_backends,
    compile_fixed_shape,
    resolve_compile,
    resolve_precision,
    torch_dtype,
)

log = logging.getLogger(__name__)

# SigLIP's published preprocessing (open_clip's pretrained tags for webli): squash to size, bicubic, mean=std=0.5.
# A bare checkpoint file carries none, so it gets this one.
SIGLIP_PREPROCESS = {
    "mean": (0.5, 0.5, 0.5),
    "std": (0.5, 0.5, 0.5),
    "interpolation": "bicubic",
    "resize_mode": "squash",
}


class SiglipFeaturesConfig(OperatorConfig, Placement, EncoderSpeed):
    model: str = Field(
        "ViT-SO400M-14-SigLIP-384",
        description="open_clip architecture (ignored when pretrained is hf-hub: or local-dir:)",
    )
    pretrained: Optional[str] = Field(
        None, description="hf-hub:ORG/REPO, local-dir:PATH, a checkpoint file, or an open_clip tag"
    )
    precision: Literal["auto", "fp32", "fp16", "bf16"] = Field("auto", description="auto: bf16 on GPU, fp32 on CPU")
    batch_size: int = Field(
        64,
        ge=1,
        description="images per forward pass; on a GPU the best of bench/gpu_siglip.py's sweep (docs/operators/"
        "features.md records it), with the last batch padded to it when the tower is compiled",
    )
    num_cpus: float = Field(
        4,
        gt=0,
        description="CPUs per actor: PIL preprocessing threads on the CPU path (PIL resize releases the GIL); on a "
        "GPU preprocessing runs on the GPU and one CPU is enough. SO400M bf16 on an H200 with PIL: 90 images/s with "
        "1, 189 with 4, 224 with 8; the model alone 501",
    )
    batches_per_call: int = Field(
        8,
        ge=1,
        description="model batches handed to one call on the device path, so the next batch is prepared while "
        "this one runs",
    )


def load_vision_tower(model: str, pretrained: str, device: str, precision: str) -> tuple[Any, Any, Any]:
    """(vision tower on `device` in eval mode, its open_clip preprocessing transform, the transform's config)."""
    import open_clip
    from open_clip.transform import PreprocessCfg, image_transform_v2

    name, pt, force_pp = resolve_source(model, pretrained, SIGLIP_PREPROCESS)
    clip = open_clip.create_model(
        name, pretrained=pt, device="cpu", precision="fp32", force_preprocess_cfg=force_pp, require_pretrained=True
    )
    visual = clip.visual
    pp = PreprocessCfg(**{k: v for k, v in visual.preprocess_cfg.items() if k in PreprocessCfg.__dataclass_fields__})
    transform = image_transform_v2(pp, is_train=False)
    del clip  # the text tower is half of SO400M's weights and is never used here
    visual = visual.to(device=device, dtype=torch_dtype(precision, device)).eval()
    return visual, transform, pp


class SiglipFeatures(FeatureOperator):
    name = "siglip_features"
    writes = (
        ITEM_FEATURES["embedding"],
        ITEM_FEATURES["encoder"],
    )
    version = "1"
    stateful = True
    Config: ClassVar[type[SiglipFeaturesConfig]] = SiglipFeaturesConfig
    default_center: ClassVar[bool] = False
    # a starting point for SigLIP image-image cosine: same scene or object above ~0.75, re-encodes of one photo ~0.98
    default_band: ClassVar[Band] = Band(low=0.75, high=0.97)

    def __init__(self, config: SiglipFeaturesConfig | None = None, **context: Any):
        super().__init__(config, **context)
        self._visual = None
        self._transform = None
        self._device = "cpu"
        self._dtype = None
        self._pool = None  # preprocessing threads, made on first use (a thread pool does not pickle)
        self._encoder: DeviceEncoder | None = None  # the device path, when it runs

    def unavailable_reason(self) -> str | None:
        p = self.config.pretrained
        if not p:
            return (
                "siglip_features.pretrained is not set (a hub id, a local checkpoint file or local-dir:PATH of "
                "SigLIP weights)"
            )
        return missing_local_dir("siglip_features.pretrained", p)

    def resources(self) -> Resources:
        return placement.resources(self.config)

    def describe(self) -> str:
        c = self.config
        return (
            f"siglip_features: open_clip {c.model} weights {c.pretrained} ({c.precision}, {c.device}); vision "
            f"tower only, no tokenizer"
        )

    def setup(self) -> None:
        c = self.config
        device = resolve_device(c.device)
        precision = resolve_precision(c.precision, device)
        self._visual, self._transform, pp = load_vision_tower(c.model, c.pretrained or "", device, precision)
        self._device = device
        self._dtype = next(self._visual.parameters()).dtype
        on_device = device == "cuda" if c.preprocess_on_device is None else c.preprocess_on_device
        spec = Preprocess.from_open_clip(pp) if on_device else None
        compiled = resolve_compile(c.compile, device)
        forward = compile_fixed_shape(self._visual) if compiled else self._visual
        backends = attention_backends(c.attention, device)
        self._encoder = (
            DeviceEncoder(forward, spec, device, self._dtype, c.batch_size, fixed_shape=compiled, attention=backends)
            if spec is not None
            else None
        )
        log.info(
            "siglip_features loaded %s on %s (%s); preprocessing %s; %s; attention %s",
            c.pretrained,
            device,
            precision,
            "on the device"
            if spec
            else "with PIL on the CPU"
            + (" (a resize mode the tensor path lacks)" if on_device and spec is None else ""),
            "compiled for batch %d" % c.batch_size if compiled else "not compiled",
            "/".join(b.name for b in backends) if backends else "torch's choice",
        )

    def batches_per_call(self) -> int:
        return self.config.batches_per_call if self._encoder is not None else 1

    def compute(self, images: list[np.ndarray]) -> list[PhotoFeatures]:
        import torch
        import torch.nn.functional as F
        from PIL import Image

        if self._visual is None:
            self.setup()
        if self._encoder is not None:
            return self._features(self._encoder.arrays(images))
        if self._pool is None:
            from concurrent.futures import ThreadPoolExecutor

            self._pool = ThreadPoolExecutor(max(1, round(self.config.num_cpus)), thread_name_prefix="siglip-preprocess")
        tensors = list(self._pool.map(lambda im: self._transform(Image.fromarray(im)), images))
        x = torch.stack(tensors).to(self._device, self._dtype)
        with torch.inference_mode():
            emb = F.normalize(self._visual(x).float(), dim=-1).cpu().numpy()
        return self._features(emb)

    def compute_encoded(self, datas: list[bytes]) -> list[PhotoFeatures]:
        """Features of encoded image files: on the device path JPEGs decode on the GPU (nvjpeg) and other formats
        on the CPU; on the CPU path every file decodes with PIL (JPEG draft mode down to the model's input size)."""
        from operators.models.gpu_images import _decode_on_cpu

        if self._visual is None:
            self.setup()
        if self._encoder is not None:
            return self._features(self._encoder.encoded(datas))
        side = min(self._visual.image_size) if hasattr(self._visual, "image_size") else 0
        return self.compute([_decode_on_cpu(d, int(side or 0)) for d in datas])

    def _features(self, emb: np.ndarray) -> list[PhotoFeatures]:
        tag = self.describe()
        return [PhotoFeatures(embedding=e.astype(np.float32), encoder=tag) for e in emb]
