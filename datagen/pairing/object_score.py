"""Object consistency, the pass-2 score of the editing and reference routes: how much of the same rigid object or
scene two images share, by geometric verification of ORB keypoint matches (the measure is defined on object_consistency)."""
from __future__ import annotations

import cv2
import numpy as np

DESCRIPTOR_BYTES = 32  # ORB


def orb_keypoints(image: np.ndarray, n_features: int = 300, side: int = 384) -> tuple[np.ndarray, np.ndarray]:
    """(xy float32 n x 2 in pixels of the image scaled to long side `side`, descriptors uint8 n x 32) of an RGB image."""
    gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    s = side / max(gray.shape)
    gray = cv2.resize(gray, (max(1, round(gray.shape[1] * s)), max(1, round(gray.shape[0] * s))), interpolation=cv2.INTER_AREA)
    # a low FAST threshold so smooth photos still give enough corners; ORB keeps the strongest n_features
    orb = cv2.ORB_create(nfeatures=n_features, fastThreshold=10)
    kps, desc = orb.detectAndCompute(gray, None)
    if desc is None or not kps:
        return np.zeros((0, 2), np.float32), np.zeros((0, DESCRIPTOR_BYTES), np.uint8)
    return np.float32([k.pt for k in kps]), np.ascontiguousarray(desc, dtype=np.uint8)


def pack(xy: np.ndarray, desc: np.ndarray) -> tuple[bytes, bytes]:
    return np.ascontiguousarray(xy, dtype=np.float32).tobytes(), np.ascontiguousarray(desc, dtype=np.uint8).tobytes()


def unpack(xy: bytes | None, desc: bytes | None) -> tuple[np.ndarray, np.ndarray]:
    if not xy or not desc:
        return np.zeros((0, 2), np.float32), np.zeros((0, DESCRIPTOR_BYTES), np.uint8)
    return np.frombuffer(xy, np.float32).reshape(-1, 2), np.frombuffer(desc, np.uint8).reshape(-1, DESCRIPTOR_BYTES)


def object_consistency(
    a: tuple[np.ndarray, np.ndarray],
    b: tuple[np.ndarray, np.ndarray],
    ratio: float = 0.8,
    ransac_px: float = 1.5,
    min_inliers: int = 12,
) -> tuple[float, int]:
    """(score in [0, 1], inlier count) for two (xy, descriptors) sets.

    The score is the share of the keypoints of the image with fewer keypoints that have a geometrically consistent
    match in the other: mutual nearest neighbours under Lowe's ratio test, then RANSAC (MAGSAC) on the fundamental
    matrix, so 3-D viewpoint changes count as consistent. High: the same objects and scene seen alike (an edit, a
    nearby frame, a stereo view); low but non-zero: the same object in a new framing or context (a crop, a zoom);
    zero: no shared rigid object (textures and look-alikes share colours, not geometry). Fewer than `min_inliers`
    inliers scores 0: a handful of chance matches always fits some fundamental matrix."""
    (xa, da), (xb, db) = a, b
    if len(da) < 8 or len(db) < 8:
        return 0.0, 0
    bf = cv2.BFMatcher(cv2.NORM_HAMMING)
    forward = bf.knnMatch(da, db, k=2)
    backward = {m[0].queryIdx: m[0].trainIdx for m in bf.knnMatch(db, da, k=1) if m}
    good = [
        m[0]
        for m in forward
        if len(m) == 2 and m[0].distance < ratio * m[1].distance and backward.get(m[0].trainIdx) == m[0].queryIdx
    ]
    if len(good) < max(8, min_inliers):
        return 0.0, 0
    pa = np.float32([xa[m.queryIdx] for m in good])
    pb = np.float32([xb[m.trainIdx] for m in good])
    try:
        _, mask = cv2.findFundamentalMat(pa, pb, cv2.USAC_MAGSAC, ransac_px, 0.999, 2000)
    except cv2.error:  # MAGSAC asserts on degenerate sets (e.g. every match on one line): no consistent geometry
        return 0.0, 0
    inliers = int(mask.sum()) if mask is not None else 0
    if inliers < min_inliers:
        return 0.0, inliers
    return min(1.0, inliers / min(len(xa), len(xb))), inliers
