"""Export shards to the reference trainers' layouts so users can check our data with them:
ACE (scepter ACEDemoDataset: a folder with train.csv of `Source:FILE`, `Target:FILE`, `Prompt`) and
ACE++ (a CSV with delimiter `#;#` and fields edit_image, edit_mask, ref_image, target_image, prompt, data_type).
Image files are the shard members' bytes, unchanged; what a layout cannot express is counted, not dropped silently."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any, Iterator

from datagen import paths, schema
from datagen.shards.reader import iter_raw, shard_paths

ACE_COLUMNS = ("Source:FILE", "Target:FILE", "Prompt")
ACE_PLUS_COLUMNS = ("edit_image", "edit_mask", "ref_image", "target_image", "prompt", "data_type")
ACE_PLUS_DELIMITER = "#;#"


def _records(root: Path) -> Iterator[tuple[dict[str, Any], dict[str, bytes]]]:
    urls = [str(p) for p in shard_paths(root)]
    if not urls:
        return
    for raw in iter_raw(urls):
        yield json.loads(raw[schema.JSON_MEMBER]), raw


def _write_member(out: Path, key: str, member: str, raw: dict[str, bytes]) -> str:
    rel = f"images/{key}.{member}"
    paths.atomic_write_bytes(paths.safe_join(out, rel), raw[member])
    return rel


def export_ace(root: str | Path, out: str | Path) -> dict[str, Any]:
    """Single-turn CUs with one unmasked input; ACE's demo loader reads no masks and one source."""
    root, out = Path(root), Path(out)
    rows, skipped = [], {}
    for rec, raw in _records(root):
        turn = rec["turns"][-1]
        why = (
            "multi-turn"
            if len(rec["turns"]) > 1
            else "not one input"
            if len(turn["inputs"]) != 1
            else "masked input (use the ace++ layout)"
            if turn["inputs"][0].get("mask")
            else None
        )
        if why:
            skipped[why] = skipped.get(why, 0) + 1
            continue
        rows.append(
            {
                "Source:FILE": _write_member(out, rec["key"], turn["inputs"][0]["image"], raw),
                "Target:FILE": _write_member(out, rec["key"], turn["target"]["image"], raw),
                "Prompt": turn["instruction"],
                "_key": rec["key"],
            }
        )
    with open(out / "train.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=ACE_COLUMNS, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    report = {"layout": "ace", "rows": len(rows), "skipped": skipped, "keys": [r["_key"] for r in rows]}
    paths.atomic_write_json(out / "export.json", report)
    return report


def export_ace_plus(root: str | Path, out: str | Path) -> dict[str, Any]:
    """Single-turn CUs with one or two inputs: the edit image (with its mask) and, for reference tasks, the
    reference image. data_type is the ACE task group."""
    root, out = Path(root), Path(out)
    lines, keys, skipped = [], [], {}
    for rec, raw in _records(root):
        turn = rec["turns"][-1]
        inputs = turn["inputs"]
        if len(rec["turns"]) > 1 or not 1 <= len(inputs) <= 2:
            why = "multi-turn" if len(rec["turns"]) > 1 else f"{len(inputs)} inputs"
            skipped[why] = skipped.get(why, 0) + 1
            continue
        reference = turn["direction"] == schema.DIRECTION_REFERENCE
        edit = inputs[-1] if reference and len(inputs) == 2 else inputs[0]
        ref = inputs[0] if reference else (inputs[1] if len(inputs) == 2 else None)
        if reference and len(inputs) == 1:
            edit, ref = None, inputs[0]
        fields = {
            "edit_image": _write_member(out, rec["key"], edit["image"], raw) if edit else "",
            "edit_mask": _write_member(out, rec["key"], edit["mask"], raw) if edit and edit.get("mask") else "",
            "ref_image": _write_member(out, rec["key"], ref["image"], raw) if ref else "",
            "target_image": _write_member(out, rec["key"], turn["target"]["image"], raw),
            "prompt": turn["instruction"].replace("\n", " ").replace(ACE_PLUS_DELIMITER, " "),
            "data_type": schema.TASKS[turn["task"]].group,
        }
        lines.append(ACE_PLUS_DELIMITER.join(fields[c] for c in ACE_PLUS_COLUMNS))
        keys.append(rec["key"])
    (out / "train.csv").write_text(
        "\n".join([ACE_PLUS_DELIMITER.join(ACE_PLUS_COLUMNS), *lines]) + "\n", encoding="utf-8"
    )
    report = {"layout": "ace++", "rows": len(lines), "skipped": skipped, "keys": keys}
    paths.atomic_write_json(out / "export.json", report)
    return report


def read_ace_plus(csv_path: str | Path) -> list[dict[str, str]]:
    lines = Path(csv_path).read_text(encoding="utf-8").splitlines()
    header = lines[0].split(ACE_PLUS_DELIMITER)
    return [dict(zip(header, line.split(ACE_PLUS_DELIMITER))) for line in lines[1:] if line]
