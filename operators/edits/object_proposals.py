"""Object proposals: which objects a photo holds, each with a mask and a name an instruction can use. Classical
default: the classical segmentation's regions (scikit-image Felzenszwalb, or the segmentation map's merged SLIC
regions) scored by OpenCV's spectral-residual saliency and colour contrast, named by colour and place ("the dark
object in the lower left"), and the main subject by GrabCut from the photo's frame; model: an open-vocabulary
detector through transformers
(OWLv2 or Grounding DINO) queried with caption nouns, boxes turned into masks by segment-anything."""

from __future__ import annotations

import logging
import re
from typing import Any, Literal, Optional

import cv2
import numpy as np
from pydantic import Field, model_validator

from datagen.config import Section
from datagen.imaging import fit_long_side
from datagen.schema import ObjectProposal

log = logging.getLogger(__name__)

# Objects a detector is asked for when the caption names none (COCO-like things people edit in photos).
DEFAULT_QUERIES = (
    "person",
    "cat",
    "dog",
    "bird",
    "horse",
    "car",
    "bicycle",
    "boat",
    "cup",
    "bottle",
    "chair",
    "flower",
    "tree",
    "book",
    "clock",
    "hat",
    "bag",
    "plate",
    "lamp",
    "camera",
)
# Caption words that are never the object (articles, places, photo words, colours).
_STOP = set(
    "a an the of on in at with and or to from by for under over behind near its his her their this that these those "
    "photo picture image photograph close-up closeup view scene background foreground front top bottom left right "
    "red green blue yellow white black dark old young small large big little traditional human some".split()
)


class ProposalConfig(Section):
    backend: Literal["classical", "model"] = Field(
        "classical", description="classical: saliency-scored regions; model: detector + SAM"
    )
    min_area: float = Field(0.01, gt=0, lt=1, description="smallest object, share of the image")
    max_area: float = Field(0.6, gt=0, le=1, description="largest object, share of the image")
    max_objects: int = Field(4, ge=1, description="proposals kept per photo, best first")
    # classical
    segmentation: Literal["felzenszwalb", "regions"] = Field(
        "felzenszwalb",
        description="classical regions scored: Felzenszwalb's (small, clean objects: badges, coins, cups) or the "
        "segmentation map's merged SLIC regions (larger parts; also finds patches in plain textures)",
    )
    work_side: int = Field(160, ge=32, description="long side the classical proposals are computed at")
    fz_scale: float = Field(300.0, gt=0, description="Felzenszwalb scale (larger: fewer, bigger regions)")
    fz_min_size: int = Field(60, ge=1, description="smallest Felzenszwalb region, px at work_side")
    min_contrast: float = Field(18.0, ge=0, description="least Lab distance between an object and the ring around it")
    max_border: float = Field(0.25, ge=0, le=1, description="largest share of an object's outline on the image border")
    # model
    detector: Optional[str] = Field(
        None, description="OWLv2 / Grounding DINO checkpoint (local dir or hub id) for backend=model"
    )
    sam_checkpoint: Optional[str] = Field(
        None, description="segment-anything checkpoint for masks of the detected boxes (unset: box masks)"
    )
    queries: list[str] = Field(list(DEFAULT_QUERIES), description="object names asked for besides the caption's nouns")
    box_threshold: float = Field(0.3, ge=0, le=1)

    @model_validator(mode="after")
    def _check(self):
        if self.min_area >= self.max_area:
            raise ValueError(f"min_area ({self.min_area}) must be below max_area ({self.max_area})")
        if self.backend == "model" and not self.detector:
            raise ValueError("backend=model needs `detector` (a local path or hub id of OWLv2 / Grounding DINO)")
        return self


# the typed proposal lives in the data contract (datagen.schema): the stage writes it onto each photo
Proposal = ObjectProposal


