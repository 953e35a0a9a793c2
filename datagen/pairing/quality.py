"""How right the pairs are on a labelled set (datagen/assets/pairs_labelled, the split the demo's pairing is tuned on;
datagen/assets/pairs_heldout, the same kinds of relation from other photos, never tuned on): pair precision (both
images from the
same labelled group), group recall (groups with at least one right pair) and pair recall (right pairs found among
all same-group pairs), overall and per kind of relation."""

from __future__ import annotations

import csv
import itertools
from pathlib import Path
from typing import Any

LABELLED_SET = Path(__file__).resolve().parents[1] / "assets" / "pairs_labelled"
HELDOUT_SET = LABELLED_SET.parent / "pairs_heldout"
SPLITS = {"tuning": LABELLED_SET, "held-out": HELDOUT_SET}


def read_labels(folder: Path = LABELLED_SET) -> dict[str, dict[str, str]]:
    """file name -> {"group": ..., "kind": ...}; an empty group means unrelated to everything."""
    with open(Path(folder) / "labels.csv", newline="") as f:
        return {r["file"]: r for r in csv.DictReader(f)}


def evaluate(pairs: list[tuple[str, str]], labels: dict[str, dict[str, str]]) -> dict[str, Any]:
    """`pairs`: (uri or path a, uri or path b); only the file names are compared with the labels."""

    def group(uri: str) -> str:
        row = labels.get(Path(uri.split("#")[-1]).name)
        return row["group"] if row else ""

    groups: dict[str, list[str]] = {}
    kinds: dict[str, str] = {}
    for name, row in labels.items():
        if row["group"]:
            groups.setdefault(row["group"], []).append(name)
            kinds[row["group"]] = row["kind"]
    found: set[frozenset[str]] = set()
    right = wrong = 0
    wrong_pairs = []
    for a, b in pairs:
        ga, gb = group(a), group(b)
        if ga and ga == gb:
            right += 1
            found.add(frozenset((Path(a).name, Path(b).name)))
        else:
            wrong += 1
            wrong_pairs.append((Path(a).name, Path(b).name))
    all_right = {frozenset(p) for members in groups.values() for p in itertools.combinations(members, 2)}
    covered = {
        g for g, members in groups.items() if any(frozenset(p) in found for p in itertools.combinations(members, 2))
    }
    per_kind: dict[str, dict[str, int]] = {}
    for g, kind in kinds.items():
        k = per_kind.setdefault(kind, {"groups": 0, "covered": 0})
        k["groups"] += 1
        k["covered"] += g in covered
    return {
        "pairs": len(pairs),
        "right": right,
        "wrong": wrong,
        "precision": right / len(pairs) if pairs else 0.0,
        "groups": len(groups),
        "groups_covered": len(covered),
        "group_recall": len(covered) / len(groups) if groups else 0.0,
        "pair_recall": len(found) / len(all_right) if all_right else 0.0,
        "per_kind": per_kind,
        "missed_groups": sorted(set(groups) - covered),
        "wrong_pairs": wrong_pairs,
    }
