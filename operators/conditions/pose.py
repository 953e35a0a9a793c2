"""Pose condition: RTMPose through rtmlib's ONNX runtime (a YOLOX person detector, then top-down RTMPose per person),
both from local paths (clusters), or MediaPipe BlazePose from the offline .tflite files `make install` fetches
(model: blazepose; the embedded default); either is drawn as OpenPose's 17-limb skeleton. Images without a person
are skipped with a reason. There is no classical default: without weights the operator is off and the run says so."""

from __future__ import annotations

import os
from typing import Any, ClassVar, Literal, Optional

import cv2
import numpy as np
from pydantic import Field

from datagen.operator import Resources
from operators.conditions.base import ModelCondition, ModelOnlyConfig, SkipImage, model_resources
from operators.conditions.openpose_draw import coco_to_openpose, draw_bodies

NO_PERSON = "no person detected"
NO_KEYPOINTS = "no keypoint above kpt_threshold"


class PoseConfig(ModelOnlyConfig):
    model: Literal["rtmpose", "blazepose"] = Field(
        "rtmpose",
        description="rtmpose: rtmlib YOLOX + RTMPose ONNX from checkpoint/det_checkpoint; blazepose: MediaPipe's "
        "offline .tflite files (LiteRT, CPU)",
    )
    landmark: Literal["lite", "full"] = Field(
        "lite", description="blazepose: which landmark model of the npm package (lite: 2.8 MB, full: 6.4 MB)"
    )
    max_people: int = Field(4, ge=1, description="blazepose: landmarks for at most this many detected people")
    checkpoint: Optional[str] = Field(
        None, description="RTMPose ONNX (rtmlib's end2end.onnx, body 17 keypoints); unset = pose is OFF"
    )
    det_checkpoint: Optional[str] = Field(
        None, description="YOLOX person detector ONNX for rtmlib; unset = pose is OFF"
    )
    pose_input_size: tuple[int, int] = Field((192, 256), description="RTMPose input (width, height)")
    det_input_size: tuple[int, int] = Field((640, 640), description="YOLOX input (height, width)")
    det_nms_threshold: float = Field(0.45, ge=0, le=1)
    det_score_threshold: float = Field(
        0.7, ge=0, le=1, description="used by detectors exported without NMS; rtmlib applies 0.3 to end2end ones"
    )
    kpt_threshold: float = Field(0.3, ge=0, description="keypoints at or below this score are not drawn")
    min_keypoints: int = Field(
        1, ge=1, le=17, description="a person needs this many keypoints above threshold to count"
    )


