"""`datagen conditions-sheet PHOTO [PHOTO ...] --out sheet.png [--only a,b]`: each photo through every low-level
condition and the repainting masks (or just the named operators), as a labelled contact sheet. Operators that are off
(no checkpoint) or skip the photo get a grey tile saying why."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from pipelines.catalog import CONDITION_MAKERS, OPERATORS

log = logging.getLogger(__name__)

# The ten conditions in BRIEF.md's order, then repainting.
SHEET_OPERATORS = tuple(cls.name for cls in CONDITION_MAKERS)
LABEL_H = 22


def load_rgb(path: str, max_side: int) -> np.ndarray:
    bgr = cv2.imread(path, cv2.IMREAD_COLOR)
    if bgr is None:
        raise ValueError(f"{path!r} is not a readable image")
    h, w = bgr.shape[:2]
    s = min(1.0, max_side / max(h, w))
    if s < 1:
        bgr = cv2.resize(bgr, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def _operator_configs(recipe_path: str | None, overrides: list[str]) -> dict[str, Any]:
    from pipelines import load_recipe

    recipe = load_recipe(recipe_path, overrides)
    return dict(recipe.operators)


def render_tiles(
    image: np.ndarray, configs: dict[str, Any], seed: int = 0, only: tuple[str, ...] = SHEET_OPERATORS
) -> list[tuple[str, np.ndarray | None, str]]:
    """(label, picture or None, note) per sheet entry: the photo, each condition map, each repainting input."""
    from datagen import schema
    from datagen.batch import SourceImage, WorkBatch

    tiles: list[tuple[str, np.ndarray | None, str]] = [("photo", image, "")]
    for name in only:
        cls = OPERATORS[name]
        op = cls(configs.get(name), seed=seed)
        why = op.unavailable_reason()
        if why:
            tiles.append((name, None, "OFF: " + why))
            continue
        op.setup()
        batch = WorkBatch(
            partition="sheet-00000", spec={}, seed=seed, recipe="sheet", items=[SourceImage("sheet", "sheet", image)]
        )
        op(batch)
        if not batch.samples:
            skipped = ", ".join(batch.stage(op.name).skipped) or "no sample"
            tiles.append((name, None, "skipped: " + skipped))
            continue
        if name == "repainting":
            for s in batch.samples:
                frame = s.current.inputs[0]
                tiles.append((s.task.lower(), frame.image, ""))
            continue
        frame = next(
            f
            for f in (*batch.samples[0].current.inputs, batch.samples[0].current.target)
            if f.role == schema.ROLE_CONDITION
        )
        tiles.append((name, frame.image, ""))
    return tiles


def _wrap(text: str, width: int) -> list[str]:
    words, lines, line = text.split(), [], ""
    for w in words:
        if len(line) + len(w) + 1 > width and line:
            lines.append(line)
            line = w
        else:
            line = f"{line} {w}".strip()
    return lines + [line] if line else lines


def compose_sheet(tiles: list[tuple[str, np.ndarray | None, str]], tile: int, columns: int) -> np.ndarray:
    """Tiles scaled to fit `tile` x `tile`, each under a label strip, on a white grid."""
    rows = (len(tiles) + columns - 1) // columns
    cell_h = tile + LABEL_H
    sheet = np.full((rows * cell_h, columns * tile, 3), 255, np.uint8)
    for i, (label, pic, note) in enumerate(tiles):
        r, c = divmod(i, columns)
        y0, x0 = r * cell_h, c * tile
        cv2.putText(sheet, label, (x0 + 6, y0 + 16), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
        if pic is None:
            sheet[y0 + LABEL_H : y0 + cell_h, x0 : x0 + tile] = 200
            for j, line in enumerate(_wrap(note, max(10, tile // 9))[:10]):
                cv2.putText(
                    sheet,
                    line,
                    (x0 + 6, y0 + LABEL_H + 20 + 16 * j),
                    cv2.FONT_HERSHEY_SIMPLEX,
                    0.4,
                    (60, 60, 60),
                    1,
                    cv2.LINE_AA,
                )
            continue
        h, w = pic.shape[:2]
        s = tile / max(h, w)
        small = cv2.resize(pic, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)
        sh, sw = small.shape[:2]
        oy, ox = y0 + LABEL_H + (tile - sh) // 2, x0 + (tile - sw) // 2
        sheet[oy : oy + sh, ox : ox + sw] = small
    return sheet


def _only(value: str | None) -> tuple[str, ...]:
    if not value:
        return SHEET_OPERATORS
    names = tuple(n.strip() for n in value.split(",") if n.strip())
    unknown = [n for n in names if n not in SHEET_OPERATORS]
    if unknown:
        raise ValueError(f"--only: unknown operator(s) {unknown}; allowed: {', '.join(SHEET_OPERATORS)}")
    return names


def cmd_conditions_sheet(args: argparse.Namespace) -> int:
    only = _only(args.only)
    configs = _operator_configs(args.recipe, list(args.overrides))
    tiles = []
    for photo in args.photo:
        tiles += render_tiles(load_rgb(photo, args.max_side), configs, seed=args.seed, only=only)
    sheet = compose_sheet(tiles, args.tile, args.columns)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(out), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 9]):
        raise OSError(f"could not write {out}")
    off = [f"{label} ({note})" for label, pic, note in tiles if pic is None]
    print(f"wrote {out} ({len(tiles)} tiles{'; ' + '; '.join(off) if off else ''})")
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("conditions-sheet", help="render a photo through every condition as a contact sheet PNG")
    p.add_argument("photo", nargs="+", help="image file(s); each starts with its photo tile")
    p.add_argument(
        "--only", help="comma-separated operators to render (default: all); with --columns 1+N, one photo per row"
    )
    p.add_argument("--out", required=True, help="PNG to write")
    p.add_argument(
        "--recipe", help="take operator settings (backends, checkpoints) from this recipe; default: built-in defaults"
    )
    p.add_argument(
        "overrides", nargs="*", help="key=value overrides, e.g. operators.depth.checkpoint=/models/dpt-hybrid-midas"
    )
    p.add_argument("--max-side", type=int, default=512, help="long side the photo is processed at")
    p.add_argument("--tile", type=int, default=224, help="tile side in the sheet")
    p.add_argument("--columns", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(fn=cmd_conditions_sheet)
