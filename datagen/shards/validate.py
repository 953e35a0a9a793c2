"""`datagen validate DIR`: every shard complete and consistent with its index and stats, every record
pointing at members that exist, no pickle members, no unsafe names, no key twice; the same of the rejects in
OUT/rejects/, each with its reasons, none of them also kept. Returns the problems found."""

from __future__ import annotations

import hashlib
import json
import tarfile
from pathlib import Path

import pyarrow.parquet as pq

from datagen import paths, schema
from datagen.shards.codec import record_members


def _split(name: str) -> tuple[str, str]:
    base = name.rsplit("/", 1)[-1]
    key, _, ext = base.partition(".")
    return key, ext


def validate_shard(tar_path: Path, seen_keys: dict[str, str], rejects: bool = False) -> list[str]:
    """A shard's problems; `rejects`: a shard of OUT/rejects/, whose every record says why it was dropped (and a
    training shard's none)."""
    problems: list[str] = []
    name = f"{paths.REJECTS_DIR}/{tar_path.stem}" if rejects else tar_path.stem
    stats_path = tar_path.with_suffix(".stats.json")
    index_path = tar_path.with_suffix(".parquet")
    if not stats_path.exists():
        return [f"{name}: no stats file (incomplete shard)"]
    if not index_path.exists():
        return [f"{name}: no parquet index"]
    stats = json.loads(stats_path.read_text())
    data = tar_path.read_bytes()
    if stats.get("sha256") and hashlib.sha256(data).hexdigest() != stats["sha256"]:
        problems.append(f"{name}: tar sha256 does not match its stats file")
    groups: dict[str, dict[str, bytes]] = {}
    order: list[str] = []
    try:
        with tarfile.open(tar_path, "r:") as tar:
            for m in tar:
                if not m.isfile():
                    problems.append(f"{name}: member {m.name!r} is not a regular file")
                    continue
                if m.name.startswith("/") or ".." in m.name.split("/") or "/" in m.name:
                    problems.append(f"{name}: unsafe member name {m.name!r}")
                    continue
                key, ext = _split(m.name)
                if ext.rsplit(".", 1)[-1] in schema.FORBIDDEN_EXTENSIONS:
                    problems.append(f"{name}: forbidden member {m.name!r}")
                if key not in groups:
                    if order and key in groups:
                        problems.append(f"{name}: members of {key} are not contiguous")
                    groups[key] = {}
                    order.append(key)
                elif order[-1] != key:
                    problems.append(f"{name}: members of {key} are not contiguous")
                fh = tar.extractfile(m)
                groups[key][ext] = fh.read() if fh else b""
    except tarfile.TarError as e:
        return problems + [f"{name}: unreadable tar: {e}"]
    index = pq.read_table(index_path)
    wanted_cols = schema.REJECTS_INDEX_SCHEMA.names if rejects else schema.INDEX_COLUMNS
    missing_cols = [c for c in wanted_cols if c not in index.column_names]
    if missing_cols:
        problems.append(f"{name}: index lacks columns {missing_cols}")
        return problems
    rows = index.to_pylist()
    if [r["key"] for r in rows] != order:
        problems.append(f"{name}: index keys differ from tar samples ({len(rows)} rows, {len(order)} samples)")
    if stats.get("count") != len(order):
        problems.append(f"{name}: stats count {stats.get('count')} != {len(order)} samples in tar")
    by_key = {r["key"]: r for r in rows}
    for key in order:
        if key in seen_keys:
            problems.append(f"{name}: key {key} also in shard {seen_keys[key]}")
        seen_keys[key] = name
        members = groups[key]
        if schema.JSON_MEMBER not in members:
            problems.append(f"{name}/{key}: no json record")
            continue
        try:
            record = json.loads(members[schema.JSON_MEMBER])
        except ValueError as e:
            problems.append(f"{name}/{key}: json record does not parse: {e}")
            continue
        if record.get("schema") != schema.SCHEMA_VERSION:
            problems.append(f"{name}/{key}: schema {record.get('schema')!r} is not {schema.SCHEMA_VERSION}")
            continue
        if bool(record.get("rejected")) != rejects:
            problems.append(
                f"{name}/{key}: a reject among the training shards"
                if not rejects
                else f"{name}/{key}: no reject record (stage and reasons) among the rejects"
            )
        if record.get("key") != key:
            problems.append(f"{name}/{key}: record key {record.get('key')!r} differs from member key")
        wanted = set(record_members(record))
        have = set(members) - {schema.JSON_MEMBER}
        if wanted - have:
            problems.append(f"{name}/{key}: missing members {sorted(wanted - have)}")
        if have - wanted:
            problems.append(f"{name}/{key}: unreferenced members {sorted(have - wanted)}")
        row = by_key.get(key)
        if row is not None and (
            row["task"] != record["task"] or row["instruction"] != record["turns"][-1]["instruction"]
        ):
            problems.append(f"{name}/{key}: index row disagrees with the record (task or instruction)")
        if record.get("task") not in schema.TASKS:
            problems.append(f"{name}/{key}: unknown task {record.get('task')!r}")
        n_visible = 0
        for ti, turn in enumerate(record["turns"]):
            n_visible += len(turn["inputs"])
            for p in schema.indicator_problems(turn["instruction"], n_visible):
                problems.append(f"{name}/{key}: turn {ti}: {p}")
    return problems


def validate_dir(root: str | Path) -> tuple[int, list[str]]:
    """(number of shards checked, problems)."""
    root = Path(root)
    if not root.is_dir():
        return 0, [f"{root}: not a folder"]
    problems: list[str] = []
    seen: dict[str, str] = {}
    tars = sorted(root.glob("*.tar"))
    for t in tars:
        problems.extend(validate_shard(t, seen))
    for p in sorted(root.glob("*.parquet")):
        if p.name.startswith("_") or p.name in ("quarantine.parquet", "pairs.parquet"):
            continue
        if not p.with_suffix(".tar").exists():
            problems.append(f"{p.stem}: index without a tar")
    if not tars:
        problems.append(f"{root}: no shards found")
    # the rejects: the same contract, and no key both kept and rejected (`seen` is shared)
    rejects = sorted((root / paths.REJECTS_DIR).glob("*.tar"))
    for t in rejects:
        problems.extend(validate_shard(t, seen, rejects=True))
    return len(tars) + len(rejects), problems
