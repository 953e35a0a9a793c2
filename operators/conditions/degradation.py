"""Degradation condition: Real-ESRGAN's second-order degradation (blur, resize, noise, JPEG, twice, then sinc and
JPEG in either order) in OpenCV/numpy with its published ranges; the output keeps the photo's size so the pair aligns.
Analysis = degrade the photo; generation = restore it. Every drawn parameter goes into provenance."""

from __future__ import annotations

import math
from typing import Any, ClassVar

import cv2
import numpy as np
from pydantic import Field, model_validator

from operators.conditions.base import ConditionConfig, ConditionOperator
from operators.conditions.blur_kernels import KERNEL_TYPES, random_mixed_kernel, sinc_kernel

Range = tuple[float, float]
RESIZE_MODES = {"area": cv2.INTER_AREA, "bilinear": cv2.INTER_LINEAR, "bicubic": cv2.INTER_CUBIC}
UPDOWN = ("up", "down", "keep")


class DegradationConfig(ConditionConfig):
    """Defaults are Real-ESRGAN's train_realesrgan_x4plus.yml (the ranges in BRIEF.md)."""

    kernel_size_range: tuple[int, int] = Field((7, 21), description="odd blur kernel sizes drawn from this range")
    kernel_prob: list[float] = Field(
        [0.45, 0.25, 0.12, 0.03, 0.12, 0.03], description=f"probabilities of {', '.join(KERNEL_TYPES)}"
    )
    # stage 1
    sinc_prob: float = Field(0.1, ge=0, le=1)
    blur_sigma: Range = (0.2, 3.0)
    betag_range: Range = (0.5, 4.0)
    betap_range: Range = (1.0, 2.0)
    resize_prob: tuple[float, float, float] = Field((0.2, 0.7, 0.1), description="up, down, keep")
    resize_range: Range = (0.15, 1.5)
    gaussian_noise_prob: float = Field(0.5, ge=0, le=1, description="else Poisson noise")
    noise_range: Range = Field((1.0, 30.0), description="Gaussian sigma on the 0-255 scale")
    poisson_scale_range: Range = (0.05, 3.0)
    gray_noise_prob: float = Field(0.4, ge=0, le=1)
    jpeg_range: Range = (30.0, 95.0)
    # stage 2
    second_blur_prob: float = Field(0.8, ge=0, le=1)
    sinc_prob2: float = Field(0.1, ge=0, le=1)
    blur_sigma2: Range = (0.2, 1.5)
    betag_range2: Range = (0.5, 4.0)
    betap_range2: Range = (1.0, 2.0)
    resize_prob2: tuple[float, float, float] = Field((0.3, 0.4, 0.3), description="up, down, keep")
    resize_range2: Range = Field((0.3, 1.2), description="relative to the original size")
    gaussian_noise_prob2: float = Field(0.5, ge=0, le=1)
    noise_range2: Range = (1.0, 25.0)
    poisson_scale_range2: Range = (0.05, 2.5)
    gray_noise_prob2: float = Field(0.4, ge=0, le=1)
    jpeg_range2: Range = (30.0, 95.0)
    final_sinc_prob: float = Field(0.8, ge=0, le=1)

    @model_validator(mode="after")
    def _check(self):
        lo, hi = self.kernel_size_range
        if not (3 <= lo <= hi and lo % 2 == 1 and hi % 2 == 1):
            raise ValueError(
                f"kernel_size_range must be odd (min, max) with 3 <= min <= max, got {self.kernel_size_range}"
            )
        if len(self.kernel_prob) != len(KERNEL_TYPES) or sum(self.kernel_prob) <= 0 or min(self.kernel_prob) < 0:
            raise ValueError(f"kernel_prob needs {len(KERNEL_TYPES)} non-negative weights ({', '.join(KERNEL_TYPES)})")
        for name, value in self:
            if (
                name.endswith(("_range", "_sigma", "_sigma2", "_range2"))
                and isinstance(value, tuple)
                and value[0] > value[1]
            ):
                raise ValueError(f"{name} must be (min, max) with min <= max, got {value}")
        for name in ("resize_prob", "resize_prob2"):
            if sum(getattr(self, name)) <= 0:
                raise ValueError(f"{name} needs a positive weight")
        return self


