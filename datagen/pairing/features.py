"""The features job's last stage: it writes each photo's typed features (SourceImage.features, filled by the feature
operators in operators/features/) to OUT/features/PARTITION.parquet (schema.FEATURES_SCHEMA) before the job's
commit writes the done-marker."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from datagen import paths, schema
from datagen.batch import ITEM_FEATURES, ITEMS, WorkBatch
from datagen.operator import Operator, Role

log = logging.getLogger(__name__)


def entry_json(entry: dict[str, Any]) -> str:
    """What the pairs job needs to fetch the image again, exactly as the features job did."""
    keep = {k: entry[k] for k in ("uri", "rel", "tar", "member", "size") if k in entry}
    return json.dumps(keep, sort_keys=True)


def features_table(batch: WorkBatch) -> pa.Table:
    entries = {e["uri"]: e for e in batch.entries}
    rows = []
    for it in batch.items:
        m, f = it.meta, it.features
        if f.embedding is None:
            continue
        rows.append(
            {
                "source_id": it.source_id,
                "uri": it.uri,
                "entry": entry_json(entries.get(it.uri, {"uri": it.uri})),
                "caption": it.caption,
                "width": int(m.get("orig_width", it.image.shape[1])),
                "height": int(m.get("orig_height", it.image.shape[0])),
                "encoder": f.encoder or "",
                "embedding": np.asarray(f.embedding, np.float16),
                "face_count": -1 if f.face_count is None else int(f.face_count),
                "face_embedding": None if f.face_embedding is None else np.asarray(f.face_embedding, np.float16),
                "keypoints": f.keypoints,
                "descriptors": f.descriptors,
                "dhash": f.dhash,
                "edges": f.edges,
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
    reads = (
        ITEMS,
        ITEM_FEATURES["embedding"],
    )
    writes = ()

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
