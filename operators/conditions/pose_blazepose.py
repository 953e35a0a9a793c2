"""MediaPipe BlazePose on one photo, offline: the pose detector (224x224 SSD over 2254 anchors, a box plus four
alignment keypoints per person) finds each person, the rotated square region of interest around the hips is cut
out, and the landmark model (256x256) gives 33 body landmarks with visibility there, mapped back to the photo.
The .tflite files come from the npm package @mediapipe/pose (sha256-pinned in datagen.offline_weights) and run in
LiteRT (ai-edge-litert); OpenCV's TFLite importer cannot read the detector (its DENSIFY op).
Constants follow MediaPipe's pose_detection / pose_landmark graphs (anchors, decoding, ROI from alignment points)."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import cv2
import numpy as np

from datagen.offline_weights import verified_path

log = logging.getLogger(__name__)

DET_SIDE = 224
LMK_SIDE = 256
# SSD anchors of the pose detector: 5 layers, strides 8, 16, 32, 32, 32, one aspect ratio, fixed anchor size
STRIDES = (8, 16, 32, 32, 32)
ROI_SCALE = 1.25  # the ROI is the alignment circle's square, enlarged 25%
# BlazePose's 33 landmarks -> COCO's 17 keypoints (nose, eyes, ears, shoulders, elbows, wrists, hips, knees, ankles)
BLAZEPOSE_TO_COCO = [0, 2, 5, 7, 8, 11, 12, 13, 14, 15, 16, 23, 24, 25, 26, 27, 28]
LANDMARK_FILES = {"lite": "blazepose_landmark_lite", "full": "blazepose_landmark_full"}


def ssd_anchors() -> np.ndarray:
    """(2254, 2) anchor centres in [0, 1]: MediaPipe's SsdAnchorsCalculator for the pose detector (layers with the
    same stride share a feature map; each layer gives 2 anchors per cell, all of size 1 x 1)."""
    out = []
    i = 0
    while i < len(STRIDES):
        j = i
        while j < len(STRIDES) and STRIDES[j] == STRIDES[i]:
            j += 1
        per_cell = 2 * (j - i)
        n = math.ceil(DET_SIDE / STRIDES[i])
        ys, xs = np.meshgrid((np.arange(n) + 0.5) / n, (np.arange(n) + 0.5) / n, indexing="ij")
        centres = np.stack([xs.ravel(), ys.ravel()], axis=1)
        out.append(np.repeat(centres, per_cell, axis=0))
        i = j
    return np.concatenate(out).astype(np.float32)


@dataclass
class Person:
    score: float
    box: np.ndarray  # x0, y0, x1, y1 in image pixels
    alignment: np.ndarray  # (4, 2) detector keypoints in image pixels: hip centre, full-body scale point, ...
    landmarks: np.ndarray | None = None  # (33, 2) image pixels
    visibility: np.ndarray | None = None  # (33,) in [0, 1]
    presence: float = 0.0


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return (1.0 / (1.0 + np.exp(-np.clip(np.asarray(x, np.float64), -100.0, 100.0)))).astype(np.float32)


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    x0, y0 = np.maximum(a[0], b[:, 0]), np.maximum(a[1], b[:, 1])
    x1, y1 = np.minimum(a[2], b[:, 2]), np.minimum(a[3], b[:, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area = lambda r: (r[..., 2] - r[..., 0]) * (r[..., 3] - r[..., 1])  # noqa: E731
    return inter / np.maximum(area(a) + area(b) - inter, 1e-12)


def weighted_nms(
    scores: np.ndarray, boxes: np.ndarray, points: np.ndarray, iou: float
) -> list[tuple[float, np.ndarray, np.ndarray]]:
    """MediaPipe's weighted NMS: each kept detection is the score-weighted mean of the candidates it overlaps."""
    order = np.argsort(-scores)
    scores, boxes, points = scores[order], boxes[order], points[order]
    alive = np.ones(len(scores), bool)
    out = []
    for i in range(len(scores)):
        if not alive[i]:
            continue
        group = alive & (_iou(boxes[i], boxes) > iou)
        group[i] = True
        w = scores[group][:, None]
        out.append(
            (float(scores[i]), (boxes[group] * w).sum(0) / w.sum(), (points[group] * w[:, :, None]).sum(0) / w.sum())
        )
        alive &= ~group
    return out


