"""`datagen export preference OUT DEST`: preference pairs for reward models and DPO from a finished output. For one
input and one instruction, a kept output (chosen) against one the quality rules dropped (rejected, from OUT/rejects/),
and two kept outputs against each other where an overall score parts them by a large margin (Pico-Banana-400K keeps
its failed edits as such pairs). Parquet that Hugging Face `datasets` loads, images embedded."""

from __future__ import annotations

import hashlib
import json
import tarfile
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path
from typing import Any, Iterator, Optional

import pyarrow as pa
import pyarrow.parquet as pq

from datagen import paths, schema
from datagen.config import ConfigError
from datagen.shards.reader import shard_paths

KEPT_VS_REJECTED, KEPT_VS_KEPT = "kept_vs_rejected", "kept_vs_kept"
# the rejects that are worse outputs: dropped by a quality rule (the quality filter). The task mix's cuts are good
# samples, and a sample dropped only because a score is missing (or a rule raised on it) was never judged
QUALITY_STAGES = ("quality_filter",)
UNJUDGED_REASONS = ("score_missing", "operator_error")
OVERALL_SCORE = "judge_overall"  # the judge's overall score (issue 23), where the recipe runs a judge

# Images as Hugging Face's Image feature stores them in parquet: {bytes, path}; the schema metadata below tells
# `datasets` to decode them (PIL images), while plain pyarrow/pandas readers get the encoded bytes
IMAGE = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
SCORES = pa.struct([(name, pa.float32()) for name in schema.SCORES])
PREFERENCE_SCHEMA = pa.schema(
    [
        ("kind", pa.string()),  # KEPT_VS_REJECTED or KEPT_VS_KEPT
        ("task", pa.string()),
        ("instruction", pa.string()),
        ("input", IMAGE),  # the turn's input (null for text-to-image)
        ("input_mask", IMAGE),  # its edit mask, null when none
        ("chosen", IMAGE),
        ("rejected", IMAGE),
        ("chosen_key", pa.string()),
        ("rejected_key", pa.string()),
        ("chosen_scores", SCORES),  # every score of datagen.schema.SCORES, null where the sample has none
        ("rejected_scores", SCORES),
        ("rejected_reasons", pa.list_(pa.string())),  # the rules the rejected output failed ([] for kept_vs_kept)
        ("margin", pa.float32()),  # kept_vs_kept: chosen minus rejected on the overall score; else null
    ]
)
_VALUE = {pa.string(): "string", pa.float32(): "float32"}


def _hf_feature(t: pa.DataType) -> dict[str, Any]:
    if t == IMAGE:
        return {"_type": "Image"}
    if pa.types.is_struct(t):
        return {f.name: _hf_feature(f.type) for f in t}
    if pa.types.is_list(t):
        return {"feature": _hf_feature(t.value_type), "_type": "Sequence"}  # "Sequence": old and new `datasets`
    return {"dtype": _VALUE[t], "_type": "Value"}


_FEATURES = {f.name: _hf_feature(f.type) for f in PREFERENCE_SCHEMA}
HF_METADATA = {b"huggingface": json.dumps({"info": {"features": _FEATURES}}).encode()}


@dataclass
class _Output:
    """One single-turn sample as the export needs it: where its image members lie in its tar, and what it is."""

    key: str
    tar: Path
    task: str
    instruction: str
    group: str  # the input's identity (its image and mask bytes) and the instruction
    target_id: str  # the output's identity (its bytes)
    scores: dict[str, float]
    members: dict[str, tuple[int, int, str]] = field(default_factory=dict)  # input/mask/target -> (offset, size, name)
    reasons: list[str] = field(default_factory=list)
    rejected_by: str = ""


def _samples(tar_path: Path) -> Iterator[tuple[str, dict[str, tuple[tarfile.TarInfo, bytes]]]]:
    """(key, ext -> (member, bytes)) per sample, reading the tar once (a sample's members are contiguous)."""
    key, members = None, {}
    with tarfile.open(tar_path, "r:") as tar:
        for m in tar:
            k, _, ext = m.name.partition(".")
            if k != key and key is not None:
                yield key, members
                members = {}
            key = k
            members[ext] = (m, tar.extractfile(m).read())
    if key is not None:
        yield key, members


def _scan(tar_path: Path, counts: dict[str, int]) -> Iterator[_Output]:
    for key, members in _samples(tar_path):
        record = json.loads(members[schema.JSON_MEMBER][1])
        if len(record["turns"]) != 1:
            counts["skipped: multi-turn"] = counts.get("skipped: multi-turn", 0) + 1
            continue
        turn = record["turns"][0]
        if len(turn["inputs"]) > 1:
            counts["skipped: several inputs"] = counts.get("skipped: several inputs", 0) + 1
            continue
        where: dict[str, tuple[int, int, str]] = {}
        h = hashlib.sha256()
        names = {"target": turn["target"]["image"]}
        if turn["inputs"]:
            names["input"] = turn["inputs"][0]["image"]
            if turn["inputs"][0].get("mask"):
                names["mask"] = turn["inputs"][0]["mask"]
        for role in ("input", "mask"):
            h.update(members[names[role]][1] if role in names else b"")
            h.update(b"\0")
        for role, ext in names.items():
            info = members[ext][0]
            where[role] = (info.offset_data, info.size, info.name)
        rejected = record.get("rejected") or {}
        yield _Output(
            key=key,
            tar=tar_path,
            task=record["task"],
            instruction=turn["instruction"],
            group=h.hexdigest() + "\0" + turn["instruction"],
            target_id=hashlib.sha256(members[names["target"]][1]).hexdigest(),
            scores={k: float(v) for k, v in record["provenance"]["scores"].items()},
            members=where,
            reasons=list(rejected.get("reasons", [])),
            rejected_by=rejected.get("stage", ""),
        )


