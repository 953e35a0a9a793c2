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
from datagen.schema import Sample
from datagen.shards.writer import PartitionWriter


def write_shards(samples: list[Sample], out: Path, partition: str, output: OutputConfig, rejects: bool = False):
    writer = PartitionWriter(
        out,
        partition,
        samples_per_shard=output.samples_per_shard,
        target_shard_bytes=int(output.target_shard_mb * (1 << 20)),
        photo_format=output.image_format,
        jpeg_quality=output.jpeg_quality,
        rejects=rejects,
    )
    # a stable order inside the partition, whatever order the operators appended in
    for sample in sorted(samples, key=lambda s: s.key):
        writer.add(sample)
    return [s.to_json() for s in writer.close()]


def funnel(batch: WorkBatch) -> dict[str, dict[str, Any]]:
    """Per task: `made` (what reached the recipe's rules; what was written when no rule ran), `dropped` (the funnel's
    reason -> samples) and `written`, with made = written + dropped (checked: a sample lost without a reason is a
    bug, and the partition is not committed)."""
    written: dict[str, int] = {}
    for s in batch.samples:
        written[s.task] = written.get(s.task, 0) + 1
    dropped: dict[str, dict[str, int]] = {}
    for s in batch.rejects:
        per = dropped.setdefault(s.task, {})
        per[s.rejected.reason] = per.get(s.rejected.reason, 0) + 1
    made = batch.made if batch.made is not None else written
    out = {}
    for task in sorted(set(made) | set(written) | set(dropped)):
        row = {
            "made": made.get(task, 0),
            "dropped": dict(sorted(dropped.get(task, {}).items())),
            "written": written.get(task, 0),
        }
        if row["made"] != row["written"] + sum(row["dropped"].values()):
            raise RuntimeError(
                f"partition {batch.partition}: task {task!r}: {row['made']} samples reached the rules, "
                f"{row['written']} written + {sum(row['dropped'].values())} rejected: samples lost without a reason"
            )
        out[task] = row
    return out


def commit_partition(batch: WorkBatch, out_dir: str | Path, output: OutputConfig) -> dict[str, Any]:
    out = Path(out_dir)
    counts = funnel(batch)
    shards = write_shards(batch.samples, out, batch.partition, output)
    # the rejects before the done-marker, like the shards: a partition redone after a kill rewrites both
    rejects = write_shards(batch.rejects, out / paths.REJECTS_DIR, batch.partition, output, rejects=True)

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
        "rejects": len(batch.rejects),
        "reject_shards": rejects,
        "funnel": counts,
        "stages": {k: v.to_json() for k, v in batch.stats.items()},
    }
    paths.atomic_write_json(paths.partition_marker(out, batch.partition), result)  # last: the done-marker
    return result


def read_marker(out_dir: str | Path, partition: str) -> dict[str, Any] | None:
    p = paths.partition_marker(Path(out_dir), partition)
    if not p.exists():
        return None
    return json.loads(p.read_text())
