"""`datagen filter`: drop reviewer-marked samples, or everything a rule made (operator, task), and rewrite the
affected shards, their index and stats atomically. Unaffected shards are left byte for byte."""
from __future__ import annotations

import hashlib
import io
import json
import shutil
import tarfile
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from datagen import paths, schema
from datagen.config import ConfigError
from datagen.shards.reader import shard_paths

RULE_FIELDS = ("operator", "task", "task_group", "instruction_method", "kind")


def load_marks(path: str | Path) -> tuple[set[str], list[dict[str, str]]]:
    """(keys, rules) from a marks file exported by the review page (JSON) or a parquet/CSV with a `key` column."""
    p = Path(path)
    if p.suffix == ".json":
        data = json.loads(p.read_text())
        marks = data.get("marks", data) if isinstance(data, dict) else data
        keys = {m["key"] for m in marks if "key" in m}
        rules = [m["rule"] for m in marks if "rule" in m]
    else:
        table = pq.read_table(p) if p.suffix == ".parquet" else pa.csv.read_csv(p)
        keys, rules = set(table.column("key").to_pylist()), []
    for r in rules:
        bad = set(r) - set(RULE_FIELDS)
        if bad or not r:
            raise ConfigError(f"rule {r}: allowed fields are {RULE_FIELDS}")
    return keys, rules


def parse_rule(text: str) -> dict[str, str]:
    """'operator=canny' or 'task=Grayscale' (several joined with ',')."""
    rule = {}
    for part in text.split(","):
        k, _, v = part.partition("=")
        if k.strip() not in RULE_FIELDS or not v:
            raise ConfigError(f"--rule {text!r}: use FIELD=VALUE with FIELD one of {RULE_FIELDS}")
        rule[k.strip()] = v.strip()
    return rule


def _matches(index: pa.Table, rule: dict[str, str]) -> pa.ChunkedArray:
    mask = None
    for k, v in rule.items():
        m = pc.equal(index.column(k), v)
        mask = m if mask is None else pc.and_(mask, m)
    return mask


def _rewrite_tar(src: Path, dst: Path, drop: set[str]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(src, "r:") as tin, tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tout:
        for m in tin:
            if m.name.split(".", 1)[0] in drop:
                continue
            tout.addfile(m, tin.extractfile(m))
    return buf.getvalue()


def filter_dir(root: str | Path, keys: set[str], rules: list[dict[str, str]], out: str | Path | None = None) -> dict[str, Any]:
    root = Path(root)
    dst = Path(out) if out else root
    dst.mkdir(parents=True, exist_ok=True)
    dropped_file = root / paths.DROPPED_KEYS_FILE
    if dropped_file.exists():
        keys = keys | set(pq.read_table(dropped_file).column("key").to_pylist())
    report: dict[str, Any] = {"dropped": 0, "kept": 0, "shards_rewritten": 0, "by_task": {}}
    for tar in shard_paths(root):
        index = pq.read_table(tar.with_suffix(".parquet"))
        mask = pc.is_in(index.column("key"), pa.array(sorted(keys), pa.string()))
        for r in rules:
            mask = pc.or_(mask, _matches(index, r))
        drop_rows = index.filter(mask)
        keep = index.filter(pc.invert(mask))
        report["dropped"] += drop_rows.num_rows
        report["kept"] += keep.num_rows
        for t in drop_rows.column("task").to_pylist():
            report["by_task"][t] = report["by_task"].get(t, 0) + 1
        names = [tar.name, tar.with_suffix(".parquet").name, tar.with_suffix(".stats.json").name]
        if drop_rows.num_rows == 0:
            if dst != root:
                for n in names:
                    shutil.copy2(root / n, dst / n)
            continue
        report["shards_rewritten"] += 1
        stats_dst = dst / names[2]
        if stats_dst.exists():
            stats_dst.unlink()  # the shard is incomplete until its new stats land
        if keep.num_rows == 0:
            for n in names[:2]:
                (dst / n).unlink(missing_ok=True)
            continue
        data = _rewrite_tar(tar, dst / names[0], set(drop_rows.column("key").to_pylist()))
        paths.atomic_write_bytes(dst / names[0], data)
        paths.atomic_write_parquet(dst / names[1], keep)
        tasks: dict[str, int] = {}
        for t in keep.column("task").to_pylist():
            tasks[t] = tasks.get(t, 0) + 1
        paths.atomic_write_json(stats_dst, {"shard": tar.stem, "count": keep.num_rows, "bytes": len(data),
                                            "sha256": hashlib.sha256(data).hexdigest(), "tasks": dict(sorted(tasks.items())),
                                            "schema": schema.SCHEMA_VERSION})
    report["rules"] = rules
    paths.atomic_write_json(dst / "filter.json", report)
    return report