class BlazePose:
    """Detector + landmark model in LiteRT. `landmark`: lite or full (the npm package's two smaller models)."""

    def __init__(self, landmark: str = "lite", det_score: float = 0.5, nms_iou: float = 0.3, threads: int = 1):
        from ai_edge_litert.interpreter import Interpreter

        det_path = verified_path("blazepose_detector")
        lmk_path = verified_path(LANDMARK_FILES[landmark])
        self.det = Interpreter(model_path=str(det_path), num_threads=threads)
        self.lmk = Interpreter(model_path=str(lmk_path), num_threads=threads)
        for it in (self.det, self.lmk):
            it.allocate_tensors()
        self._det_in = self.det.get_input_details()[0]["index"]
        self._det_out = {tuple(d["shape"][1:]): d["index"] for d in self.det.get_output_details()}
        self._lmk_in = self.lmk.get_input_details()[0]["index"]
        self._lmk_out = {d["name"]: d for d in self.lmk.get_output_details()}
        self.anchors = ssd_anchors()
        self.det_score, self.nms_iou = det_score, nms_iou
        log.info("pose: BlazePose detector %s + landmarks %s (LiteRT)", det_path, lmk_path)

    def detect(self, rgb: np.ndarray) -> list[Person]:
        """People in an RGB photo: letterboxed to 224 x 224 in [-1, 1], decoded against the anchors, weighted NMS."""
        h, w = rgb.shape[:2]
        s = DET_SIDE / max(h, w)
        nw, nh = max(1, round(w * s)), max(1, round(h * s))
        px, py = (DET_SIDE - nw) // 2, (DET_SIDE - nh) // 2
        canvas = np.zeros((DET_SIDE, DET_SIDE, 3), np.float32)
        canvas[py : py + nh, px : px + nw] = cv2.resize(rgb, (nw, nh), interpolation=cv2.INTER_AREA)
        self.det.set_tensor(self._det_in, (canvas / 127.5 - 1.0)[None])
        self.det.invoke()
        raw = self.det.get_tensor(self._det_out[(len(self.anchors), 12)])[0]
        scores = _sigmoid(self.det.get_tensor(self._det_out[(len(self.anchors), 1)])[0, :, 0])
        keep = scores >= self.det_score
        if not keep.any():
            return []
        raw, scores, anchors = raw[keep] / DET_SIDE, scores[keep], self.anchors[keep]
        cx, cy = raw[:, 0] + anchors[:, 0], raw[:, 1] + anchors[:, 1]
        boxes = np.stack([cx - raw[:, 2] / 2, cy - raw[:, 3] / 2, cx + raw[:, 2] / 2, cy + raw[:, 3] / 2], axis=1)
        points = raw[:, 4:12].reshape(-1, 4, 2) + anchors[:, None, :]

        def to_image(xy: np.ndarray) -> np.ndarray:  # letterboxed [0, 1] -> photo pixels
            return (xy * DET_SIDE - np.array([px, py], np.float32)) / s

        return [
            Person(sc, to_image(b.reshape(2, 2)).ravel(), to_image(p))
            for sc, b, p in weighted_nms(scores, boxes, points, self.nms_iou)
        ]

    @staticmethod
    def roi(alignment: np.ndarray) -> tuple[np.ndarray, float, float]:
        """The landmark model's region: centre on the hips, side 2 x |hips -> scale point| x 1.25, turned so that
        the hips -> scale point direction (towards the head) points up. Returns (centre px, side px, angle rad)."""
        c, top = alignment[0], alignment[1]
        d = top - c
        side = 2.0 * float(np.hypot(*d)) * ROI_SCALE
        return c.astype(np.float32), side, math.atan2(float(d[0]), float(-d[1]))

    @staticmethod
    def crop_to_image(centre: np.ndarray, side: float, angle: float) -> np.ndarray:
        """2 x 3 affine map from landmark-input pixels (0..256) to photo pixels."""
        k = side / LMK_SIDE
        ca, sa = math.cos(angle) * k, math.sin(angle) * k
        a = np.array([[ca, -sa], [sa, ca]], np.float32)
        b = centre - a @ np.array([LMK_SIDE / 2, LMK_SIDE / 2], np.float32)
        return np.concatenate([a, b[:, None]], axis=1)

    def landmarks(self, rgb: np.ndarray, person: Person) -> Person:
        centre, side, angle = self.roi(person.alignment)
        to_img = self.crop_to_image(centre, side, angle)
        crop = cv2.warpAffine(
            rgb,
            cv2.invertAffineTransform(to_img),
            (LMK_SIDE, LMK_SIDE),
            flags=cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_CONSTANT,
        )
        self.lmk.set_tensor(self._lmk_in, (crop.astype(np.float32) / 255.0)[None])
        self.lmk.invoke()
        out = {n: self.lmk.get_tensor(d["index"]) for n, d in self._lmk_out.items()}
        lm = next(v for v in out.values() if v.shape == (1, 195))[0].reshape(39, 5)
        flag = next(v for v in out.values() if v.shape == (1, 1))[0, 0]
        uv1 = np.concatenate([lm[:33, :2], np.ones((33, 1), np.float32)], axis=1)
        person.landmarks = uv1 @ to_img.T
        person.visibility = _sigmoid(lm[:33, 3]) * _sigmoid(lm[:33, 4])  # visible and present in the crop
        person.presence = float(flag)
        return person

    def __call__(self, rgb: np.ndarray, max_people: int = 4) -> list[Person]:
        rgb = np.ascontiguousarray(rgb)
        return [self.landmarks(rgb, p) for p in self.detect(rgb)[:max_people]]


def to_coco(people: list[Person]) -> tuple[np.ndarray, np.ndarray]:
    """(N, 17, 2) COCO-order keypoints in pixels and (N, 17) scores (BlazePose visibility x presence)."""
    if not people:
        return np.zeros((0, 17, 2), np.float32), np.zeros((0, 17), np.float32)
    k = np.stack([p.landmarks[BLAZEPOSE_TO_COCO] for p in people]).astype(np.float32)
    s = np.stack([p.visibility[BLAZEPOSE_TO_COCO] for p in people]).astype(np.float32)
    return k, s
