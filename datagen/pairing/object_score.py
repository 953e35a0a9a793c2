"""Object consistency, the pass-2 score of the editing and reference routes: how much of the same rigid object or
scene two images share, by geometric verification of ORB keypoint matches (the measure is defined on
object_consistency),
and its fallback where ORB has nothing to match: the alignment of the two images' edge maps (edge_alignment)."""

from __future__ import annotations

import cv2
import numpy as np

DESCRIPTOR_BYTES = 32  # ORB


def orb_keypoints(image: np.ndarray, n_features: int = 300, side: int = 384) -> tuple[np.ndarray, np.ndarray]:
    """(xy float32 n x 2 in pixels of the image scaled to long side `side`, descriptors uint8 n x 32) of an RGB
    image."""
    gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    s = side / max(gray.shape)
    gray = cv2.resize(
        gray, (max(1, round(gray.shape[1] * s)), max(1, round(gray.shape[0] * s))), interpolation=cv2.INTER_AREA
    )
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
    if (len(da), da.tobytes()) > (len(db), db.tobytes()):
        # the ratio test looks one way: a fixed order (fewer keypoints first) makes the score symmetric
        (xa, da), (xb, db) = (xb, db), (xa, da)
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
    cv2.setRNGSeed(0)  # MAGSAC samples at random: the same pair must score the same whatever was scored before it
    try:
        _, mask = cv2.findFundamentalMat(pa, pb, cv2.USAC_MAGSAC, ransac_px, 0.999, 2000)
    except cv2.error:
        # OpenCV 4.12's MAGSAC can assert (!model.empty()) on some sets, near-identical views included: plain RANSAC
        try:
            _, mask = cv2.findFundamentalMat(pa, pb, cv2.FM_RANSAC, ransac_px, 0.999, 2000)
        except cv2.error:
            return 0.0, 0
    inliers = int(mask.sum()) if mask is not None else 0
    if inliers < min_inliers:
        return 0.0, inliers
    return min(1.0, inliers / min(len(xa), len(xb))), inliers


EDGE_SIDE = 96  # edge maps are taken on a square resample, like the classical encoder's layout
EDGE_NEAR_PX = 2
EDGE_MIN_ALIGNMENT = 0.7  # below this, edge maps agree no more than unrelated photos' do on the tuning split
EDGE_WEIGHT = 0.5  # geometry alone, no matching appearance: counts half of an ORB-verified share


def edge_map(image: np.ndarray, side: int = EDGE_SIDE) -> bytes:
    """Packed bits of the Canny edges of an RGB image resampled to side x side (after a light blur, so that texture
    noise and JPEG blocks give few edges)."""
    gray = cv2.resize(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY), (side, side), interpolation=cv2.INTER_AREA)
    edges = cv2.Canny(cv2.GaussianBlur(gray, (0, 0), 1.0), 50, 120) > 0
    return np.packbits(edges).tobytes()


def unpack_edges(packed: bytes | None, side: int = EDGE_SIDE) -> np.ndarray | None:
    if not packed:
        return None
    return np.unpackbits(np.frombuffer(packed, np.uint8))[: side * side].reshape(side, side).astype(bool)


def _excess(a: np.ndarray, b: np.ndarray) -> float:
    """How much more often than chance a's edge pixels lie within EDGE_NEAR_PX of b's edges, in [0, 1] (0 when b's
    edges cover half the frame: textures say nothing)."""
    r = EDGE_NEAR_PX
    near = cv2.dilate(b.astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))) > 0
    chance = float(near.mean())
    if chance > 0.5:
        return 0.0
    return max(0.0, (float(near[a].mean()) - chance) / (1.0 - chance))


def edge_alignment(a: np.ndarray | None, b: np.ndarray | None, min_edges: int = 20) -> float:
    """Symmetric edge agreement of two edge maps (the weaker direction): near 1 when one image's outlines are the
    other's (a shape and its template, a drawing and its colouring), near 0 for unrelated photos."""
    if a is None or b is None or a.sum() < min_edges or b.sum() < min_edges:
        return 0.0
    return min(_excess(a, b), _excess(b, a))


def shape_fallback(alignment: float) -> float:
    """The object score that edge agreement alone earns: none below EDGE_MIN_ALIGNMENT, else EDGE_WEIGHT of it."""
    return EDGE_WEIGHT * alignment if alignment >= EDGE_MIN_ALIGNMENT else 0.0


EDGE_LAYOUT_SIDE = 24


def edge_layout(edges: np.ndarray | None) -> np.ndarray:
    """Where an image's edges lie, as a blurred 24 x 24 density (576 values; zeros without an edge map): a
    descriptor under which a shape and its outline, or a document and its blurred copy, are near neighbours even
    when the encoder, which sees fill, colour and texture, puts them apart."""
    if edges is None:
        return np.zeros(EDGE_LAYOUT_SIDE * EDGE_LAYOUT_SIDE, np.float32)
    d = cv2.GaussianBlur(edges.astype(np.float32), (0, 0), 3.0)
    return cv2.resize(d, (EDGE_LAYOUT_SIDE, EDGE_LAYOUT_SIDE), interpolation=cv2.INTER_AREA).ravel()