def place_phrase(cx: float, cy: float) -> str:
    """Where a point (as a share of width and height) lies, in words."""
    col = 0 if cx < 1 / 3 else (2 if cx > 2 / 3 else 1)
    row = 0 if cy < 1 / 3 else (2 if cy > 2 / 3 else 1)
    names = {
        (0, 0): "in the upper left",
        (0, 1): "at the top",
        (0, 2): "in the upper right",
        (1, 0): "on the left",
        (1, 1): "in the centre",
        (1, 2): "on the right",
        (2, 0): "in the lower left",
        (2, 1): "at the bottom",
        (2, 2): "in the lower right",
    }
    return names[(row, col)]


def colour_word(rgb: np.ndarray) -> str:
    """A plain colour name for a mean RGB colour (OpenCV HSV: hue 0-179)."""
    hsv = cv2.cvtColor(np.uint8([[np.clip(rgb, 0, 255)]]), cv2.COLOR_RGB2HSV)[0, 0].astype(int)
    h, s, v = hsv
    if v < 60:
        return "dark"
    if s < 45:
        return "white" if v > 200 else "grey"
    for limit, name in (
        (8, "red"),
        (20, "orange"),
        (33, "yellow"),
        (78, "green"),
        (96, "teal"),
        (130, "blue"),
        (150, "purple"),
        (170, "pink"),
    ):
        if h < limit:
            return name
    return "red"


def caption_nouns(caption: str, limit: int = 4) -> list[str]:
    """Candidate object words of a caption, in order (a crude noun guess: content words that are no stop words)."""
    words = re.findall(r"[a-z][a-z-]+", (caption or "").lower())
    out: list[str] = []
    for w in words:
        if w not in _STOP and len(w) > 2 and w not in out and not w.endswith(("ing", "ly")):
            out.append(w)
    return out[:limit]


def _from_mask(mask: np.ndarray, image: np.ndarray, noun: str, score: float, extra: dict[str, Any]) -> Proposal:
    h, w = mask.shape
    ys, xs = np.nonzero(mask)
    box = (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)
    return Proposal(
        mask=mask,
        noun=noun,
        place=place_phrase(xs.mean() / w, ys.mean() / h),
        score=float(score),
        box=box,
        area=float(len(xs)) / (h * w),
        extra=extra,
    )


