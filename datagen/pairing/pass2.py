"""Pass 2 of the two-pass union-find: re-score every pass-1 link with a route's task score, from features stored per
image (no image is decoded again). `face`: cosine of the two face embeddings (ArcFace or SFace), only when both
images hold exactly one face; `object`: object consistency (object_score.py); `none`: the pass-1 cosine itself."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from datagen.pairing.config import SCORE_FACE, SCORE_NONE, SCORE_OBJECT
from datagen.pairing.object_score import edge_alignment, object_consistency, shape_fallback, unpack, unpack_edges

NOT_ONE_FACE = "face: an image without exactly one face"
NO_FACES_RUN = "face: faces were not detected in the features job"


def _list_column(table: pa.Table, name: str, dim_hint: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(n x d float32 matrix, row-valid mask) from a list<float16> column with nulls."""
    col = table.column(name).combine_chunks()
    valid = ~np.asarray(col.is_null().to_numpy(zero_copy_only=False), dtype=bool)
    n = len(col)
    lengths = np.zeros(n, np.int64)
    if valid.any():
        lengths[valid] = np.asarray(col.filter(pa.array(valid)).value_lengths().to_numpy(), np.int64)
    d = int(lengths.max()) if n and lengths.max() > 0 else dim_hint
    out = np.full((n, d), np.nan, np.float32)
    if valid.any():
        flat = np.asarray(col.filter(pa.array(valid)).flatten().to_numpy(zero_copy_only=False), np.float32)
        out[valid] = flat.reshape(int(valid.sum()), d)
    return out, valid


@dataclass
class GroupFeatures:
    """The per-image features of one group of clusters, rows in the group's order."""

    table: pa.Table
    _kp: dict[int, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.embeddings, _ = _list_column(self.table, "embedding")
        self.face_count = np.asarray(self.table.column("face_count").to_numpy(), np.int64)
        self.faces, self.has_face = _list_column(self.table, "face_embedding")
        self._xy = self.table.column("keypoints").to_pylist()
        self._desc = self.table.column("descriptors").to_pylist()
        names = self.table.column_names
        self._edges = self.table.column("edges").to_pylist() if "edges" in names else [None] * self.table.num_rows
        self.has_edges = any(e for e in self._edges)

    def edges(self, i: int) -> np.ndarray | None:
        return unpack_edges(self._edges[i])

    def keypoints(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        if i not in self._kp:
            self._kp[i] = unpack(self._xy[i], self._desc[i])
        return self._kp[i]


def object_score(feats: GroupFeatures, a: int, b: int) -> float:
    """ORB-verified object consistency; where ORB verifies nothing (a filled shape and its outline share geometry but
    no descriptor), the edge-map fallback."""
    score = object_consistency(feats.keypoints(a), feats.keypoints(b))[0]
    if score > 0:
        return score
    return shape_fallback(edge_alignment(feats.edges(a), feats.edges(b)))


def link_scores(
    kind: str, feats: GroupFeatures, i: np.ndarray, j: np.ndarray, pass1: np.ndarray
) -> tuple[np.ndarray, dict[str, int]]:
    """Score of each link (i[k], j[k]); NaN where the score does not apply, with the reasons counted."""
    skipped: dict[str, int] = {}
    if kind == SCORE_NONE:
        return np.asarray(pass1, np.float64), skipped
    if kind == SCORE_FACE:
        if (feats.face_count < 0).all():
            if len(i):
                skipped[NO_FACES_RUN] = len(i)
            return np.full(len(i), np.nan), skipped
        ok = (feats.face_count[i] == 1) & (feats.face_count[j] == 1) & feats.has_face[i] & feats.has_face[j]
        scores = np.full(len(i), np.nan)
        if ok.any():
            a, b = feats.faces[i[ok]].astype(np.float64), feats.faces[j[ok]].astype(np.float64)
            scores[ok] = np.einsum("ij,ij->i", a, b) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
        if (~ok).any():
            skipped[NOT_ONE_FACE] = int((~ok).sum())
        return scores, skipped
    if kind == SCORE_OBJECT:
        return np.fromiter((object_score(feats, a, b) for a, b in zip(i, j)), np.float64, len(i)), skipped
    raise ValueError(f"unknown pass-2 score {kind!r}")
