"""Draw body keypoints the way OpenPose / ControlNet / DWPose do: COCO's 17 keypoints plus a neck (18 points),
17 limbs as 60%-bright ellipses, then a coloured dot per keypoint, on black."""

from __future__ import annotations

import math

import cv2
import numpy as np

# OpenPose body order: nose, neck, r-shoulder, r-elbow, r-wrist, l-shoulder, l-elbow, l-wrist, r-hip, r-knee,
# r-ankle, l-hip, l-knee, l-ankle, r-eye, l-eye, r-ear, l-ear.
COCO_TO_OPENPOSE = [0, 17, 6, 8, 10, 5, 7, 9, 12, 14, 16, 11, 13, 15, 2, 1, 4, 3]  # 17 = the neck added below
LIMBS = [
    (1, 2),
    (1, 5),
    (2, 3),
    (3, 4),
    (5, 6),
    (6, 7),
    (1, 8),
    (8, 9),
    (9, 10),
    (1, 11),
    (11, 12),
    (12, 13),
    (1, 0),
    (0, 14),
    (14, 16),
    (0, 15),
    (15, 17),
]
COLORS = [
    (255, 0, 0),
    (255, 85, 0),
    (255, 170, 0),
    (255, 255, 0),
    (170, 255, 0),
    (85, 255, 0),
    (0, 255, 0),
    (0, 255, 85),
    (0, 255, 170),
    (0, 255, 255),
    (0, 170, 255),
    (0, 85, 255),
    (0, 0, 255),
    (85, 0, 255),
    (170, 0, 255),
    (255, 0, 255),
    (255, 0, 170),
    (255, 0, 85),
]
REFERENCE_SIDE = 512  # stick width 4 and dot radius 4 at 512px, as in ControlNet; scaled with the image


def coco_to_openpose(keypoints: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N,17,2), (N,17) COCO order -> (N,18,2), (N,18) OpenPose order; the neck is the shoulders' midpoint and
    takes the weaker shoulder's score."""
    neck = keypoints[:, [5, 6]].mean(axis=1, keepdims=True)
    neck_score = scores[:, [5, 6]].min(axis=1, keepdims=True)
    k = np.concatenate([keypoints, neck], axis=1)[:, COCO_TO_OPENPOSE]
    s = np.concatenate([scores, neck_score], axis=1)[:, COCO_TO_OPENPOSE]
    return k, s


def draw_bodies(height: int, width: int, keypoints: np.ndarray, scores: np.ndarray, threshold: float) -> np.ndarray:
    """OpenPose-order keypoints (N,18,2) in pixels with scores (N,18) -> HxWx3 uint8 RGB skeleton map."""
    scale = max(height, width) / REFERENCE_SIDE
    stick = max(1, int(round(4 * scale)))
    radius = max(1, int(round(4 * scale)))
    canvas = np.zeros((height, width, 3), np.uint8)
    visible = scores > threshold
    for person, vis in zip(keypoints, visible):
        for (a, b), color in zip(LIMBS, COLORS):
            if not (vis[a] and vis[b]):
                continue
            (xa, ya), (xb, yb) = person[a], person[b]
            length = math.hypot(xa - xb, ya - yb)
            angle = math.degrees(math.atan2(ya - yb, xa - xb))
            poly = cv2.ellipse2Poly(
                (int((xa + xb) / 2), int((ya + yb) / 2)), (int(length / 2), stick), int(angle), 0, 360, 1
            )
            cv2.fillConvexPoly(canvas, poly, color)
    canvas = (canvas * 0.6).astype(np.uint8)
    for person, vis in zip(keypoints, visible):
        for j, color in enumerate(COLORS):
            if vis[j]:
                cv2.circle(canvas, (int(person[j][0]), int(person[j][1])), radius, color, thickness=-1)
    return canvas
