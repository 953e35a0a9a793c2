"""Output-folder layout and atomic file writes: every file lands under a temporary name and is renamed,
and no name may escape the output folder."""

from __future__ import annotations

import json
import os
import re
import uuid
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

TMP_MARK = ".tmp-"
PARTITION_NAME_RE = re.compile(r"^[a-z][a-z0-9_]*-\d{5}$")

PROGRESS_DIR = "_progress"  # one done-marker per finished partition
QUARANTINE_DIR = "_quarantine"  # one parquet per partition, merged into quarantine.parquet at the end
PLAN_DIR = "_plan"  # the frozen partition plan of each job in this output folder
# the samples the recipe's rules dropped, as shards of the same contract (PARTITION-NNN.tar, .parquet, .stats.json),
# with why: a folder of its own, so that readers and trainers of OUT's shards never see them
REJECTS_DIR = "rejects"
RUN_FILE = "run.json"
QUARANTINE_FILE = "quarantine.parquet"
# Reviewer decisions: keys listed here (column `key`, optional `reason`) are dropped by readers and trainers,
# and removed for good by `datagen filter`.
DROPPED_KEYS_FILE = "dropped_keys.parquet"


class UnsafePathError(ValueError):
    pass


def safe_join(root: str | Path, *parts: str) -> Path:
    """Join under root, refusing absolute parts, '..' and anything that resolves outside root."""
    root = Path(root).resolve()
    for p in parts:
        if os.path.isabs(p) or ".." in Path(p).parts:
            raise UnsafePathError(f"path part {p!r} would escape the output folder {root}")
    path = root.joinpath(*parts).resolve()
    if path != root and root not in path.parents:
        raise UnsafePathError(f"{path} is outside the output folder {root}")
    return path


def _tmp_name(path: Path) -> Path:
    return path.with_name(f"{path.name}{TMP_MARK}{uuid.uuid4().hex[:8]}")


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_name(path)
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n").encode())


def atomic_write_parquet(path: Path, table: pa.Table) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_name(path)
    pq.write_table(table, tmp)
    os.replace(tmp, path)


def remove_stale_temps(root: Path) -> int:
    """Delete temporary files left by a killed run; they were never renamed, so nothing depended on them."""
    n = 0
    if not root.exists():
        return 0
    for p in root.rglob(f"*{TMP_MARK}*"):
        if p.is_file():
            p.unlink()
            n += 1
    return n


def check_partition_name(name: str) -> str:
    if not PARTITION_NAME_RE.match(name):
        raise UnsafePathError(f"partition name {name!r} does not match {PARTITION_NAME_RE.pattern}")
    return name


def partition_marker(out_dir: Path, name: str) -> Path:
    return safe_join(out_dir, PROGRESS_DIR, check_partition_name(name) + ".done.json")


def partition_quarantine(out_dir: Path, name: str) -> Path:
    return safe_join(out_dir, QUARANTINE_DIR, check_partition_name(name) + ".parquet")


def plan_file(out_dir: Path, job: str) -> Path:
    return safe_join(out_dir, PLAN_DIR, job + ".json")