def saliency_map(image: np.ndarray) -> np.ndarray:
    """OpenCV's spectral-residual saliency (Hou & Zhang 2007), HxW float32 in 0..1."""
    sr = cv2.saliency.StaticSaliencySpectralResidual_create()
    ok, sal = sr.computeSaliency(cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    if not ok:
        return np.zeros(image.shape[:2], np.float32)
    sal = cv2.GaussianBlur(sal.astype(np.float32), (0, 0), 2)
    return sal / max(float(sal.max()), 1e-6)


def classical_proposals(image: np.ndarray, cfg: ProposalConfig) -> list[Proposal]:
    """Segmentation regions at work_side, each scored by how much more salient it is than the photo and how far its
    colour is from the ring around it; regions hugging the border (background) are left out."""
    from scipy.ndimage import find_objects
    from skimage.segmentation import felzenszwalb

    h, w = image.shape[:2]
    small, s = fit_long_side(image, cfg.work_side)
    sh, sw = small.shape[:2]
    if cfg.segmentation == "regions":
        from operators.models.regions import object_regions

        labels = object_regions(small)
    else:
        labels = felzenszwalb(small, scale=cfg.fz_scale, sigma=0.8, min_size=cfg.fz_min_size)
    sal = saliency_map(small)
    lab = cv2.cvtColor(small, cv2.COLOR_RGB2LAB).astype(np.float32)
    n = int(labels.max()) + 1
    flat = labels.ravel()
    areas = np.bincount(flat, minlength=n).astype(np.float64)
    region_sal = np.bincount(flat, weights=sal.ravel(), minlength=n) / np.maximum(areas, 1)
    mean_sal = float(sal.mean()) + 1e-6
    border = np.zeros(labels.shape, bool)
    border[0, :] = border[-1, :] = border[:, 0] = border[:, -1] = True
    border_counts = np.bincount(labels[border], minlength=n)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (7, 7))
    scored = []
    total = float(sh * sw)
    pad = 16  # the ring around a region lies within this many pixels of it
    for r, sl in enumerate(find_objects(labels + 1)):
        share = areas[r] / total
        if sl is None or not cfg.min_area <= share <= cfg.max_area:
            continue
        y0, y1 = max(0, sl[0].start - pad), min(sh, sl[0].stop + pad)
        x0, x1 = max(0, sl[1].start - pad), min(sw, sl[1].stop + pad)
        m = (labels[y0:y1, x0:x1] == r).astype(np.uint8)
        m = cv2.morphologyEx(m, cv2.MORPH_CLOSE, kernel)
        contour_len = max(
            1.0, float(cv2.countNonZero(cv2.morphologyEx(m, cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8))))
        )
        if border_counts[r] / contour_len > cfg.max_border:
            continue
        ring = cv2.dilate(m, kernel, iterations=2) & (1 - m)
        if not ring.any():
            continue
        crop = lab[y0:y1, x0:x1]
        contrast = float(np.linalg.norm(crop[m > 0].mean(0) - crop[ring > 0].mean(0)))
        if contrast < cfg.min_contrast:
            continue
        ys, xs = np.nonzero(m)
        compact = len(xs) / float((np.ptp(xs) + 1) * (np.ptp(ys) + 1))
        score = (region_sal[r] / mean_sal) * (contrast / (contrast + 20.0)) * np.sqrt(compact)
        full_small = np.zeros((sh, sw), np.uint8)
        full_small[y0:y1, x0:x1] = m
        scored.append((score, r, full_small, contrast))
    scored.sort(key=lambda t: -t[0])
    out = []
    for score, r, m, contrast in scored[: cfg.max_objects]:
        full = cv2.resize(m * 255, (w, h), interpolation=cv2.INTER_NEAREST) if s < 1 else m * 255
        rgb = image[full > 0].mean(0)
        noun = f"{colour_word(rgb)} object"
        out.append(
            _from_mask(
                full.astype(np.uint8),
                image,
                noun,
                score,
                {"method": f"{cfg.segmentation}+spectral_residual", "contrast": round(contrast, 1)},
            )
        )
    return out


def subject(proposals: list[Proposal], min_area: float) -> Optional[Proposal]:
    """The photo's subject: the best proposal at least `min_area` large, else the best one."""
    return next((p for p in proposals if p.area >= min_area), proposals[0] if proposals else None)


def _grab_cut(rgb: np.ndarray, gc: np.ndarray, bgd: np.ndarray, fgd: np.ndarray, iterations: int) -> None:
    """cv2.grabCut, deterministic: its colour models start from k-means seeded by OpenCV's per-thread RNG, whose
    state depends on every earlier call in the worker, so the same photo got another matte (and its samples other
    keys) depending on which photos that worker had seen: a resumed run differed from an uninterrupted one."""
    cv2.setRNGSeed(0)
    cv2.grabCut(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), gc, None, bgd, fgd, iterations, cv2.GC_INIT_WITH_MASK)