class Pose(ModelCondition):
    name = "pose"
    condition = "pose"
    version = "1"
    Config: ClassVar[type[PoseConfig]] = PoseConfig

    def __init__(self, config=None, **context: Any):
        super().__init__(config, **context)
        self._det = None
        self._pose = None
        # BlazePose on the CPU loads in a fraction of a second and once per worker process (see setup): it runs inside
        # the partition's task, where an actor would hold a CPU of its own (on 2 cores, half the machine)
        c = self.config
        self.stateful = not (c.model == "blazepose" and not c.num_gpus)

    def resources(self) -> Resources:
        return model_resources(self.config, uses_gpu=self.config.model != "blazepose")  # TFLite: CPU only

    def unavailable_reason(self) -> str | None:
        if self.config.model == "blazepose":
            from datagen.offline_weights import locate
            from operators.conditions.pose_blazepose import LANDMARK_FILES

            gone = [
                str(p)
                for p in (locate("blazepose_detector"), locate(LANDMARK_FILES[self.config.landmark]))
                if not p.is_file()
            ]
            return (
                f"operators.pose.model=blazepose: {', '.join(gone)} missing (make install fetches them)"
                if gone
                else None
            )
        missing = [k for k in ("checkpoint", "det_checkpoint") if not getattr(self.config, k)]
        if missing:
            keys = " and ".join(f"operators.pose.{k}" for k in missing)
            return f"no RTMPose/YOLOX ONNX set ({keys}); pose has no classical default"
        return None

    def describe(self) -> str:
        c = self.config
        if c.model == "blazepose":
            from datagen.offline_weights import provenance
            from operators.conditions.pose_blazepose import LANDMARK_FILES

            return (
                f"pose: MediaPipe BlazePose (offline .tflite, LiteRT) detector {provenance('blazepose_detector')} + "
                f"{c.landmark} landmarks "
                f"{provenance(LANDMARK_FILES[c.landmark])}, OpenPose 18-point skeleton (model)"
            )
        return f"pose: rtmlib YOLOX {c.det_checkpoint} + RTMPose {c.checkpoint}, OpenPose 18-point skeleton (model)"

    def setup(self) -> None:
        if self._pose is not None:
            return
        why = self.unavailable_reason()
        if why:
            raise ValueError(f"pose: {why}")
        c = self.config
        if c.model == "blazepose":
            from datagen.worker_cache import per_process
            from operators.conditions.pose_blazepose import BlazePose

            # one per worker process, whichever task or actor asks
            self._pose = per_process(("blazepose", c.landmark), lambda: BlazePose(c.landmark))
            return
        for path in (c.checkpoint, c.det_checkpoint):
            # rtmlib would treat a missing path as a URL to download; on our machines that must be an error
            if not os.path.isfile(path):
                raise FileNotFoundError(f"pose checkpoint {path!r} does not exist")
        from datagen.optional import require

        rtmlib = require("rtmlib")
        YOLOX, RTMPose = rtmlib.YOLOX, rtmlib.RTMPose

        from operators.models.onnx import check_provider, onnx_device, providers

        device = onnx_device(c.device)
        self._det = YOLOX(
            c.det_checkpoint,
            model_input_size=tuple(c.det_input_size),
            nms_thr=c.det_nms_threshold,
            score_thr=c.det_score_threshold,
            backend="onnxruntime",
            device=device,
        )
        self._pose = RTMPose(
            c.checkpoint, model_input_size=tuple(c.pose_input_size), backend="onnxruntime", device=device
        )
        asked = providers(c.device)
        for model in (self._det, self._pose):  # rtmlib keeps its ORT session; a CUDA one may land on the CPU
            if getattr(model, "session", None) is not None:
                check_provider(model.session, asked, self.name)

    def make_condition(self, image, rng):
        self.setup()
        c = self.config
        if c.model == "blazepose":
            return self._blazepose(image)
        bgr = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)  # rtmlib's models take OpenCV frames
        boxes = np.asarray(self._det(bgr), dtype=np.float32).reshape(-1, 4)
        if len(boxes) == 0:
            raise SkipImage(NO_PERSON)
        keypoints, scores = self._pose(bgr, bboxes=list(boxes))
        keypoints, scores = np.asarray(keypoints).reshape(-1, 17, 2), np.asarray(scores).reshape(-1, 17)
        people = (scores > c.kpt_threshold).sum(axis=1) >= c.min_keypoints
        if not people.any():
            raise SkipImage(NO_KEYPOINTS)
        k18, s18 = coco_to_openpose(keypoints[people], scores[people])
        h, w = image.shape[:2]
        return draw_bodies(h, w, k18, s18, c.kpt_threshold), {"people": int(people.sum())}

    def _blazepose(self, image: np.ndarray):
        from operators.conditions.pose_blazepose import to_coco

        c = self.config
        people = self._pose(image, c.max_people)
        if not people:
            raise SkipImage(NO_PERSON)
        keypoints, scores = to_coco(people)
        h, w = image.shape[:2]
        inside = (keypoints[..., 0] >= 0) & (keypoints[..., 0] < w) & (keypoints[..., 1] >= 0) & (keypoints[..., 1] < h)
        scores = np.where(inside, scores, 0.0)  # BlazePose guesses joints outside the frame; they are not drawn
        kept = (scores > c.kpt_threshold).sum(axis=1) >= c.min_keypoints
        if not kept.any():
            raise SkipImage(NO_KEYPOINTS)
        k18, s18 = coco_to_openpose(keypoints[kept], scores[kept])
        return draw_bodies(h, w, k18, s18, c.kpt_threshold), {"people": int(kept.sum())}