def _worse(o: _Output) -> bool:
    """A reject that is a worse output: a quality rule failed it, not only a missing score or an error."""
    codes = {schema.reject_reason(r) for r in o.reasons}
    return o.rejected_by in QUALITY_STAGES and bool(codes - set(UNJUDGED_REASONS))


def pairs(
    kept: list[_Output], rejected: list[_Output], score: Optional[str], margin: float, max_per_group: int
) -> Iterator[tuple[str, _Output, _Output, Optional[float]]]:
    """(kind, chosen, rejected, margin) for one group (one input, one instruction), at most max_per_group of each
    kind; never two equal outputs. Kept against kept where `score` parts them by `margin` (in the score's units)."""
    n = 0
    for c in kept:
        for r in rejected:
            if n < max_per_group and c.target_id != r.target_id:
                n += 1
                yield KEPT_VS_REJECTED, c, r, None
    n = 0
    for a, b in combinations(kept if score else [], 2):
        if score not in a.scores or score not in b.scores or a.target_id == b.target_id:
            continue
        d = a.scores[score] - b.scores[score]
        if abs(d) >= margin and n < max_per_group:
            n += 1
            yield (KEPT_VS_KEPT, a, b, d) if d > 0 else (KEPT_VS_KEPT, b, a, -d)


class _Reader:
    """Image members read back by offset, one open file per tar."""

    def __init__(self) -> None:
        self._files: dict[Path, Any] = {}

    def image(self, o: _Output, role: str) -> Optional[dict[str, Any]]:
        if role not in o.members:
            return None
        offset, size, name = o.members[role]
        fh = self._files.get(o.tar) or self._files.setdefault(o.tar, open(o.tar, "rb"))
        fh.seek(offset)
        return {"bytes": fh.read(size), "path": name}

    def close(self) -> None:
        for fh in self._files.values():
            fh.close()


def _scores(o: _Output) -> dict[str, Optional[float]]:
    return {name: o.scores.get(name) for name in schema.SCORES}


def export_preference(
    out_dir: str | Path,
    dest: str | Path,
    score: Optional[str] = None,
    margin: float = 0.2,
    max_per_group: int = 16,
    rows_per_file: int = 1000,
) -> dict[str, Any]:
    """Write DEST/preference-NNNNN.parquet and DEST/export.json (counts); returns the counts. Kept-vs-kept pairs
    compare `score` (default: the judge's overall, where datagen defines it) and need a difference of at least
    `margin` of the score's range (0.2: two points of a 0-10 judge); without a score, none are made."""
    out, dest = Path(out_dir), Path(dest)
    if not shard_paths(out):
        raise ConfigError(f"{out}: no completed shards to export")
    if score is None:
        score = OVERALL_SCORE if OVERALL_SCORE in schema.SCORES else None
    elif score not in schema.SCORES:
        raise ConfigError(f"--score {score!r} is not a score datagen makes; known: {sorted(schema.SCORES)}")
    spec = schema.SCORES[score] if score else None
    points = margin * (spec.high - spec.low) if spec else 0.0
    reviewer_dropped: set[str] = set()
    if (out / paths.DROPPED_KEYS_FILE).exists():
        reviewer_dropped = set(pq.read_table(out / paths.DROPPED_KEYS_FILE, columns=["key"]).column("key").to_pylist())
    counts: dict[str, int] = {}
    groups: dict[str, tuple[list[_Output], list[_Output]]] = {}
    for tar in shard_paths(out):
        for o in _scan(tar, counts):
            if o.key not in reviewer_dropped:  # a reviewer's drop is no chosen output
                groups.setdefault(o.group, ([], []))[0].append(o)
    for tar in shard_paths(out / paths.REJECTS_DIR):
        for o in _scan(tar, counts):
            if _worse(o):
                groups.setdefault(o.group, ([], []))[1].append(o)
            else:
                counts["rejects not judged worse"] = counts.get("rejects not judged worse", 0) + 1
    dest.mkdir(parents=True, exist_ok=True)
    reader, rows, files = _Reader(), [], []

    def flush() -> None:
        if rows:
            table = pa.Table.from_pylist(rows, schema=PREFERENCE_SCHEMA).replace_schema_metadata(HF_METADATA)
            path = dest / f"preference-{len(files):05d}.parquet"
            paths.atomic_write_parquet(path, table)
            files.append(path.name)
            rows.clear()

    try:
        for group in sorted(groups):
            kept, rejected = (sorted(g, key=lambda o: o.key) for g in groups[group])
            for kind, c, r, d in pairs(kept, rejected, score, points, max_per_group):
                counts[kind] = counts.get(kind, 0) + 1
                rows.append(
                    {
                        "kind": kind,
                        "task": c.task,
                        "instruction": c.instruction,
                        "input": reader.image(c, "input"),
                        "input_mask": reader.image(c, "mask"),
                        "chosen": reader.image(c, "target"),
                        "rejected": reader.image(r, "target"),
                        "chosen_key": c.key,
                        "rejected_key": r.key,
                        "chosen_scores": _scores(c),
                        "rejected_scores": _scores(r),
                        "rejected_reasons": r.reasons,
                        "margin": d,
                    }
                )
                if len(rows) >= rows_per_file:
                    flush()
        flush()
    finally:
        reader.close()
    report = {
        "pairs": counts.get(KEPT_VS_REJECTED, 0) + counts.get(KEPT_VS_KEPT, 0),
        "counts": dict(sorted(counts.items())),
        "files": files,
        "score": score,
        "margin": points,
    }
    paths.atomic_write_json(dest / "export.json", report)
    return report