def foreground_matte(
    image: np.ndarray, p: Optional[Proposal], iterations: int = 3, work_side: int = 256
) -> Optional[np.ndarray]:
    """A foreground matte (HxW uint8, 255 = foreground) grown from proposal `p` with OpenCV GrabCut at `work_side`:
    the proposal seeds sure foreground, its padded box bounds the rest. None when there is no proposal."""
    if p is None:
        return None
    h, w = image.shape[:2]
    small, s = fit_long_side(image, work_side)
    sh, sw = small.shape[:2]
    seed = cv2.resize(p.mask, (sw, sh), interpolation=cv2.INTER_NEAREST) if s < 1 else p.mask
    x0, y0, x1, y1 = [int(round(v * s)) for v in p.box]
    pad = int(0.15 * max(x1 - x0, y1 - y0)) + 2
    x0, y0, x1, y1 = max(0, x0 - pad), max(0, y0 - pad), min(sw, x1 + pad), min(sh, y1 + pad)
    gc = np.full((sh, sw), cv2.GC_BGD, np.uint8)
    gc[y0:y1, x0:x1] = cv2.GC_PR_BGD
    gc[cv2.dilate(seed, np.ones((3, 3), np.uint8)) > 0] = cv2.GC_PR_FGD
    gc[cv2.erode(seed, np.ones((3, 3), np.uint8)) > 0] = cv2.GC_FGD
    bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    try:
        _grab_cut(small, gc, bgd, fgd, iterations)
    except cv2.error:
        return p.mask.copy()
    matte = np.where((gc == cv2.GC_FGD) | (gc == cv2.GC_PR_FGD), 255, 0).astype(np.uint8)
    if s < 1:
        matte = cv2.resize(matte, (w, h), interpolation=cv2.INTER_LINEAR)
        matte = np.where(matte >= 128, 255, 0).astype(np.uint8)
    return matte if matte.any() else p.mask.copy()


def subject_matte(
    image: np.ndarray, margin: float = 0.08, iterations: int = 4, work_side: int = 200
) -> Optional[Proposal]:
    """The photo's main subject without any model: OpenCV GrabCut initialised with the frame `margin` as background
    and everything inside as probable foreground (photos centre their subject), its largest connected part kept.
    None when GrabCut keeps nothing."""
    h, w = image.shape[:2]
    small, s = fit_long_side(image, work_side)
    sh, sw = small.shape[:2]
    gc = np.full((sh, sw), cv2.GC_PR_FGD, np.uint8)
    mx, my = max(1, int(sw * margin)), max(1, int(sh * margin))
    gc[:my, :] = gc[sh - my :, :] = cv2.GC_BGD
    gc[:, :mx] = gc[:, sw - mx :] = cv2.GC_BGD
    bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    try:
        _grab_cut(small, gc, bgd, fgd, iterations)
    except cv2.error:
        return None
    m = ((gc == cv2.GC_FGD) | (gc == cv2.GC_PR_FGD)).astype(np.uint8)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(m)
    if n <= 1:
        return None
    m = (labels == 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))).astype(np.uint8)
    m = cv2.morphologyEx(m, cv2.MORPH_CLOSE, np.ones((5, 5), np.uint8))
    full = cv2.resize(m * 255, (w, h), interpolation=cv2.INTER_NEAREST) if s < 1 else m * 255
    return (
        _from_mask(full.astype(np.uint8), image, "main subject", 1.0, {"method": "grabcut_frame"})
        if full.any()
        else None
    )


