"""Export shards to the reference trainers' layouts so users can check our data with them, their loaders unchanged:
ACE (scepter's ACEDemoDataset: a folder with train.csv of `Source:FILE`, `Target:FILE`, `Prompt`, read as a dataset
table) and ACE++ (ACE_plus's ACEPlusDataset: a list file of `#;#`-delimited rows, no header, whose field order the
training config names in `FIELDS`). Image files are the shard members' bytes, unchanged; what a layout cannot express
is counted in export.json with the reason, not dropped silently."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any, Iterator

from PIL import Image

from datagen import paths, schema
from datagen.shards.reader import iter_raw, shard_paths

ACE_COLUMNS = ("Source:FILE", "Target:FILE", "Prompt")
# ACE++'s own training configs (train_config/*.yaml) list the fields in this order; its list files have no header
ACE_PLUS_COLUMNS = ("edit_image", "edit_mask", "ref_image", "target_image", "prompt", "data_type")
ACE_PLUS_DELIMITER = "#;#"
ACE_PLUS_LIST = "train.csv"

# Layer Fusion's inputs are [foreground layer, background layer], both masked by the matte. In ACE++ the edit image's
# mask marks the region to paint: that is the background layer (its mask is the hole the foreground fills), and the
# foreground layer is the reference. The other way round, ACE++ would blank the foreground layer under its own mask.
_ACE_PLUS_EDIT_INPUT = {"Layer Fusion": 1}

SKIP_WHY = {
    "multi-turn": "ACE's demo loader and ACE++ read one turn per row, with no history; every turn of an LCU chain is "
    "made from a single-turn CU of the same photo, which is exported as a row of its own (unless a filter dropped it)",
    "not one input": "ACEDemoDataset reads exactly one Source:FILE per row (no text-to-image, no second input)",
    "masked input (use the ace++ layout)": "ACEDemoDataset reads no masks; the ace++ layout carries them",
    "more than two inputs": "ACE++ takes at most an edit image and a reference image",
    "edit image size differs from the target": "ACE++ uses the edit image's mask as the target's mask (a full mask "
    "when edit_mask is empty), so the edit image must be the target's size",
}


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


def _size(data: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(data)) as im:  # reads the header only
        return im.size


def _count(skipped: dict[str, int], why: str) -> None:
    skipped[why] = skipped.get(why, 0) + 1


def _report(layout: str, rows: int, skipped: dict[str, int], keys: list[str], **extra: Any) -> dict[str, Any]:
    return {
        "layout": layout,
        "rows": rows,
        **extra,
        "skipped": skipped,
        "skipped_why": {why: SKIP_WHY[why] for why in skipped},
        "keys": keys,
    }


def export_ace(root: str | Path, out: str | Path) -> dict[str, Any]:
    """Single-turn CUs with one unmasked input; ACE's demo loader reads no masks and one source."""
    root, out = Path(root), Path(out)
    out.mkdir(parents=True, exist_ok=True)
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
            _count(skipped, why)
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
    report = _report("ace", len(rows), skipped, [r["_key"] for r in rows], columns=list(ACE_COLUMNS))
    paths.atomic_write_json(out / "export.json", report)
    return report


def ace_plus_config(out: str | Path) -> dict[str, Any]:
    """The TRAIN_DATA lines of an ACE++ training config that read the export in `out` as it is."""
    out = Path(out)
    return {
        "DATA_LIST": str(out / ACE_PLUS_LIST),
        "DELIMITER": ACE_PLUS_DELIMITER,
        "FIELDS": list(ACE_PLUS_COLUMNS),
        "PATH_PREFIX": str(out),
    }


def _ace_plus_frames(turn: dict[str, Any]) -> tuple[dict | None, dict | None]:
    """(edit input, reference input) of a single turn with at most two inputs; either may be None."""
    inputs = turn["inputs"]
    if turn["direction"] == schema.DIRECTION_REFERENCE:
        return (inputs[-1] if len(inputs) == 2 else None), (inputs[0] if inputs else None)
    if len(inputs) == 2:
        e = _ACE_PLUS_EDIT_INPUT.get(turn["task"], 0)
        return inputs[e], inputs[1 - e]
    return (inputs[0] if inputs else None), None  # text-to-image: no input, ACE++ paints on a white canvas


def export_ace_plus(root: str | Path, out: str | Path) -> dict[str, Any]:
    """Single-turn CUs with up to two inputs: the edit image (with its mask) and, for reference tasks, the
    reference image; Text-to-Image rows leave edit_image and edit_mask empty, as ACE++ trains text-to-image.
    data_type is the ACE task group. The list has no header: the config's FIELDS names the columns."""
    root, out = Path(root), Path(out)
    out.mkdir(parents=True, exist_ok=True)
    lines, keys, skipped = [], [], {}
    for rec, raw in _records(root):
        turn = rec["turns"][-1]
        if len(rec["turns"]) > 1 or len(turn["inputs"]) > 2:
            _count(skipped, "multi-turn" if len(rec["turns"]) > 1 else "more than two inputs")
            continue
        edit, ref = _ace_plus_frames(turn)
        target = turn["target"]["image"]
        if edit and _size(raw[edit["image"]]) != _size(raw[target]):
            _count(skipped, "edit image size differs from the target")
            continue
        fields = {
            "edit_image": _write_member(out, rec["key"], edit["image"], raw) if edit else "",
            "edit_mask": _write_member(out, rec["key"], edit["mask"], raw) if edit and edit.get("mask") else "",
            "ref_image": _write_member(out, rec["key"], ref["image"], raw) if ref else "",
            "target_image": _write_member(out, rec["key"], target, raw),
            # ACE++ splits the list on "\n" and every row on the delimiter: neither may occur inside the prompt
            "prompt": " ".join(turn["instruction"].replace(ACE_PLUS_DELIMITER, " ").splitlines()),
            "data_type": schema.TASKS[turn["task"]].group,
        }
        lines.append(ACE_PLUS_DELIMITER.join(fields[c] for c in ACE_PLUS_COLUMNS))
        keys.append(rec["key"])
    (out / ACE_PLUS_LIST).write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    report = _report(
        "ace++",
        len(lines),
        skipped,
        keys,
        delimiter=ACE_PLUS_DELIMITER,
        fields=list(ACE_PLUS_COLUMNS),
        header=False,
        ace_plus_config=ace_plus_config(out.resolve()),
    )
    paths.atomic_write_json(out / "export.json", report)
    return report


def read_ace_plus(csv_path: str | Path, fields: tuple[str, ...] = ACE_PLUS_COLUMNS) -> list[dict[str, str]]:
    """The rows of an ACE++ list as ACE++ reads them: every line split on the delimiter and zipped with FIELDS."""
    text = Path(csv_path).read_text(encoding="utf-8").strip()
    return [dict(zip(fields, line.split(ACE_PLUS_DELIMITER))) for line in text.split("\n")] if text else []
