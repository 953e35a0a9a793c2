"""`datagen edits-sheet PHOTO --out sheet.png`: one photo through every synthesized edit (remove / add / replace
object, background change, style transfer, text-to-image, layer decomposition and fusion), one row per sample:
its inputs (mask outlined in red), its target, and its template instruction with the {image} indicators named.
Makers that are off (no model) or skip the photo get a row saying why."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from pipelines.catalog import OPERATORS, SYNTHESIZED
from pipelines.commands.conditions_sheet import _operator_configs, _wrap, load_rgb

SHEET_EDITS = tuple(cls.name for cls in SYNTHESIZED)
HEAD_H = 24


def outline(frame) -> np.ndarray:
    """The frame's image with its mask's outline drawn in red (a layer's mask is its alpha)."""
    pic = frame.image.copy()
    if frame.mask is not None:
        contours, _ = cv2.findContours((frame.mask > 0).astype(np.uint8), cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
        cv2.drawContours(pic, contours, -1, (255, 0, 0), max(1, round(max(pic.shape[:2]) / 170)))
    return pic


def render_rows(image: np.ndarray, caption: str, configs: dict[str, Any], seed: int = 0) -> list[dict[str, Any]]:
    """One row per synthesized sample: {task, inputs: [(label, picture)], target, instruction, note}."""
    from datagen.batch import SourceImage, WorkBatch
    from operators.edits.base import ProposalEdit
    from operators.edits.proposals import ObjectProposals
    from operators.instructions.templates import TemplateInstructions

    rows: list[dict[str, Any]] = []
    proposer = ObjectProposals(configs.get(ObjectProposals.name), seed=seed)  # once for the photo, as in a run
    found = None
    for name in SHEET_EDITS:
        cls = OPERATORS[name]
        context = {"proposals": proposer.config.settings()} if issubclass(cls, ProposalEdit) else {}
        op = cls(configs.get(name), seed=seed, **context)
        why = op.unavailable_reason()
        if why:
            rows.append({"task": name, "note": "OFF: " + why})
            continue
        op.setup()
        batch = WorkBatch(
            partition="sheet-00000",
            spec={},
            seed=seed,
            recipe="sheet",
            items=[SourceImage("sheet", "sheet", image, caption)],
        )
        if found is None:
            found = proposer(batch).items[0].proposals
        batch.items[0].proposals = found
        op(batch)
        if not batch.samples:
            rows.append({"task": name, "note": "skipped: " + (", ".join(batch.stage(op.name).skipped) or "no sample")})
            continue
        TemplateInstructions(seed=seed)(batch)
        for s in batch.samples:
            t = s.current
            labels = ["{image}"] if len(t.inputs) == 1 else [f"{{image{i + 1}}}" for i in range(len(t.inputs))]
            rows.append(
                {
                    "task": s.task,
                    "inputs": [(lab, outline(f)) for lab, f in zip(labels, t.inputs)],
                    "target": outline(t.target),
                    "instruction": t.instruction,
                    "note": "",
                }
            )
    return rows


def compose_rows(rows: list[dict[str, Any]], tile: int, text_w: int) -> np.ndarray:
    """Rows of [inputs..., target] tiles and the instruction beside them, on white."""
    max_in = max([len(r.get("inputs", [])) for r in rows] + [1])
    width = (max_in + 1) * tile + text_w
    row_h = tile + HEAD_H
    sheet = np.full((len(rows) * row_h, width, 3), 255, np.uint8)
    for ri, r in enumerate(rows):
        y0 = ri * row_h
        cv2.line(sheet, (0, y0), (width, y0), (200, 200, 200), 1)
        cells = [(ci * tile, label, pic) for ci, (label, pic) in enumerate(r.get("inputs", []))]
        if "target" in r:
            if not r.get("inputs"):
                cells.append((0, "(no input image)", None))
            cells.append((max_in * tile, "target", r["target"]))
        for x0, label, pic in cells:
            cv2.putText(sheet, label, (x0 + 6, y0 + 17), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
            if pic is None:
                sheet[y0 + HEAD_H : y0 + row_h - 2, x0 + 2 : x0 + tile - 2] = 235
                continue
            h, w = pic.shape[:2]
            s = (tile - 4) / max(h, w)
            small = cv2.resize(pic, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)
            sh, sw = small.shape[:2]
            oy, ox = y0 + HEAD_H + (tile - sh) // 2, x0 + (tile - sw) // 2
            sheet[oy : oy + sh, ox : ox + sw] = small
        tx = (max_in + 1) * tile + 8
        cv2.putText(sheet, r["task"], (tx, y0 + 18), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (0, 0, 120), 1, cv2.LINE_AA)
        text = r.get("instruction") or r.get("note", "")
        for j, line in enumerate(_wrap(text, max(10, text_w // 8))[: max(1, (tile - 8) // 18)]):
            cv2.putText(
                sheet,
                line,
                (tx, y0 + HEAD_H + 22 + 18 * j),
                cv2.FONT_HERSHEY_SIMPLEX,
                0.45,
                (40, 40, 40),
                1,
                cv2.LINE_AA,
            )
    return sheet


def cmd_edits_sheet(args: argparse.Namespace) -> int:
    image = load_rgb(args.photo, args.max_side)
    rows = render_rows(image, args.caption, _operator_configs(args.recipe, list(args.overrides)), seed=args.seed)
    sheet = compose_rows(rows, args.tile, args.text_width)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(out), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 9]):
        raise OSError(f"could not write {out}")
    off = [f"{r['task']} ({r['note']})" for r in rows if r.get("note")]
    print(f"wrote {out} ({len(rows)} rows{'; ' + '; '.join(off) if off else ''})")
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "edits-sheet", help="render a photo through every synthesized edit as a contact sheet PNG"
    )
    p.add_argument("photo", help="an image file")
    p.add_argument("--out", required=True, help="PNG to write")
    p.add_argument(
        "--caption", default="", help="the photo's caption (text-to-image needs one; object names may use it)"
    )
    p.add_argument(
        "--recipe", help="take operator settings (backends, checkpoints) from this recipe; default: built-in defaults"
    )
    p.add_argument("overrides", nargs="*", help="key=value overrides, e.g. operators.style_transfer.styles_per_image=6")
    p.add_argument("--max-side", type=int, default=512, help="long side the photo is processed at")
    p.add_argument("--tile", type=int, default=192, help="tile side in the sheet")
    p.add_argument("--text-width", type=int, default=420, help="width of the instruction column")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(fn=cmd_edits_sheet)
