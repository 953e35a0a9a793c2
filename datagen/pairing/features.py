"""The features job's shared parts: the base of per-image feature operators (results land in each SourceImage's
meta under the keys below; one failing image is quarantined rather than losing its batch) and the stage that writes
OUT/features/PARTITION.parquet (schema.FEATURES_SCHEMA) before the job's commit writes the done-marker."""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pyarrow as pa

from datagen import paths, schema
from datagen.batch import QuarantineRow, SourceImage, WorkBatch
from datagen.operator import Operator

log = logging.getLogger(__name__)

# where feature operators leave their results in SourceImage.meta
META_EMBEDDING = "pairing.embedding"
META_ENCODER = "pairing.encoder"
META_FACE_COUNT = "pairing.face_count"
META_FACE_EMBEDDING = "pairing.face_embedding"
META_KEYPOINTS = "pairing.keypoints"
META_DESCRIPTORS = "pairing.descriptors"
META_DHASH = "pairing.dhash"

FEATURE_ERROR = "feature_error"
FEATURES_ROLE = "features"  # not "maker": the images job must never pick these up


class FeatureOperator(Operator):
    """Computes one kind of per-image feature for a whole batch of images at a time."""

    role: ClassVar[str] = FEATURES_ROLE

    def compute(self, images: list[np.ndarray]) -> list[dict[str, Any]]:
        """One dict of meta entries per image, in order."""
        raise NotImplementedError

    def process(self, batch: WorkBatch) -> WorkBatch:
        bs = max(1, self.resources().batch_size)
        kept: list[SourceImage] = []
        for start in range(0, len(batch.items), bs):
            chunk = batch.items[start : start + bs]
            try:
                results = self.compute([it.image for it in chunk])
            except Exception as err:  # noqa: BLE001 - isolate the image that breaks the model, keep the others
                log.warning("%s: batch failed (%s: %s); retrying image by image", self.name, type(err).__name__, err)
                results = []
                for it in chunk:
                    try:
                        results.append(self.compute([it.image])[0])
                    except Exception as one:  # noqa: BLE001
                        batch.quarantine.append(QuarantineRow(it.uri, FEATURE_ERROR, self.name, f"{type(one).__name__}: {one}"))
                        results.append(None)
            for it, res in zip(chunk, results):
                if res is None:
                    continue
                it.meta.update(res)
                kept.append(it)
        batch.items = kept
        return batch


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
    role = FEATURES_ROLE

    def __init__(self, out_dir: str | Path, **context: Any):
        super().__init__(None, **context)
        self.out_dir = Path(out_dir).resolve()

    def describe(self) -> str:
        return f"write_features: float16 embeddings and per-image pairing features to {self.out_dir / schema.FEATURES_DIR}"

    def process(self, batch: WorkBatch) -> WorkBatch:
        table = features_table(batch)
        paths.atomic_write_parquet(features_file(self.out_dir, batch.partition), table)
        return batch


def features_files(out_dir: Path) -> list[Path]:
    d = Path(out_dir) / schema.FEATURES_DIR
    return sorted(d.glob("*.parquet")) if d.exists() else []
