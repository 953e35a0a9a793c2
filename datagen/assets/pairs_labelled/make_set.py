"""Builds the labelled pairing set in this folder from real photos shipped in scikit-image and scikit-learn:
groups of related views (stereo, video frames, viewpoint changes, an edited copy, an object alone and in its scene)
plus unrelated photos. Run: python datagen/assets/pairs_labelled/make_set.py (deterministic; writes *.jpg, labels.csv)."""
from __future__ import annotations

import csv
from pathlib import Path

import cv2
import numpy as np

from datagen.ingest.listing import builtin_photos

HERE = Path(__file__).resolve().parent
LONG_SIDE = 448
JPEG_QUALITY = 88


def _photo(name: str) -> np.ndarray:
    import skimage.data

    known = {Path(p).name: p for _, p in builtin_photos()}
    path = known.get(name, str(Path(skimage.data.__file__).parent / name))
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def _fit(img: np.ndarray, side: int = LONG_SIDE) -> np.ndarray:
    h, w = img.shape[:2]
    s = side / max(h, w)
    return cv2.resize(img, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)


def _crop(img: np.ndarray, x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
    """Crop by fractions of the width and height."""
    h, w = img.shape[:2]
    return img[round(y0 * h) : round(y1 * h), round(x0 * w) : round(x1 * w)]


def _view(img: np.ndarray, quad: list[tuple[float, float]]) -> np.ndarray:
    """What a camera turned towards one side sees: the quadrilateral `quad` (fractions; TL, TR, BR, BL) of the
    scene rectified to the full frame. Real pixels everywhere, no empty borders."""
    h, w = img.shape[:2]
    src = np.float32([[x * w, y * h] for x, y in quad])
    dst = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
    return cv2.warpPerspective(img, cv2.getPerspectiveTransform(src, dst), (w, h), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)


def _edit(img: np.ndarray) -> np.ndarray:
    """A plausible photo edit: a region removed by inpainting, a warmer grade and a drawn red collar."""
    out = img.copy()
    h, w = out.shape[:2]
    mask = np.zeros((h, w), np.uint8)
    cv2.ellipse(mask, (int(0.85 * w), int(0.25 * h)), (int(0.12 * w), int(0.15 * h)), 0, 0, 360, 255, -1)
    out = cv2.inpaint(out, mask, 7, cv2.INPAINT_TELEA)
    grade = out.astype(np.float32) * np.float32([1.12, 1.0, 0.85])
    out = np.clip(grade, 0, 255).astype(np.uint8)
    cv2.ellipse(out, (int(0.45 * w), int(0.98 * h)), (int(0.3 * w), int(0.1 * h)), 0, 180, 360, (200, 20, 30), max(3, w // 40))
    return out


def build() -> list[dict[str, str]]:
    rows: list[dict[str, str]] = []

    def add(name: str, img: np.ndarray, group: str, kind: str, source: str, how: str) -> None:
        img = _fit(img)
        cv2.imwrite(str(HERE / name), cv2.cvtColor(img, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
        rows.append({"file": name, "group": group, "kind": kind, "source": source, "how": how})

    # stereo: the two views of the Middlebury motorcycle pair
    add("stereo_motorcycle_left.jpg", _photo("motorcycle_left.png"), "motorcycle", "stereo", "skimage/motorcycle_left.png", "as is")
    add("stereo_motorcycle_right.jpg", _photo("motorcycle_right.png"), "motorcycle", "stereo", "skimage/motorcycle_right.png", "as is")

    # consecutive video frames: a slow pan with a slight zoom across a wide photo, and a zoom towards a rocket
    china = _photo("china.jpg")
    for i, (x0, s) in enumerate([(0.0, 0.72), (0.12, 0.70), (0.24, 0.68)]):
        add(f"video_pan_{i}.jpg", _crop(china, x0, 0.5 - s / 2 * 0.95, x0 + s, 0.5 + s / 2 * 0.95 + 0.02), "temple_pan", "video", "sklearn/china.jpg", f"frame {i} of a pan")
    rocket = _photo("rocket.jpg")
    for i, f in enumerate([1.0, 0.86, 0.74]):
        m = (1 - f) / 2
        add(f"video_zoom_{i}.jpg", _crop(rocket, m, m * 0.6, 1 - m, 1 - m * 1.4), "rocket_zoom", "video", "skimage/rocket.jpg", f"frame {i} of a zoom-in")

    # viewpoint changes: the camera turned left / right / tilted above the table
    coffee = _photo("coffee.png")
    add("view_coffee_0.jpg", coffee, "coffee", "viewpoint", "skimage/coffee.png", "as is")
    add("view_coffee_1.jpg", _view(coffee, [(0.10, 0.02), (0.95, 0.12), (0.95, 0.88), (0.10, 0.98)]), "coffee", "viewpoint", "skimage/coffee.png", "perspective: turned right")
    add("view_coffee_2.jpg", _view(coffee, [(0.02, 0.15), (0.98, 0.05), (0.90, 0.95), (0.08, 0.85)]), "coffee", "viewpoint", "skimage/coffee.png", "perspective: tilted")

    # an edited copy
    cat = _photo("chelsea.png")
    add("edit_cat_0.jpg", cat, "cat", "edit", "skimage/chelsea.png", "as is")
    add("edit_cat_1.jpg", _edit(cat), "cat", "edit", "skimage/chelsea.png", "inpainted region, warmer grade, drawn collar")

    # an object alone and in its scene
    flower = _photo("flower.jpg")
    add("object_flower_scene.jpg", flower, "flower", "object_in_scene", "sklearn/flower.jpg", "as is")
    add("object_flower_alone.jpg", _crop(flower, 0.24, 0.15, 0.72, 0.88), "flower", "object_in_scene", "sklearn/flower.jpg", "the bloom cropped")
    astro = _photo("astronaut.png")
    add("object_astronaut_scene.jpg", astro, "astronaut", "object_in_scene", "skimage/astronaut.png", "as is")
    add("object_astronaut_alone.jpg", _crop(astro, 0.25, 0.0, 0.85, 0.62), "astronaut", "object_in_scene", "skimage/astronaut.png", "head and shoulders cropped")

    # unrelated photos
    for name in ["camera.png", "moon.png", "coins.png", "brick.png", "grass.png", "gravel.png", "ihc.png",
                 "retina.jpg", "hubble_deep_field.jpg", "clock_motion.png", "cell.png"]:
        pkg = "skimage"
        add(f"unrelated_{Path(name).stem}.jpg", _photo(name), "", "unrelated", f"{pkg}/{name}", "as is")
    return rows


def main() -> None:
    rows = build()
    with open(HERE / "labels.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["file", "group", "kind", "source", "how"])
        w.writeheader()
        w.writerows(rows)
    print(f"wrote {len(rows)} images and labels.csv to {HERE}")


if __name__ == "__main__":
    main()