def _r(x: float) -> float:
    return round(float(x), 4)


def blur(img: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Correlate an HxWx3 float image with a kernel, reflect-101 borders (as basicsr's filter2D). Large kernels go
    through an FFT (OpenCV's direct 21x21 path costs about 100 ms at 512px, this about 15 ms), with scipy.fft
    itself: scipy.signal.fftconvolve computes the same but its import costs each worker a second."""
    k = kernel.astype(np.float32)
    if k.shape[0] <= 11:
        return cv2.filter2D(img, -1, k, borderType=cv2.BORDER_REFLECT_101)
    import scipy.fft as sfft  # loaded anyway by scikit-image's segmentation (a few ms on its own)

    kh, kw = k.shape
    padded = cv2.copyMakeBorder(img, kh // 2, kh // 2, kw // 2, kw // 2, cv2.BORDER_REFLECT_101)
    h, w = padded.shape[:2]
    shape = (sfft.next_fast_len(h, True), sfft.next_fast_len(w, True))
    spectrum = sfft.rfft2(padded, s=shape, axes=(0, 1)) * sfft.rfft2(k[::-1, ::-1], s=shape)[..., None]
    full = sfft.irfft2(spectrum, s=shape, axes=(0, 1))
    return np.ascontiguousarray(full[kh - 1 : h, kw - 1 : w], dtype=np.float32)


class Degrader:
    """One image through the pipeline, every random choice drawn from `rng` and written to `params`."""

    def __init__(self, c: DegradationConfig, rng: np.random.Generator):
        self.c, self.rng = c, rng
        self.sizes = list(range(c.kernel_size_range[0], c.kernel_size_range[1] + 1, 2))

    def kernel(self, sinc_prob: float, sigma: Range, betag: Range, betap: Range) -> tuple[np.ndarray, dict[str, Any]]:
        size = int(self.rng.choice(self.sizes))
        if self.rng.uniform() < sinc_prob:
            # small kernels cannot hold a low cutoff's ringing, so Real-ESRGAN keeps their cutoff above pi/3
            omega = float(self.rng.uniform(math.pi / 3 if size < 13 else math.pi / 5, math.pi))
            return sinc_kernel(omega, size), {"type": "sinc", "size": size, "omega_c": _r(omega)}
        k, p = random_mixed_kernel(self.rng, size, tuple(self.c.kernel_prob), sigma, betag, betap)
        return k, {key: (_r(v) if isinstance(v, float) else v) for key, v in p.items()}

    def resize(
        self, img: np.ndarray, probs, scale_range: Range, base: tuple[int, int]
    ) -> tuple[np.ndarray, dict[str, Any]]:
        updown = UPDOWN[int(self.rng.choice(3, p=np.asarray(probs) / np.sum(probs)))]
        if updown == "up":
            scale = float(self.rng.uniform(1.0, scale_range[1]))
        elif updown == "down":
            scale = float(self.rng.uniform(scale_range[0], 1.0))
        else:
            scale = 1.0
        mode = list(RESIZE_MODES)[int(self.rng.integers(len(RESIZE_MODES)))]
        w, h = max(1, int(base[0] * scale)), max(1, int(base[1] * scale))
        return cv2.resize(img, (w, h), interpolation=RESIZE_MODES[mode]), {
            "updown": updown,
            "scale": _r(scale),
            "mode": mode,
        }

    def noise(self, img: np.ndarray, gaussian_prob: float, sigma_range: Range, poisson_range: Range, gray_prob: float):
        gray = bool(self.rng.uniform() < gray_prob)
        h, w = img.shape[:2]
        if self.rng.uniform() < gaussian_prob:
            sigma = float(self.rng.uniform(*sigma_range))
            shape = (h, w, 1) if gray else (h, w, 3)
            n = self.rng.standard_normal(shape, dtype=np.float32) * np.float32(sigma / 255.0)
            params = {"type": "gaussian", "sigma": _r(sigma), "gray": gray}
        else:
            scale = float(self.rng.uniform(*poisson_range))
            src = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)[..., None] if gray else img
            q = np.clip(np.round(src * 255.0), 0, 255).astype(np.uint8)
            # Poisson counts scale with the number of distinct levels, as in basicsr's generate_poisson_noise
            levels = 2 ** math.ceil(math.log2(max(2, int(np.count_nonzero(np.bincount(q.ravel(), minlength=256))))))
            base = q.astype(np.float32) / 255.0
            n = (self.rng.poisson(base * levels).astype(np.float32) / levels - base) * np.float32(scale)
            params = {"type": "poisson", "scale": _r(scale), "gray": gray}
        return np.clip(img + n, 0.0, 1.0), params

    def jpeg(self, img: np.ndarray, quality_range: Range) -> tuple[np.ndarray, int]:
        q = int(round(self.rng.uniform(*quality_range)))
        u8 = np.clip(img * 255.0 + 0.5, 0, 255).astype(np.uint8)
        ok, buf = cv2.imencode(".jpg", cv2.cvtColor(u8, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, q])
        if not ok:
            raise RuntimeError("OpenCV could not JPEG-encode the degraded image")
        out = cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
        return out.astype(np.float32) / 255.0, q

    def run(self, image: np.ndarray) -> tuple[np.ndarray, dict[str, Any]]:
        c = self.c
        h, w = image.shape[:2]
        img = image.astype(np.float32) / 255.0
        s1: dict[str, Any] = {}
        k, s1["kernel"] = self.kernel(c.sinc_prob, c.blur_sigma, c.betag_range, c.betap_range)
        img = blur(img, k)
        img, s1["resize"] = self.resize(img, c.resize_prob, c.resize_range, (img.shape[1], img.shape[0]))
        img, s1["noise"] = self.noise(
            img, c.gaussian_noise_prob, c.noise_range, c.poisson_scale_range, c.gray_noise_prob
        )
        img, s1["jpeg"] = self.jpeg(img, c.jpeg_range)

        s2: dict[str, Any] = {"blur": bool(self.rng.uniform() < c.second_blur_prob)}
        if s2["blur"]:
            k, s2["kernel"] = self.kernel(c.sinc_prob2, c.blur_sigma2, c.betag_range2, c.betap_range2)
            img = blur(img, k)
        img, s2["resize"] = self.resize(img, c.resize_prob2, c.resize_range2, (w, h))
        img, s2["noise"] = self.noise(
            img, c.gaussian_noise_prob2, c.noise_range2, c.poisson_scale_range2, c.gray_noise_prob2
        )

        final: dict[str, Any] = {"sinc": bool(self.rng.uniform() < c.final_sinc_prob)}
        sinc = None
        if final["sinc"]:
            size = int(self.rng.choice(self.sizes))
            omega = float(self.rng.uniform(math.pi / 3, math.pi))
            sinc = sinc_kernel(omega, size)
            final.update({"sinc_size": size, "omega_c": _r(omega)})
        final["order"] = "resize_sinc_jpeg" if self.rng.uniform() < 0.5 else "jpeg_resize_sinc"
        final["mode"] = list(RESIZE_MODES)[int(self.rng.integers(len(RESIZE_MODES)))]

        def back_and_sinc(x: np.ndarray) -> np.ndarray:
            x = cv2.resize(x, (w, h), interpolation=RESIZE_MODES[final["mode"]])
            return blur(x, sinc) if sinc is not None else x

        if final["order"] == "resize_sinc_jpeg":
            img, final["jpeg"] = self.jpeg(np.clip(back_and_sinc(img), 0, 1), c.jpeg_range2)
        else:
            img, final["jpeg"] = self.jpeg(np.clip(img, 0, 1), c.jpeg_range2)
            img = back_and_sinc(img)
        out = np.clip(np.round(img * 255.0), 0, 255).astype(np.uint8)
        return out, {"stage1": s1, "stage2": s2, "final": final}


class Degradation(ConditionOperator):
    name = "degradation"
    condition = "degradation"
    version = "1"
    Config: ClassVar[type[DegradationConfig]] = DegradationConfig

    def describe(self) -> str:
        return "degradation: Real-ESRGAN second-order blur/resize/noise/JPEG + sinc, OpenCV/numpy (classical)"

    def params(self):
        # every draw that shaped the image is recorded per sample; the ranges it was drawn from are recipe-level
        # (in the recipe fingerprint) and would only repeat ~1 KB of constants in every index row
        return {}

    def make_condition(self, image, rng):
        return Degrader(self.config, rng).run(image)
