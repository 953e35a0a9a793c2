"""The features job's contract: the SourceImage.meta keys where feature operators (operators/features/base.py) leave
their results, and the stage that writes OUT/features/PARTITION.parquet (schema.FEATURES_SCHEMA) from them before the
job's commit writes the done-marker."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from datagen import paths, schema
from datagen.batch import WorkBatch
from datagen.operator import Operator, Role

log = logging.getLogger(__name__)

# where feature operators leave their results in SourceImage.meta
META_EMBEDDING = "pairing.embedding"
META_ENCODER = "pairing.encoder"
META_FACE_COUNT = "pairing.face_count"
META_FACE_EMBEDDING = "pairing.face_embedding"
META_KEYPOINTS = "pairing.keypoints"
META_DESCRIPTORS = "pairing.descriptors"
META_DHASH = "pairing.dhash"
META_EDGES = "pairing.edges"


def entry_json(entry: dict[str, Any]) -> str:
    """What the pairs job needs to fetch the image again, exactly as the features job did."""
    keep = {k: entry[k] for k in ("uri", "rel", "tar", "member", "size") if k in entry}
    return json.dumps(keep, sort_keys=True)


def features_table(batch: WorkBatch) -> pa.Table:
    entries = {e["uri"]: e for e in batch.spec.get("entries", [])}
    rows = []
    for it in batch.items:
        m = it.meta
        if META_EMBEDDING not in m:
            continue
        face = m.get(META_FACE_EMBEDDING)
        rows.append(
            {
                "source_id": it.source_id,
                "uri": it.uri,
                "entry": entry_json(entries.get(it.uri, {"uri": it.uri})),
                "caption": it.caption,
                "width": int(m.get("orig_width", it.image.shape[1])),
                "height": int(m.get("orig_height", it.image.shape[0])),
                "encoder": m.get(META_ENCODER, ""),
                "embedding": np.asarray(m[META_EMBEDDING], np.float16),
                "face_count": int(m.get(META_FACE_COUNT, -1)),
                "face_embedding": None if face is None else np.asarray(face, np.float16),
                "keypoints": m.get(META_KEYPOINTS),
                "descriptors": m.get(META_DESCRIPTORS),
                "dhash": m.get(META_DHASH),
                "edges": m.get(META_EDGES),
            }
        )
    return pa.Table.from_pylist(rows, schema=schema.FEATURES_SCHEMA)


def features_file(out_dir: Path, partition: str) -> Path:
    return paths.safe_join(out_dir, schema.FEATURES_DIR, paths.check_partition_name(partition) + ".parquet")


class WriteFeatures(Operator):
    """The features job's last stage: the partition's feature rows go to OUT/features/PARTITION.parquet. The job's
    commit then writes the partition's quarantine rows and its done-marker (no shards: this job makes no samples),
    so a partition with a marker always has its features file."""

    name = "write_features"
    version = "1"
    role = Role.WRITE

    def __init__(self, out_dir: str | Path, **context: Any):
        super().__init__(None, **context)
        self.out_dir = Path(out_dir).resolve()

    def describe(self) -> str:
        return (
            f"write_features: float16 embeddings and per-image pairing features to {self.out_dir / schema.FEATURES_DIR}"
        )

    def process(self, batch: WorkBatch) -> WorkBatch:
        table = features_table(batch)
        paths.atomic_write_parquet(features_file(self.out_dir, batch.partition), table)
        return batch


def features_files(out_dir: Path) -> list[Path]:
    d = Path(out_dir) / schema.FEATURES_DIR
    return sorted(d.glob("*.parquet")) if d.exists() else []
