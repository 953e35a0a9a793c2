"""Builds the labelled pairing set in this folder from real photos shipped in scikit-image and scikit-learn:
groups of related views (stereo, video frames, viewpoint changes, an edited copy, an object alone and in its scene)
plus unrelated photos. Run: python datagen/assets/pairs_labelled/make_set.py (deterministic; writes *.jpg,
labels.csv)."""

from __future__ import annotations

import csv
from pathlib import Path

import cv2
import numpy as np

from datagen.imaging import fit_long_side
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


def _skimage_dir() -> str:
    import skimage.data

    return str(Path(skimage.data.__file__).parent)


def _fit(img: np.ndarray, side: int = LONG_SIDE) -> np.ndarray:
    return fit_long_side(img, side, upscale=True)[0]


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
    return cv2.warpPerspective(
        img, cv2.getPerspectiveTransform(src, dst), (w, h), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT
    )


def _edit(img: np.ndarray) -> np.ndarray:
    """A plausible photo edit: a region removed by inpainting, a warmer grade and a drawn red collar."""
    out = img.copy()
    h, w = out.shape[:2]
    mask = np.zeros((h, w), np.uint8)
    cv2.ellipse(mask, (int(0.85 * w), int(0.25 * h)), (int(0.12 * w), int(0.15 * h)), 0, 0, 360, 255, -1)
    out = cv2.inpaint(out, mask, 7, cv2.INPAINT_TELEA)
    grade = out.astype(np.float32) * np.float32([1.12, 1.0, 0.85])
    out = np.clip(grade, 0, 255).astype(np.uint8)
    cv2.ellipse(
        out, (int(0.45 * w), int(0.98 * h)), (int(0.3 * w), int(0.1 * h)), 0, 180, 360, (200, 20, 30), max(3, w // 40)
    )
    return out


def _sample(name: str) -> np.ndarray:
    """A matplotlib sample image as RGB (alpha composited on white)."""
    from matplotlib import cbook

    rgba = cv2.imread(cbook.get_sample_data(name, asfileobj=False), cv2.IMREAD_UNCHANGED)
    return on_white(rgba)


def on_white(bgra: np.ndarray) -> np.ndarray:
    """OpenCV BGR(A) -> RGB on a white ground."""
    if bgra.ndim == 2:
        return cv2.cvtColor(bgra, cv2.COLOR_GRAY2RGB)
    rgb = cv2.cvtColor(bgra[..., :3], cv2.COLOR_BGR2RGB).astype(np.float32)
    if bgra.shape[2] == 4:
        a = bgra[..., 3:].astype(np.float32) / 255.0
        rgb = rgb * a + 255.0 * (1 - a)
    return rgb.astype(np.uint8)


def sheet(img: np.ndarray, w: int = 448, h: int = 336, fill: float = 0.8, ground: int = 255) -> np.ndarray:
    """`img` centred on a plain w x h sheet, at `fill` of it: a logo on a page, a document on a desk scan."""
    s = fill * min(w / img.shape[1], h / img.shape[0])
    small = cv2.resize(img, (round(img.shape[1] * s), round(img.shape[0] * s)), interpolation=cv2.INTER_AREA)
    out = np.full((h, w, 3), ground, np.uint8)
    y, x = (h - small.shape[0]) // 2, (w - small.shape[1]) // 2
    out[y : y + small.shape[0], x : x + small.shape[1]] = small
    return out


def hue_shift(img: np.ndarray, degrees: int) -> np.ndarray:
    """A colour variant: every hue turned by `degrees` (whites and greys stay)."""
    hsv = cv2.cvtColor(img, cv2.COLOR_RGB2HSV)
    hsv[..., 0] = (hsv[..., 0].astype(np.int32) + degrees // 2) % 180
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)


def defocus(img: np.ndarray, radius: int) -> np.ndarray:
    k = np.zeros((2 * radius + 1, 2 * radius + 1), np.float32)
    cv2.circle(k, (radius, radius), radius, 1.0, -1)
    return cv2.filter2D(img, -1, k / k.sum(), borderType=cv2.BORDER_REFLECT)


def motion_blur(img: np.ndarray, length: int, angle: float) -> np.ndarray:
    k = np.zeros((length, length), np.float32)
    k[length // 2, :] = 1.0
    k = cv2.warpAffine(k, cv2.getRotationMatrix2D((length / 2 - 0.5, length / 2 - 0.5), angle, 1.0), (length, length))
    return cv2.filter2D(img, -1, k / k.sum(), borderType=cv2.BORDER_REFLECT)


def template_of(shape_rgb: np.ndarray, thickness: int = 3) -> np.ndarray:
    """A shape's template: its outline drawn in black on white (a stencil / cut-out pattern)."""
    gray = cv2.cvtColor(shape_rgb, cv2.COLOR_RGB2GRAY)
    _, mask = cv2.threshold(gray, 0, 255, cv2.THRESH_BINARY_INV + cv2.THRESH_OTSU)
    contours, _ = cv2.findContours(mask, cv2.RETR_LIST, cv2.CHAIN_APPROX_NONE)
    out = np.full_like(shape_rgb, 255)
    cv2.drawContours(out, contours, -1, (0, 0, 0), thickness)
    return out


def hillshade_frames(elevation: np.ndarray, boxes: list[tuple[float, float, float, float]]) -> list[np.ndarray]:
    """Aerial views of a terrain: the elevation shaded (matplotlib's LightSource, terrain colours), then crops of it,
    as consecutive frames of a survey flight."""
    from matplotlib import cm
    from matplotlib.colors import LightSource

    rgb = (
        LightSource(azdeg=315, altdeg=45).shade(elevation, cmap=cm.gist_earth, blend_mode="overlay", vert_exag=1.5)[
            ..., :3
        ]
        * 255
    ).astype(np.uint8)
    rgb = (
        cv2.resize(rgb, (rgb.shape[1] * 4, rgb.shape[0] * 4), interpolation=cv2.INTER_CUBIC)
        if max(rgb.shape[:2]) < 200
        else rgb
    )
    return [_crop(rgb, *b) for b in boxes]


def clutter(tiles: list[np.ndarray], obj: np.ndarray, w: int = 448, h: int = 336, seed: int = 0) -> np.ndarray:
    """A cluttered scene: a collage of `tiles` (pieces of other photos, turned and overlapping) with `obj` placed
    in it at about a third of the frame."""
    rng = np.random.default_rng(seed)
    out = np.zeros((h, w, 3), np.uint8)
    for i in range(14):
        t = tiles[i % len(tiles)]
        side = int(rng.integers(90, 170))
        y0, x0 = int(rng.integers(0, max(1, t.shape[0] - side))), int(rng.integers(0, max(1, t.shape[1] - side)))
        piece = cv2.resize(t[y0 : y0 + side, x0 : x0 + side], (side, side))
        y, x = int(rng.integers(-30, h - side + 30)), int(rng.integers(-30, w - side + 30))
        ys, xs = slice(max(0, y), min(h, y + side)), slice(max(0, x), min(w, x + side))
        out[ys, xs] = piece[ys.start - y : ys.stop - y, xs.start - x : xs.stop - x]
    s = 0.45 * h / max(obj.shape[:2])
    o = cv2.resize(obj, (round(obj.shape[1] * s), round(obj.shape[0] * s)), interpolation=cv2.INTER_AREA)
    y, x = int(h * 0.35), int(w * 0.45)
    region = out[y : y + o.shape[0], x : x + o.shape[1]]
    keep = (o.min(axis=2) > 245)[..., None]  # the object's white ground lets the clutter through
    out[y : y + o.shape[0], x : x + o.shape[1]] = np.where(keep, region, o)
    return out


def build() -> list[dict[str, str]]:
    rows: list[dict[str, str]] = []

    def add(name: str, img: np.ndarray, group: str, kind: str, source: str, how: str) -> None:
        img = _fit(img)
        cv2.imwrite(str(HERE / name), cv2.cvtColor(img, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
        rows.append({"file": name, "group": group, "kind": kind, "source": source, "how": how})

    # stereo: the two views of the Middlebury motorcycle pair
    add(
        "stereo_motorcycle_left.jpg",
        _photo("motorcycle_left.png"),
        "motorcycle",
        "stereo",
        "skimage/motorcycle_left.png",
        "as is",
    )
    add(
        "stereo_motorcycle_right.jpg",
        _photo("motorcycle_right.png"),
        "motorcycle",
        "stereo",
        "skimage/motorcycle_right.png",
        "as is",
    )

    # consecutive video frames: a slow pan with a slight zoom across a wide photo, and a zoom towards a rocket
    china = _photo("china.jpg")
    for i, (x0, s) in enumerate([(0.0, 0.72), (0.12, 0.70), (0.24, 0.68)]):
        add(
            f"video_pan_{i}.jpg",
            _crop(china, x0, 0.5 - s / 2 * 0.95, x0 + s, 0.5 + s / 2 * 0.95 + 0.02),
            "temple_pan",
            "video",
            "sklearn/china.jpg",
            f"frame {i} of a pan",
        )
    rocket = _photo("rocket.jpg")
    for i, f in enumerate([1.0, 0.86, 0.74]):
        m = (1 - f) / 2
        add(
            f"video_zoom_{i}.jpg",
            _crop(rocket, m, m * 0.6, 1 - m, 1 - m * 1.4),
            "rocket_zoom",
            "video",
            "skimage/rocket.jpg",
            f"frame {i} of a zoom-in",
        )

    # viewpoint changes: the camera turned left / right / tilted above the table
    coffee = _photo("coffee.png")
    add("view_coffee_0.jpg", coffee, "coffee", "viewpoint", "skimage/coffee.png", "as is")
    add(
        "view_coffee_1.jpg",
        _view(coffee, [(0.10, 0.02), (0.95, 0.12), (0.95, 0.88), (0.10, 0.98)]),
        "coffee",
        "viewpoint",
        "skimage/coffee.png",
        "perspective: turned right",
    )
    add(
        "view_coffee_2.jpg",
        _view(coffee, [(0.02, 0.15), (0.98, 0.05), (0.90, 0.95), (0.08, 0.85)]),
        "coffee",
        "viewpoint",
        "skimage/coffee.png",
        "perspective: tilted",
    )

    # an edited copy
    cat = _photo("chelsea.png")
    add("edit_cat_0.jpg", cat, "cat", "edit", "skimage/chelsea.png", "as is")
    add(
        "edit_cat_1.jpg",
        _edit(cat),
        "cat",
        "edit",
        "skimage/chelsea.png",
        "inpainted region, warmer grade, drawn collar",
    )

    # an object alone and in its scene
    flower = _photo("flower.jpg")
    add("object_flower_scene.jpg", flower, "flower", "object_in_scene", "sklearn/flower.jpg", "as is")
    add(
        "object_flower_alone.jpg",
        _crop(flower, 0.24, 0.15, 0.72, 0.88),
        "flower",
        "object_in_scene",
        "sklearn/flower.jpg",
        "the bloom cropped",
    )
    astro = _photo("astronaut.png")
    add("object_astronaut_scene.jpg", astro, "astronaut", "object_in_scene", "skimage/astronaut.png", "as is")
    add(
        "object_astronaut_alone.jpg",
        _crop(astro, 0.25, 0.0, 0.85, 0.62),
        "astronaut",
        "object_in_scene",
        "skimage/astronaut.png",
        "head and shoulders cropped",
    )

    # colour variants of one logo (matplotlib's), on a white page
    logo = sheet(_sample("logo2.png"))
    add("logo_mpl_0.jpg", logo, "mpl_logo", "logo_colour", "matplotlib/logo2.png", "as is, on white")
    add(
        "logo_mpl_1.jpg",
        hue_shift(logo, 140),
        "mpl_logo",
        "logo_colour",
        "matplotlib/logo2.png",
        "hues turned by 140 degrees",
    )

    # two blur variants of one document
    doc = sheet(_photo("text.png"), fill=0.9, ground=235)
    add(
        "doc_text_defocus.jpg",
        defocus(doc, 3),
        "text_doc",
        "document_blur",
        "skimage/text.png",
        "on a sheet, defocus radius 3",
    )
    add(
        "doc_text_motion.jpg",
        motion_blur(doc, 9, 20.0),
        "text_doc",
        "document_blur",
        "skimage/text.png",
        "on a sheet, motion blur 9 px at 20 degrees",
    )

    # a shape and its template
    horse = sheet(on_white(cv2.imread(str(Path(_skimage_dir()) / "horse.png"), cv2.IMREAD_UNCHANGED)))
    add("shape_horse.jpg", horse, "horse_shape", "shape_template", "skimage/horse.png", "the silhouette on white")
    add(
        "shape_horse_template.jpg",
        template_of(horse),
        "horse_shape",
        "shape_template",
        "skimage/horse.png",
        "its outline, 3 px, on white",
    )

    # two overlapping aerial frames of one terrain (a survey flight)
    from matplotlib import cbook

    dem = np.load(cbook.get_sample_data("jacksboro_fault_dem.npz", asfileobj=False))["elevation"]
    for i, frame in enumerate(hillshade_frames(dem, [(0.0, 0.05, 0.75, 0.85), (0.22, 0.12, 0.97, 0.92)])):
        add(
            f"aerial_jacksboro_{i}.jpg",
            frame,
            "jacksboro",
            "aerial",
            "matplotlib/jacksboro_fault_dem.npz",
            f"hill-shaded frame {i} of a flight",
        )

    # an object alone and in a cluttered scene
    gift = _sample("Minduka_Present_Blue_Pack.png")
    add(
        "clutter_gift_alone.jpg",
        sheet(gift, fill=0.7),
        "gift",
        "object_in_clutter",
        "matplotlib/Minduka_Present_Blue_Pack.png",
        "alone on white",
    )
    tiles = [_photo(n) for n in ("brick.png", "coins.png", "gravel.png", "ihc.png")]
    add(
        "clutter_gift_scene.jpg",
        clutter(tiles, gift),
        "gift",
        "object_in_clutter",
        "matplotlib/Minduka_Present_Blue_Pack.png",
        "pasted into a collage of brick, coins, gravel and IHC pieces",
    )

    # unrelated photos
    for name in [
        "camera.png",
        "moon.png",
        "coins.png",
        "brick.png",
        "grass.png",
        "gravel.png",
        "ihc.png",
        "retina.jpg",
        "hubble_deep_field.jpg",
        "clock_motion.png",
        "cell.png",
    ]:
        pkg = "skimage"
        add(f"unrelated_{Path(name).stem}.jpg", _photo(name), "", "unrelated", f"{pkg}/{name}", "as is")
    return rows


def build_heldout(out: Path) -> list[dict[str, str]]:
    """The held-out split (../pairs_heldout): the same kinds of relation made from other photos, never looked at
    while tuning the demo's pairing. Its distractors are the tuning split's unrelated photos plus two new ones."""
    rows: list[dict[str, str]] = []

    def add(name: str, img: np.ndarray, group: str, kind: str, source: str, how: str) -> None:
        img = _fit(img)
        cv2.imwrite(str(out / name), cv2.cvtColor(img, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
        rows.append({"file": name, "group": group, "kind": kind, "source": source, "how": how})

    from matplotlib import cbook

    hopper = _sample("grace_hopper.jpg")
    for i, (x0, y0, f) in enumerate([(0.0, 0.0, 0.80), (0.06, 0.05, 0.78), (0.12, 0.09, 0.76)]):
        add(
            f"video_hopper_{i}.jpg",
            _crop(hopper, x0, y0, x0 + f, y0 + f),
            "hopper",
            "video",
            "matplotlib/grace_hopper.jpg",
            f"frame {i} of a pan with a slight zoom",
        )
    logo = sheet(on_white(cv2.imread(str(Path(_skimage_dir()) / "logo.png"), cv2.IMREAD_UNCHANGED)))
    add("logo_skimage_0.jpg", logo, "skimage_logo", "logo_colour", "skimage/logo.png", "as is, on white")
    add(
        "logo_skimage_1.jpg",
        hue_shift(logo, 100),
        "skimage_logo",
        "logo_colour",
        "skimage/logo.png",
        "hues turned by 100 degrees",
    )
    page = sheet(_photo("page.png"), fill=0.9, ground=230)
    add(
        "doc_page_defocus.jpg",
        defocus(page, 4),
        "page_doc",
        "document_blur",
        "skimage/page.png",
        "on a sheet, defocus radius 4",
    )
    add(
        "doc_page_motion.jpg",
        motion_blur(page, 11, -10.0),
        "page_doc",
        "document_blur",
        "skimage/page.png",
        "on a sheet, motion blur 11 px at -10 degrees",
    )
    phantom = _photo("phantom.png")
    add("shape_phantom.jpg", phantom, "phantom_shape", "shape_template", "skimage/phantom.png", "as is")
    edges = cv2.dilate(cv2.Canny(cv2.cvtColor(phantom, cv2.COLOR_RGB2GRAY), 30, 90), np.ones((3, 3), np.uint8))
    add(
        "shape_phantom_template.jpg",
        cv2.cvtColor(255 - edges, cv2.COLOR_GRAY2RGB),
        "phantom_shape",
        "shape_template",
        "skimage/phantom.png",
        "its outlines (Canny, 3 px) in black on white",
    )
    topo = np.load(cbook.get_sample_data("topobathy.npz", asfileobj=False))["topo"].astype(np.float64)
    for i, frame in enumerate(hillshade_frames(topo, [(0.0, 0.0, 0.78, 0.8), (0.2, 0.15, 0.98, 0.95)])):
        add(
            f"aerial_topobathy_{i}.jpg",
            frame,
            "topobathy",
            "aerial",
            "matplotlib/topobathy.npz",
            f"hill-shaded frame {i} of a flight",
        )
    wheel = _photo("color.png")
    add(
        "clutter_wheel_alone.jpg",
        sheet(wheel, fill=0.7),
        "wheel",
        "object_in_clutter",
        "skimage/color.png",
        "alone on white",
    )
    tiles = [_photo(n) for n in ("hubble_deep_field.jpg", "retina.jpg", "moon.png", "cell.png")]
    add(
        "clutter_wheel_scene.jpg",
        clutter(tiles, wheel, seed=1),
        "wheel",
        "object_in_clutter",
        "skimage/color.png",
        "pasted into a collage of Hubble, retina, moon and cell pieces",
    )
    for name in [
        "chessboard_RGB.png",
        "microaneurysms.png",
        "camera.png",
        "moon.png",
        "coins.png",
        "brick.png",
        "grass.png",
        "gravel.png",
        "ihc.png",
        "retina.jpg",
        "hubble_deep_field.jpg",
        "clock_motion.png",
        "cell.png",
    ]:
        add(f"unrelated_{Path(name).stem}.jpg", _photo(name), "", "unrelated", f"skimage/{name}", "as is")
    return rows


def _write(rows: list[dict[str, str]], folder: Path) -> None:
    with open(folder / "labels.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["file", "group", "kind", "source", "how"])
        w.writeheader()
        w.writerows(rows)
    print(f"wrote {len(rows)} images and labels.csv to {folder}")


def main() -> None:
    _write(build(), HERE)
    heldout = HERE.parent / "pairs_heldout"
    heldout.mkdir(exist_ok=True)
    _write(build_heldout(heldout), heldout)


if __name__ == "__main__":
    main()
