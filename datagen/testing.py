"""Helpers for tests and benchmarks: real photos at small sizes, and a folder of hostile inputs (zero-byte,
truncated, mislabelled, decompression-bomb, tiny, extreme-aspect) next to odd-but-valid ones."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from datagen.ingest.listing import builtin_photos


def load_photo(name: str = "astronaut.png", side: int = 128) -> np.ndarray:
    """A real photo shipped in scikit-image/scikit-learn as HxWx3 uint8 RGB, long side `side`."""
    path = next(p for rel, p in builtin_photos() if rel.endswith("/" + name))
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    h, w = bgr.shape[:2]
    s = side / max(h, w)
    bgr = cv2.resize(bgr, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def bomb_png(width: int = 60000, height: int = 60000) -> bytes:
    """A tiny file whose header claims width*height pixels (1-bit gray): a decompression bomb."""
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    row = b"\x00" + b"\x00" * ((width + 7) // 8)
    comp = zlib.compressobj(9)
    idat = b"".join(comp.compress(row) for _ in range(64)) + comp.flush()  # only a few rows: never decoded
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", idat) + _png_chunk(b"IEND", b"")


def _save(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


# name -> expected quarantine reason (None: valid, must be processed)
HOSTILE_EXPECTED: dict[str, str | None] = {
    "zero.jpg": "empty_file",
    "truncated.jpg": "truncated_or_corrupt",
    "notes.jpg": "not_an_image",
    "bomb.png": "too_many_pixels",
    "dot.png": "too_small",
    "strip.png": "extreme_aspect_ratio",
    "cmyk.jpg": None,
    "sixteen_bit.png": None,
    "alpha.png": None,
    "palette.png": None,
    "animated.gif": None,
    "rotated_exif.jpg": None,
    "photo.webp": None,
    "UPPER.JPG": None,
    "plain.jpg": None,
}


def make_hostile_corpus(root: Path, side: int = 160) -> dict[str, str | None]:
    """Write the corpus under root and return HOSTILE_EXPECTED (file name -> expected reason or None)."""
    root.mkdir(parents=True, exist_ok=True)
    rgb = load_photo("chelsea.png", side)
    im = Image.fromarray(rgb)
    good_jpg = _save(im, "JPEG", quality=90)
    files: dict[str, bytes] = {
        "zero.jpg": b"",
        "truncated.jpg": good_jpg[: len(good_jpg) // 2],
        "notes.jpg": b"this is a text file pretending to be a JPEG\n" * 20,
        "bomb.png": bomb_png(),
        "dot.png": _save(Image.new("RGB", (1, 1), (255, 0, 0)), "PNG"),
        "strip.png": _save(Image.fromarray(np.full((8, 1000, 3), 128, np.uint8)).resize((1000, 80)), "PNG"),
        "cmyk.jpg": _save(im.convert("CMYK"), "JPEG", quality=90),
        "sixteen_bit.png": _save(Image.fromarray((rgb[..., 0].astype(np.uint16) * 257)), "PNG"),
        "alpha.png": _save(im.convert("RGBA"), "PNG"),
        "palette.png": _save(im.convert("P", palette=Image.Palette.ADAPTIVE), "PNG"),
        "photo.webp": _save(im, "WEBP", quality=85),
        "UPPER.JPG": good_jpg,
        "plain.jpg": _save(Image.fromarray(load_photo("coffee.png", side)), "JPEG", quality=90),
    }
    frames = [Image.fromarray(np.roll(rgb, 8 * i, axis=1)) for i in range(3)]
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    files["animated.gif"] = buf.getvalue()
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 CW on display
    files["rotated_exif.jpg"] = _save(
        Image.fromarray(load_photo("astronaut.png", side)[: side // 2]), "JPEG", exif=exif
    )
    for name, data in files.items():
        (root / name).write_bytes(data)
    return dict(HOSTILE_EXPECTED)
