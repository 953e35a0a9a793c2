"""Pixel-level scores of an edit: L1 and SSIM between the turn's input and its target, over the whole image and
inside / outside the input's edit mask (MagicBrush's L1, SSIM as Wang et al. 2004), plus the mask's area. The change
inside and outside is what the quality filter's edit checks read (no_change, outside_change)."""

from __future__ import annotations

from typing import ClassVar, Optional

import cv2
import numpy as np
from pydantic import Field

from datagen import placement
from datagen.operator import Resources
from datagen.placement import Batching
from datagen.worker_cache import ItemCache
from operators.scoring.base import Scorer, ScorerConfig, TurnView

# Wang et al.'s constants for 8-bit images; the Gaussian window of their reference code (11x11, sigma 1.5)
C1 = (0.01 * 255) ** 2
C2 = (0.03 * 255) ** 2


class PixelScoresConfig(ScorerConfig, Batching):
    max_side: int = Field(
        512, ge=16, description="both images are compared at this long side at most (the target's size otherwise)"
    )
    sigma: float = Field(1.5, gt=0, description="SSIM Gaussian window sigma (Wang et al.: 1.5, an 11x11 window)")
    batch_size: int = Field(64, ge=1)


def luma(image: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32)


def _window(sigma: float) -> int:
    return int(2 * round(3.5 * sigma) + 1)  # 11 for sigma 1.5, as skimage's gaussian_weights window


def _blur(x: np.ndarray, sigma: float) -> np.ndarray:
    k = _window(sigma)
    return cv2.GaussianBlur(x, (k, k), sigma, borderType=cv2.BORDER_REFLECT)


class _Stats:
    """What SSIM needs of one image on its own: its luma, local mean, squared local mean and local variance (and the
    image), computed once however many pairs the image is in."""

    def __init__(self, gray: np.ndarray, sigma: float, image: Optional[np.ndarray] = None):
        self.image, self.luma = image, gray
        self.mu = _blur(gray, sigma)
        self.mu2 = self.mu * self.mu
        self.var = _blur(gray * gray, sigma)
        self.var -= self.mu2
        self.source: Optional[np.ndarray] = None  # the array these were computed from, before resizing

    @classmethod
    def of(cls, image: np.ndarray, sigma: float) -> "_Stats":
        return cls(luma(image), sigma, image)


def _ssim_from(a: _Stats, b: _Stats, sigma: float) -> np.ndarray:
    """Wang et al.'s SSIM map from both images' statistics and their local covariance (in place where it can)."""
    mu_ab = a.mu * b.mu
    cov = _blur(a.luma * b.luma, sigma)
    cov -= mu_ab
    num = mu_ab
    num *= 2
    num += C1
    cov *= 2
    cov += C2
    num *= cov
    den = a.mu2 + b.mu2
    den += C1
    var = a.var + b.var
    var += C2
    den *= var
    num /= den
    return num


def ssim_map(a: np.ndarray, b: np.ndarray, sigma: float = 1.5) -> np.ndarray:
    """Per-pixel SSIM of two float32 gray images (0-255), Gaussian-weighted local statistics, population covariance."""
    return _ssim_from(_Stats(a, sigma), _Stats(b, sigma), sigma)


def _fit(image: np.ndarray, size: tuple[int, int], nearest: bool = False) -> np.ndarray:
    if image.shape[1] == size[0] and image.shape[0] == size[1]:
        return image
    return cv2.resize(image, size, interpolation=cv2.INTER_NEAREST if nearest else cv2.INTER_AREA)


