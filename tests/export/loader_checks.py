"""The reference trainers' loaders, as checks: what would stop ACE++'s ACEPlusDataset (ali-vilab/ACE_plus) or scepter's
ACEDemoDataset from loading a row of an export. Used by the export tests and by the demo's end-to-end test."""

import io
import os
from pathlib import Path

from PIL import Image

from datagen.export.reference_layouts import ACE_COLUMNS

# ACE++'s _get: the edit, reference and target images converted to RGB, the edit mask to L
LOAD_MODES = (("edit_image", "RGB"), ("edit_mask", "L"), ("ref_image", "RGB"), ("target_image", "RGB"))


def open_as(path: str, mode: str) -> Image.Image:
    with open(path, "rb") as f:  # ACE++ and scepter read the bytes, then PIL-open and convert them
        im = Image.open(io.BytesIO(f.read()))
        return im.convert(mode)


def ace_plus_load_problems(cfg: dict) -> list[str]:
    """What would stop ACE++'s ACEPlusDataset from loading each row of cfg's list; empty when every row loads."""
    fields, prefix = cfg["FIELDS"], cfg["PATH_PREFIX"]
    rows = Path(cfg["DATA_LIST"]).read_bytes().decode("utf-8").strip().split("\n")
    problems = []
    for i, row in enumerate(rows):
        item = dict(zip(fields, row.split(cfg["DELIMITER"])))
        try:
            if "data_type" not in item:
                raise KeyError("data_type")
            opened = {}
            for name, mode in LOAD_MODES:
                path = item.get(name, "")
                if path:
                    # scepter's osp_path: the prefix joined unless the path already starts with it
                    opened[name] = open_as(path if path.startswith(prefix) else os.path.join(prefix, path), mode)
            if "target_image" not in opened:
                raise ValueError("no target_image")
            target = opened["target_image"]
            edit = opened.get("edit_image")
            mask = opened.get("edit_mask") if edit is not None else None  # no edit image: white canvas, full mask
            if edit is not None and edit.size != target.size:
                raise ValueError(f"edit image {edit.size} is not the target's size {target.size}")
            if mask is not None and mask.size != edit.size:
                raise ValueError(f"edit mask {mask.size} is not the edit image's size {edit.size}")
        except Exception as e:  # noqa: BLE001  (any exception is a row the loader's worker would die on)
            problems.append(f"line {i + 1}: {type(e).__name__}: {e}")
    return problems


def ace_load_problems(folder: Path, cache_dir: Path) -> list[str]:
    """What would stop scepter's ACEDemoDataset (a local folder read as a modelscope/HF dataset table) from loading
    each row of folder/train.csv; empty when every row loads."""
    import datasets

    table = datasets.load_dataset(
        "csv", data_files={"train": str(folder / "train.csv")}, split="train", cache_dir=str(cache_dir)
    )
    if tuple(table.column_names) != ACE_COLUMNS:
        return [f"columns {table.column_names}"]
    problems = []
    for i, row in enumerate(table):
        try:
            for col in ("Source:FILE", "Target:FILE"):
                if not isinstance(row[col], str) or not row[col]:
                    raise ValueError(f"{col} is {row[col]!r}")
                open_as(os.path.join(folder, row[col]), "RGB")
            if not isinstance(row["Prompt"], str) or not row["Prompt"].strip():
                raise ValueError(f"Prompt is {row['Prompt']!r}")
        except Exception as e:  # noqa: BLE001
            problems.append(f"row {i + 1}: {type(e).__name__}: {e}")
    return problems
