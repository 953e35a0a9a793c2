"""Write one partition's samples as webdataset shards: NAME.tar and its NAME.parquet index, each written under
a temporary name and renamed, then NAME.stats.json last as the shard's done-marker (as img2dataset does)."""

from __future__ import annotations

import hashlib
import io
import json
import logging
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa

from datagen import paths, schema
from datagen.schema import Sample
from datagen.shards.codec import EncodeMemo, encode_sample

log = logging.getLogger(__name__)


@dataclass
class ShardStats:
    shard: str
    count: int
    bytes: int
    sha256: str
    tasks: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> dict:
        return {
            "shard": self.shard,
            "count": self.count,
            "bytes": self.bytes,
            "sha256": self.sha256,
            "tasks": dict(sorted(self.tasks.items())),
            "schema": schema.SCHEMA_VERSION,
        }


def index_row(sample: Sample, shard: str, nbytes: int) -> dict:
    cur = sample.current
    w, h = cur.target.size
    return {
        "key": sample.key,
        "shard": shard,
        "kind": sample.kind,
        "task": sample.task,
        "task_group": schema.TASKS[sample.task].group,
        "direction": sample.direction,
        "n_turns": len(sample.turns),
        "n_inputs": sample.n_images_visible(len(sample.turns) - 1),
        "width": w,
        "height": h,
        "instruction": cur.instruction,
        "instruction_method": cur.instruction_method,
        "sources": list(sample.provenance.sources),
        "operator": sample.provenance.operator,
        "operator_version": sample.provenance.operator_version,
        "params": json.dumps(sample.provenance.params, sort_keys=True, default=str),
        "scores": json.dumps(sample.provenance.scores, sort_keys=True),
        "bytes": nbytes,
        **{schema.score_column(k): float(v) for k, v in sample.provenance.scores.items() if k in schema.SCORES},
        **(
            {"rejected_by": sample.rejected.stage, "reason": sample.rejected.reason, "reasons": sample.rejected.reasons}
            if sample.rejected is not None
            else {}
        ),
    }


def _add_member(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = 0  # fixed header fields: the same samples give the same bytes
    info.mode = 0o644
    info.uname = info.gname = ""
    tar.addfile(info, io.BytesIO(data))


class _OpenShard:
    def __init__(self, name: str):
        self.name = name
        self.buf = io.BytesIO()
        self.tar = tarfile.open(fileobj=self.buf, mode="w", format=tarfile.USTAR_FORMAT)
        self.rows: list[dict] = []
        self.tasks: dict[str, int] = {}

    @property
    def nbytes(self) -> int:
        return self.buf.tell()


class PartitionWriter:
    """Collects a partition's samples into shards named PARTITION-000, PARTITION-001, ...

    Shards are held in memory until full (bounded by target_shard_bytes), then written atomically.
    Nothing is visible under its final name until complete; the stats file comes last.
    """

    def __init__(
        self,
        out_dir: str | Path,
        partition: str,
        samples_per_shard: int = 1000,
        target_shard_bytes: int = 512 << 20,
        photo_format: str = "jpg",
        jpeg_quality: int = 95,
        rejects: bool = False,
    ):
        self.out_dir = Path(out_dir)
        # a folder of rejects (OUT/rejects/): every sample carries its RejectRecord, and the index says why
        self.rejects = rejects
        self.partition = paths.check_partition_name(partition)
        self.samples_per_shard = samples_per_shard
        self.target_shard_bytes = target_shard_bytes
        self.photo_format = photo_format
        self.jpeg_quality = jpeg_quality
        self._shard: _OpenShard | None = None
        self._n_shards = 0
        self.written: list[ShardStats] = []
        self._seen: set[str] = set()
        self._memo = EncodeMemo()  # a photo shared by many samples is encoded once

    def _new_shard(self) -> _OpenShard:
        name = f"{self.partition}-{self._n_shards:03d}"
        self._n_shards += 1
        return _OpenShard(name)

    def add(self, sample: Sample) -> None:
        if sample.key in self._seen:
            raise ValueError(f"duplicate sample key {sample.key} in partition {self.partition}")
        self._seen.add(sample.key)
        if (sample.rejected is not None) != self.rejects:
            where = "rejects" if self.rejects else "training shards"
            raise ValueError(f"sample {sample.key}: {'un' if self.rejects else ''}rejected sample among the {where}")
        members = encode_sample(sample, self.photo_format, self.jpeg_quality, self._memo)
        for ext in members:
            if ext.rsplit(".", 1)[-1] in schema.FORBIDDEN_EXTENSIONS:
                raise ValueError(f"member extension {ext!r} is forbidden in shards")
        if self._shard is None:
            self._shard = self._new_shard()
        shard = self._shard
        nbytes = 0
        # json first, then images in a stable order; all members of a sample stay contiguous
        for ext in [schema.JSON_MEMBER] + sorted(e for e in members if e != schema.JSON_MEMBER):
            _add_member(shard.tar, f"{sample.key}.{ext}", members[ext])
            nbytes += len(members[ext])
        shard.rows.append(index_row(sample, shard.name, nbytes))
        shard.tasks[sample.task] = shard.tasks.get(sample.task, 0) + 1
        if len(shard.rows) >= self.samples_per_shard or shard.nbytes >= self.target_shard_bytes:
            self._flush()

    def _flush(self) -> None:
        shard = self._shard
        self._shard = None
        if shard is None or not shard.rows:
            return
        shard.tar.close()
        data = shard.buf.getvalue()
        tar_path = paths.safe_join(self.out_dir, shard.name + ".tar")
        paths.atomic_write_bytes(tar_path, data)
        table = pa.Table.from_pylist(
            shard.rows, schema=schema.REJECTS_INDEX_SCHEMA if self.rejects else schema.INDEX_SCHEMA
        )
        paths.atomic_write_parquet(paths.safe_join(self.out_dir, shard.name + ".parquet"), table)
        self.written.append(
            ShardStats(shard.name, len(shard.rows), len(data), hashlib.sha256(data).hexdigest(), shard.tasks)
        )

    def close(self) -> list[ShardStats]:
        """Flush the last shard, then write every shard's stats file (the done-markers)."""
        self._flush()
        self._memo = EncodeMemo()
        for st in self.written:
            paths.atomic_write_json(paths.safe_join(self.out_dir, st.shard + ".stats.json"), st.to_json())
        return self.written
