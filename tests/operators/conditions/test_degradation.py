"""Degradation condition: Real-ESRGAN's second-order pipeline stays inside the ranges of BRIEF.md, keeps the photo's
size, records every draw, and repeats exactly for a seed."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from datagen.batch import SourceImage, WorkBatch
from operators.conditions.blur_kernels import KERNEL_TYPES, anisotropic_kernel, random_mixed_kernel, sinc_kernel
from operators.conditions.degradation import Degradation, DegradationConfig, Degrader, blur
from tests.conftest import load_photo

ODD_SIZES = set(range(7, 22, 2))


def _check_kernel(k, sigma_range):
    assert k["size"] in ODD_SIZES
    if k["type"] == "sinc":
        lo = math.pi / 3 if k["size"] < 13 else math.pi / 5
        assert lo - 1e-3 <= k["omega_c"] <= math.pi + 1e-3
        return
    assert k["type"] in KERNEL_TYPES
    assert sigma_range[0] - 1e-3 <= k["sigma_x"] <= sigma_range[1] + 1e-3
    assert sigma_range[0] - 1e-3 <= k["sigma_y"] <= sigma_range[1] + 1e-3
    if k["type"].startswith("generalized"):
        assert 0.5 - 1e-3 <= k["beta"] <= 4 + 1e-3
    if k["type"].startswith("plateau"):
        assert 1 - 1e-3 <= k["beta"] <= 2 + 1e-3


def _check_noise(n, sigma_range, poisson_range):
    if n["type"] == "gaussian":
        assert sigma_range[0] <= n["sigma"] <= sigma_range[1]
    else:
        assert n["type"] == "poisson" and poisson_range[0] <= n["scale"] <= poisson_range[1]


def test_parameters_stay_in_brief_ranges():
    photo = load_photo("coffee.png", 64)
    cfg = DegradationConfig()
    seen = {"updown": set(), "noise": set(), "order": set(), "kernel": set(), "gray": set()}
    for seed in range(150):
        out, p = Degrader(cfg, np.random.default_rng(seed)).run(photo)
        assert out.shape == photo.shape and out.dtype == np.uint8
        s1, s2, f = p["stage1"], p["stage2"], p["final"]
        # stage 1: kernel 7-21, sigma 0.2-3; resize 0.15-1.5; Gaussian 1-30 or Poisson 0.05-3; JPEG 30-95
        _check_kernel(s1["kernel"], (0.2, 3.0))
        r = s1["resize"]
        assert 0.15 <= r["scale"] <= 1.5 and r["mode"] in ("area", "bilinear", "bicubic")
        assert (r["updown"], r["scale"] > 1) != ("down", True) and (r["updown"] != "keep" or r["scale"] == 1)
        _check_noise(s1["noise"], (1, 30), (0.05, 3))
        assert 30 <= s1["jpeg"] <= 95
        # stage 2: blur p=0.8 with sigma 0.2-1.5; resize 0.3-1.2; Gaussian 1-25 or Poisson 0.05-2.5
        if s2["blur"]:
            _check_kernel(s2["kernel"], (0.2, 1.5))
        assert 0.3 <= s2["resize"]["scale"] <= 1.2
        _check_noise(s2["noise"], (1, 25), (0.05, 2.5))
        # final: sinc (cutoff pi/3..pi) and JPEG 30-95 in either order
        assert f["order"] in ("resize_sinc_jpeg", "jpeg_resize_sinc") and 30 <= f["jpeg"] <= 95
        if f["sinc"]:
            assert f["sinc_size"] in ODD_SIZES and math.pi / 3 - 1e-3 <= f["omega_c"] <= math.pi + 1e-3
        seen["updown"].add(r["updown"])
        seen["noise"].add(s1["noise"]["type"])
        seen["order"].add(f["order"])
        seen["kernel"].add(s1["kernel"]["type"])
        seen["gray"].add(s1["noise"]["gray"])
    # every branch of the pipeline is actually taken
    assert seen["updown"] == {"up", "down", "keep"} and seen["noise"] == {"gaussian", "poisson"}
    assert seen["order"] == {"resize_sinc_jpeg", "jpeg_resize_sinc"} and seen["gray"] == {True, False}
    assert {"iso", "aniso", "sinc"} <= seen["kernel"]


def test_operator_records_draws_and_is_deterministic():
    photos = [load_photo("astronaut.png", 96), load_photo("rocket.jpg", 96)]
    batches = [
        Degradation()(
            WorkBatch(
                "img-00000", {}, 5, "r", items=[SourceImage(f"u{i}", f"id{i}", im) for i, im in enumerate(photos)]
            )
        )
        for _ in range(2)
    ]
    a, b = batches
    assert [s.task for s in a.samples] == ["Image Degradation", "Image Restoration"] * 2
    for s, t in zip(a.samples, b.samples):
        assert s.key == t.key and np.array_equal(s.current.target.image, t.current.target.image)
        assert {"stage1", "stage2", "final"} <= set(s.provenance.params)
    degraded, photo = a.samples[0].current.target.image, photos[0]
    assert degraded.shape == photo.shape and not np.array_equal(degraded, photo)
    restore = a.samples[1].current
    assert np.array_equal(restore.inputs[0].image, degraded) and np.array_equal(restore.target.image, photo)


def test_kernels_are_normalised_and_symmetric():
    rng = np.random.default_rng(0)
    for _ in range(20):
        k, p = random_mixed_kernel(rng, 21, (1, 1, 1, 1, 1, 1), (0.2, 3.0), (0.5, 4.0), (1.0, 2.0))
        assert k.shape == (21, 21) and abs(k.sum() - 1) < 1e-6
        assert np.allclose(k, k[::-1, ::-1])  # point symmetric, so correlation == convolution
    iso = anisotropic_kernel("iso", 9, 1.5, 1.5, 0.0)
    ref = cv2.getGaussianKernel(9, 1.5)
    assert np.allclose(iso, ref @ ref.T / (ref @ ref.T).sum(), atol=1e-6)
    s = sinc_kernel(math.pi / 2, 15)
    assert abs(s.sum() - 1) < 1e-6 and np.allclose(s, s.T) and s[7, 7] == s.max()


@pytest.mark.parametrize("size", [7, 15, 21])
def test_blur_matches_opencv_correlation(size):
    img = np.random.default_rng(1).random((40, 50, 3), dtype=np.float32)
    k = np.random.default_rng(2).random((size, size))
    k /= k.sum()
    ref = cv2.filter2D(img, -1, k.astype(np.float32), borderType=cv2.BORDER_REFLECT_101)
    assert np.abs(blur(img, k) - ref).max() < 1e-5


def test_tiny_images_survive_strong_downscaling():
    photo = load_photo("coins.png", 24)
    cfg = DegradationConfig(resize_prob=(0, 1, 0), resize_prob2=(0, 1, 0))
    scales = []
    for seed in range(20):
        out, p = Degrader(cfg, np.random.default_rng(seed)).run(photo)
        assert out.shape == photo.shape
        scales.append(p["stage1"]["resize"]["scale"])
    assert min(scales) < 0.3  # a few pixels wide in between, and still back to full size


def test_config_rejects_even_kernel_sizes():
    with pytest.raises(ValueError, match="kernel_size_range"):
        DegradationConfig(kernel_size_range=(6, 21))
