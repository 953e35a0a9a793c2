"""The last stage of every job: write a finished partition's shards, its quarantine rows, and then its
done-marker. A partition with a marker is never redone; one without is redone whole, giving the same keys."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa

from datagen import paths, schema
from datagen.batch import WorkBatch
from datagen.config import OutputConfig
from datagen.shards.writer import PartitionWriter


def commit_partition(batch: WorkBatch, out_dir: str | Path, output: OutputConfig) -> dict[str, Any]:
    out = Path(out_dir)
    writer = PartitionWriter(
        out,
        batch.partition,
        samples_per_shard=output.samples_per_shard,
        target_shard_bytes=int(output.target_shard_mb * (1 << 20)),
        photo_format=output.image_format,
        jpeg_quality=output.jpeg_quality,
    )
    # a stable order inside the partition, whatever order the operators appended in
    for sample in sorted(batch.samples, key=lambda s: s.key):
        writer.add(sample)
    shards = [s.to_json() for s in writer.close()]

    q_rows = [q.to_json() for q in batch.quarantine]
    if q_rows:
        paths.atomic_write_parquet(
            paths.partition_quarantine(out, batch.partition),
            pa.Table.from_pylist(q_rows, schema=schema.QUARANTINE_SCHEMA),
        )
    tasks: dict[str, int] = {}
    lcu_tasks: dict[str, int] = {}
    for s in batch.samples:
        tasks[s.task] = tasks.get(s.task, 0) + 1
        if s.kind == schema.KIND_LCU:
            lcu_tasks[s.task] = lcu_tasks.get(s.task, 0) + 1
    reasons: dict[str, int] = {}
    for q in batch.quarantine:
        reasons[q.reason] = reasons.get(q.reason, 0) + 1
    result = {
        "partition": batch.partition,
        "entries": len(batch.entries),
        "items": len(batch.items),
        "samples": len(batch.samples),
        "tasks": dict(sorted(tasks.items())),
        "lcu_tasks": dict(sorted(lcu_tasks.items())),  # the multi-turn share of `tasks`
        "quarantine": dict(sorted(reasons.items())),
        "shards": shards,
        "stages": {k: v.to_json() for k, v in batch.stats.items()},
    }
    paths.atomic_write_json(paths.partition_marker(out, batch.partition), result)  # last: the done-marker
    return result


def read_marker(out_dir: str | Path, partition: str) -> dict[str, Any] | None:
    p = paths.partition_marker(Path(out_dir), partition)
    if not p.exists():
        return None
    return json.loads(p.read_text())