class _StatsMemo:
    """Per-image statistics at a given size, by array identity, for the scores of one partition: a photo is the input or
    the target of many samples (each condition both ways, its edits), and its statistics are the same each time.
    It also keeps each pair's SSIM map and absolute difference: both are symmetric (bit for bit: the arithmetic only
    swaps operands of + and *), so a condition's two directions, map -> photo and photo -> map, share them."""

    def __init__(self, sigma: float, size: int = 64):
        self.sigma = sigma
        self._stats = ItemCache(size)  # each bounded, least recently used out first
        self._pairs = ItemCache(size)

    def get(self, image: np.ndarray, size: tuple[int, int]) -> _Stats:
        def make() -> _Stats:
            st = _Stats.of(_fit(image, size), self.sigma)
            st.source = image  # holds the array: its id is not reused while the entry lives
            return st

        return self._stats.get((id(image), image.shape, size), make)

    def pair(self, a: _Stats, b: _Stats) -> tuple[np.ndarray, np.ndarray]:
        """(SSIM map, uint8 absolute difference) of two images' statistics, in either order."""
        # the entry holds both statistics: their ids are not reused while it lives
        got = self._pairs.get(
            (min(id(a), id(b)), max(id(a), id(b))),
            lambda: (_ssim_from(a, b, self.sigma), cv2.absdiff(a.image, b.image), a, b),
        )
        return got[0], got[1]


def pixel_scores(
    inp: np.ndarray,
    target: np.ndarray,
    mask: Optional[np.ndarray],
    max_side: int = 512,
    sigma: float = 1.5,
    memo: Optional[_StatsMemo] = None,
) -> dict[str, float]:
    """Scores of one input/target pair (HxWx3 uint8 RGB; mask HxW uint8 of the input, 255 = edit). A shared `memo`
    brings its own SSIM sigma."""
    memo = memo or _StatsMemo(sigma)
    h, w = target.shape[:2]
    s = min(1.0, max_side / max(h, w))
    size = (max(1, round(w * s)), max(1, round(h * s)))
    t, i = memo.get(target, size), memo.get(inp, size)
    # smap: SSIM per pixel; diff: uint8, which cv2.mean averages per channel, under a mask where given
    smap, diff = memo.pair(i, t)

    def l1(region: Optional[np.ndarray] = None) -> float:
        return float(np.mean(cv2.mean(diff, mask=region)[:3])) / 255.0

    out = {"pixel_l1": l1(), "pixel_ssim": float(smap.mean())}
    if mask is not None:
        inside = (_fit(mask, size, nearest=True) > 127).astype(np.uint8)
        n_in = int(cv2.countNonZero(inside))
        out["mask_area"] = n_in / inside.size
        outside = 1 - inside
        if n_in < inside.size:
            out["pixel_l1_outside"] = l1(outside)
            # SSIM at a pixel sees its whole window: outside, only the pixels whose window stays clear of the mask, or
            # the edit inside bleeds into the outside's score (an inpainting that kept every outside pixel scored
            # 0.91 at 512px and less on smaller images)
            k = _window(memo.sigma)
            clear = cv2.erode(outside, np.ones((k, k), np.uint8), borderType=cv2.BORDER_CONSTANT, borderValue=1)
            if cv2.countNonZero(clear):
                out["pixel_ssim_outside"] = float(cv2.mean(smap, mask=clear)[0])
        if n_in:
            out["pixel_l1_inside"] = l1(inside)
            out["pixel_ssim_inside"] = float(cv2.mean(smap, mask=inside)[0])
    return out


class PixelScores(Scorer):
    name = "pixel_scores"
    makes = ("pixel_l1", "pixel_l1_inside", "pixel_l1_outside", "pixel_ssim", "pixel_ssim_inside")
    makes += ("pixel_ssim_outside", "mask_area")
    version = "1"
    Config: ClassVar[type[PixelScoresConfig]] = PixelScoresConfig

    def resources(self) -> Resources:
        return placement.resources(self.config)

    def describe(self) -> str:
        return (
            f"pixel_scores: L1 and SSIM (Gaussian sigma {self.config.sigma}) of input vs target, inside/outside "
            f"the mask, at <= {self.config.max_side}px"
        )

    def skip_reason(self, v: TurnView) -> Optional[str]:
        return "no input image" if v.input is None else None

    def score(self, views: list[TurnView]) -> list[dict[str, float]]:
        c = self.config
        # a photo shared by many samples, in every chunk of the partition: its statistics once per partition
        memo = (
            _StatsMemo(c.sigma)
            if self.partition_memo is None
            else self.partition_memo.setdefault("stats", _StatsMemo(c.sigma))
        )
        return [pixel_scores(v.input.image, v.target.image, v.mask, c.max_side, c.sigma, memo) for v in views]
