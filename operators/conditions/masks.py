"""Repainting masks as scepter draws them for ACE: irregular brush strokes or random boxes (one kind per mask) for
inpainting, and a kept inner box for outpainting. A mask is HxW uint8, 255 = the region to repaint."""

from __future__ import annotations

import math
from typing import Any

import cv2
import numpy as np
from pydantic import Field, model_validator

from datagen.config import Section

SIDES = ("left", "right", "top", "bottom")


class StrokeParams(Section):
    strokes: tuple[int, int] = Field((4, 10), description="strokes per mask")
    segments: tuple[int, int] = Field((1, 5), description="straight segments per stroke")
    width: tuple[int, int] = Field((5, 100), description="brush width in px")
    length: tuple[int, int] = Field((10, 200), description="segment length in px")


class BoxParams(Section):
    boxes: tuple[int, int] = Field((1, 5), description="boxes per mask")
    size: tuple[int, int] = Field((30, 150), description="box side in px")


class OutpaintParams(Section):
    sides: tuple[int, int] = Field((1, 4), description="how many of the four sides to extend")
    ratio: tuple[float, float] = Field((0.1, 0.3), description="share of the width/height removed on each chosen side")

    @model_validator(mode="after")
    def _check(self):
        if not 1 <= self.sides[0] <= self.sides[1] <= 4:
            raise ValueError(f"sides must be (min, max) within 1..4, got {self.sides}")
        if not 0 < self.ratio[0] <= self.ratio[1] < 0.5:
            raise ValueError(f"ratio must be (min, max) with 0 < min <= max < 0.5, got {self.ratio}")
        return self


def _ints(rng: np.random.Generator, lo_hi: tuple[int, int]) -> int:
    return int(rng.integers(lo_hi[0], lo_hi[1] + 1))


def stroke_mask(h: int, w: int, rng: np.random.Generator, p: StrokeParams) -> tuple[np.ndarray, dict[str, Any]]:
    """Random polylines with a round brush: each stroke starts anywhere and turns at every segment."""
    mask = np.zeros((h, w), np.uint8)
    n = _ints(rng, p.strokes)
    widths, lengths = [], []
    for _ in range(n):
        x, y = float(rng.uniform(0, w)), float(rng.uniform(0, h))
        brush = _ints(rng, p.width)
        widths.append(brush)
        for _ in range(_ints(rng, p.segments)):
            angle = float(rng.uniform(0, 2 * math.pi))
            length = _ints(rng, p.length)
            lengths.append(length)
            nx = float(np.clip(x + length * math.cos(angle), 0, w - 1))
            ny = float(np.clip(y + length * math.sin(angle), 0, h - 1))
            cv2.line(mask, (int(x), int(y)), (int(nx), int(ny)), 255, brush)
            x, y = nx, ny
    return mask, {"kind": "strokes", "strokes": n, "max_width": max(widths), "max_length": max(lengths)}


def box_mask(h: int, w: int, rng: np.random.Generator, p: BoxParams) -> tuple[np.ndarray, dict[str, Any]]:
    """Axis-aligned boxes; a box never exceeds the image, so small images get smaller boxes."""
    mask = np.zeros((h, w), np.uint8)
    n = _ints(rng, p.boxes)
    boxes = []
    for _ in range(n):
        bw = min(_ints(rng, p.size), w)
        bh = min(_ints(rng, p.size), h)
        x0 = int(rng.integers(0, w - bw + 1))
        y0 = int(rng.integers(0, h - bh + 1))
        mask[y0 : y0 + bh, x0 : x0 + bw] = 255
        boxes.append([x0, y0, bw, bh])
    return mask, {"kind": "boxes", "boxes": boxes}


def inpaint_mask(h: int, w: int, rng: np.random.Generator, strokes: StrokeParams, boxes: BoxParams, stroke_prob: float):
    """One mask kind per image: strokes with probability stroke_prob, else boxes (scepter: 0.5 each)."""
    if rng.uniform() < stroke_prob:
        return stroke_mask(h, w, rng, strokes)
    return box_mask(h, w, rng, boxes)


def outpaint_mask(h: int, w: int, rng: np.random.Generator, p: OutpaintParams) -> tuple[np.ndarray, dict[str, Any]]:
    """Keep an inner box of the photo, repaint the band removed from each chosen side."""
    k = _ints(rng, p.sides)
    chosen = sorted(int(i) for i in rng.choice(len(SIDES), size=k, replace=False))
    cut = {SIDES[i]: float(rng.uniform(*p.ratio)) for i in chosen}
    left = int(round(cut.get("left", 0.0) * w))
    right = w - int(round(cut.get("right", 0.0) * w))
    top = int(round(cut.get("top", 0.0) * h))
    bottom = h - int(round(cut.get("bottom", 0.0) * h))
    mask = np.full((h, w), 255, np.uint8)
    mask[top:bottom, left:right] = 0
    return mask, {
        "kind": "outpaint",
        "sides": [SIDES[i] for i in chosen],
        "keep_box": [left, top, right - left, bottom - top],
    }
