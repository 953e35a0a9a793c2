"""Stratified sampling of a shard folder for review: up to N samples per task, chosen with a seed from the
parquet index, then read from their tars (only the tars that hold them)."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np

from datagen.schema import Sample
from datagen.shards.reader import iter_samples, read_index


def stratified_keys(root: str | Path, per_task: int, seed: int = 0) -> dict[str, list[str]]:
    """task -> sampled keys (LCUs form their own stratum per task, so reviewers see both kinds)."""
    rows = read_index(root).select(["key", "task", "kind"]).to_pylist()
    strata: dict[str, list[str]] = defaultdict(list)
    for r in rows:
        strata[r["task"] if r["kind"] == "cu" else f"{r['task']} (multi-turn)"].append(r["key"])
    rng = np.random.default_rng(seed)
    out = {}
    for name in sorted(strata):
        keys = sorted(strata[name])
        if len(keys) > per_task:
            keys = [keys[i] for i in sorted(rng.choice(len(keys), per_task, replace=False).tolist())]
        out[name] = keys
    return out


def load_samples(root: str | Path, keys: set[str]) -> dict[str, Sample]:
    index = read_index(root).select(["key", "shard"]).to_pylist()
    shards = sorted({r["shard"] for r in index if r["key"] in keys})
    found: dict[str, Sample] = {}
    for shard in shards:
        for s in iter_samples(str(Path(root) / f"{shard}.tar")):
            if s.key in keys:
                found[s.key] = s
    return found