class DetectorProposer:
    """Open-vocabulary detection through transformers (AutoModelForZeroShotObjectDetection: OWLv2, OWL-ViT, Grounding
    DINO), the boxes turned into masks by segment-anything's predictor when a SAM checkpoint is given."""

    def __init__(self, cfg: ProposalConfig, device: str):
        self.cfg, self.device = cfg, device
        self.processor = self.model = self.sam = None

    def setup(self) -> None:
        if self.model is not None:
            return
        from transformers import AutoModelForZeroShotObjectDetection, AutoProcessor

        self.processor = AutoProcessor.from_pretrained(self.cfg.detector)
        self.model = AutoModelForZeroShotObjectDetection.from_pretrained(self.cfg.detector).eval().to(self.device)
        if self.cfg.sam_checkpoint:
            from segment_anything import SamPredictor

            from operators.models.sam import load_sam

            self.sam = SamPredictor(load_sam(self.cfg.sam_checkpoint, self.device))

    def _detect(self, image: np.ndarray, labels: list[str]) -> list[tuple[list[float], float, str]]:
        import torch
        from PIL import Image

        pil = Image.fromarray(image)
        grounding = "grounding" in type(self.model).__name__.lower()
        text = ". ".join(labels) + "." if grounding else [labels]
        inputs = self.processor(images=pil, text=text, return_tensors="pt").to(self.device)
        with torch.no_grad():
            out = self.model(**inputs)
        size = [(image.shape[0], image.shape[1])]
        if "owlv2" in type(self.model).__name__.lower():
            size = [(max(size[0]), max(size[0]))]  # OWLv2 pads the photo to a square at the bottom/right first
        if grounding:
            res = self.processor.post_process_grounded_object_detection(
                out,
                inputs.input_ids,
                threshold=self.cfg.box_threshold,
                text_threshold=self.cfg.box_threshold,
                target_sizes=size,
            )[0]
            names = [str(t) for t in res.get("text_labels", res.get("labels"))]
        else:
            res = self.processor.post_process_grounded_object_detection(
                out, threshold=self.cfg.box_threshold, target_sizes=size, text_labels=[labels]
            )[0]
            names = [str(t) for t in res["text_labels"]]
        return [(b.tolist(), float(sc), n) for b, sc, n in zip(res["boxes"], res["scores"], names)]

    def propose(self, image: np.ndarray, caption: str) -> list[Proposal]:
        self.setup()
        labels = list(dict.fromkeys(caption_nouns(caption) + list(self.cfg.queries)))
        h, w = image.shape[:2]
        dets = sorted(self._detect(image, labels), key=lambda d: -d[1])
        if self.sam is not None and dets:
            self.sam.set_image(image)
        out: list[Proposal] = []
        for box, score, name in dets:
            x0, y0, x1, y1 = [int(round(v)) for v in box]
            x0, y0, x1, y1 = max(0, x0), max(0, y0), min(w, x1), min(h, y1)
            if x1 <= x0 or y1 <= y0:
                continue
            if self.sam is not None:
                masks, _, _ = self.sam.predict(box=np.array([x0, y0, x1, y1]), multimask_output=False)
                mask = masks[0].astype(np.uint8) * 255
            else:
                mask = np.zeros((h, w), np.uint8)
                mask[y0:y1, x0:x1] = 255
            share = float((mask > 0).mean())
            if not self.cfg.min_area <= share <= self.cfg.max_area or any(
                (mask > 0)[p.mask > 0].mean() > 0.5 for p in out
            ):
                continue
            out.append(
                _from_mask(
                    mask,
                    image,
                    name.strip() or "object",
                    score,
                    {"method": type(self.model).__name__ + ("+sam" if self.sam is not None else "+box")},
                )
            )
            if len(out) >= self.cfg.max_objects:
                break
        return out


class Proposer:
    """One front for both backends; the operators that edit objects hold one each."""

    def __init__(self, cfg: ProposalConfig, device: str = "cpu"):
        self.cfg = cfg
        self.detector = DetectorProposer(cfg, device) if cfg.backend == "model" else None

    def setup(self) -> None:
        if self.detector is not None:
            self.detector.setup()

    def describe(self) -> str:
        c = self.cfg
        if self.detector is not None:
            return (
                f"{c.detector} boxes{' + SAM ' + c.sam_checkpoint + ' masks' if c.sam_checkpoint else ' as masks'} "
                f"(model)"
            )
        regions = "Felzenszwalb regions" if c.segmentation == "felzenszwalb" else "merged SLIC object regions"
        return (
            f"{regions} scored by spectral-residual saliency and contrast (classical), areas {c.min_area}-{c.max_area}"
        )

    def propose(self, image: np.ndarray, caption: str = "") -> list[Proposal]:
        if self.detector is not None:
            return self.detector.propose(image, caption)
        return classical_proposals(image, self.cfg)
