"""`datagen filter`: drop reviewer-marked samples, everything a rule made (operator, task), or every sample whose
score passes a comparison (scores.nsfw>0.8), and rewrite the affected shards, their index and stats atomically.
Unaffected shards are left byte for byte."""

from __future__ import annotations

import hashlib
import io
import json
import re
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
# scores.NAME<VALUE (also <=, >, >=): drops the samples whose score compares so; a sample without the score stays
SCORE_RULE = re.compile(
    r"^scores\.(?P<score>\w+)\s*(?P<op><=|>=|<|>)\s*(?P<value>[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?)$"
)
_COMPARE = {"<": pc.less, "<=": pc.less_equal, ">": pc.greater, ">=": pc.greater_equal}


def parse_score_rule(text: str) -> dict[str, Any]:
    """'scores.clip_text<0.2' -> {"score": "clip_text", "op": "<", "value": 0.2}."""
    m = SCORE_RULE.match(text.strip())
    if not m:
        raise ConfigError(
            f"--rule {text!r}: a score rule is scores.NAME<VALUE (or <=, >, >=), NAME one of {sorted(schema.SCORES)}"
        )
    if m["score"] not in schema.SCORES:
        raise ConfigError(f"--rule {text!r}: unknown score {m['score']!r}; known scores: {sorted(schema.SCORES)}")
    return {"score": m["score"], "op": m["op"], "value": float(m["value"])}


def load_marks(path: str | Path) -> tuple[set[str], list[dict[str, str]]]:
    """(keys to drop, rules) from a marks file exported by the review page (JSON; accepted samples are not dropped)
    or a parquet/CSV with a `key` column."""
    p = Path(path)
    if p.suffix == ".json":
        data = json.loads(p.read_text())
        marks = data.get("marks", data) if isinstance(data, dict) else data
        # an accepted sample stays; a flag (verdict rejected, or a mark written before verdicts) drops it
        keys = {m["key"] for m in marks if "key" in m and m.get("verdict", "rejected") != "accepted"}
        rules = [m["rule"] for m in marks if "rule" in m]
    else:
        table = pq.read_table(p) if p.suffix == ".parquet" else pa.csv.read_csv(p)
        keys, rules = set(table.column("key").to_pylist()), []
    for r in rules:
        if "score" in r:
            parse_score_rule(f"scores.{r['score']}{r.get('op', '')}{r.get('value', '')}")
            continue
        bad = set(r) - set(RULE_FIELDS)
        if bad or not r:
            raise ConfigError(f"rule {r}: allowed fields are {RULE_FIELDS}, or a score rule {{score, op, value}}")
    return keys, rules


def parse_rule(text: str) -> dict[str, Any]:
    """'operator=canny' or 'task=Grayscale' (several joined with ','), or a score rule 'scores.nsfw>0.8'."""
    if text.strip().startswith("scores."):
        return parse_score_rule(text)
    rule = {}
    for part in text.split(","):
        k, _, v = part.partition("=")
        if k.strip() not in RULE_FIELDS or not v:
            raise ConfigError(f"--rule {text!r}: use FIELD=VALUE with FIELD one of {RULE_FIELDS}, or scores.NAME<VALUE")
        rule[k.strip()] = v.strip()
    return rule


def _matches(index: pa.Table, rule: dict[str, Any]) -> pa.ChunkedArray:
    if "score" in rule:
        col = schema.SCORE_COLUMN_PREFIX + rule["score"]
        if col not in index.column_names:  # a shard written before the score existed: nothing in it has the score
            return pa.chunked_array([pa.array([False] * index.num_rows)])
        return pc.fill_null(_COMPARE[rule["op"]](index.column(col), pa.scalar(rule["value"], pa.float32())), False)
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


def filter_dir(
    root: str | Path, keys: set[str], rules: list[dict[str, str]], out: str | Path | None = None
) -> dict[str, Any]:
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
        paths.atomic_write_json(
            stats_dst,
            {
                "shard": tar.stem,
                "count": keep.num_rows,
                "bytes": len(data),
                "sha256": hashlib.sha256(data).hexdigest(),
                "tasks": dict(sorted(tasks.items())),
                "schema": schema.SCHEMA_VERSION,
            },
        )
    report["rules"] = rules
    paths.atomic_write_json(dst / "filter.json", report)
    return report
