"""Real-ESRGAN's random blur kernels in numpy (Wang et al., 2021; basicsr.data.degradations): isotropic and
anisotropic Gaussian, generalised Gaussian, plateau, and the circular sinc (ringing) kernel, drawn from a Generator."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

KERNEL_TYPES = ("iso", "aniso", "generalized_iso", "generalized_aniso", "plateau_iso", "plateau_aniso")


def _grid(size: int) -> np.ndarray:
    ax = np.arange(-size // 2 + 1.0, size // 2 + 1.0)
    xx, yy = np.meshgrid(ax, ax)
    return np.stack([xx, yy], axis=2)


def _quadratic_form(size: int, sig_x: float, sig_y: float, theta: float) -> np.ndarray:
    """x^T Sigma^-1 x on the kernel grid, Sigma rotated by theta."""
    rot = np.array([[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]])
    cov = rot @ np.diag([sig_x**2, sig_y**2]) @ rot.T
    grid = _grid(size)
    return np.sum((grid @ np.linalg.inv(cov)) * grid, axis=2)


def anisotropic_kernel(kind: str, size: int, sig_x: float, sig_y: float, theta: float, beta: float = 1.0) -> np.ndarray:
    q = _quadratic_form(size, sig_x, sig_y, theta)
    if kind.startswith("generalized"):
        k = np.exp(-0.5 * np.power(q, beta))
    elif kind.startswith("plateau"):
        k = 1.0 / (np.power(q, beta) + 1.0)
    else:
        k = np.exp(-0.5 * q)
    return k / k.sum()


def sinc_kernel(cutoff: float, size: int) -> np.ndarray:
    """Circular low-pass (2D sinc) kernel: cutoff in radians, as in Real-ESRGAN's ringing/overshoot simulation."""
    c = (size - 1) / 2
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    r = np.sqrt((xx - c) ** 2 + (yy - c) ** 2)
    with np.errstate(divide="ignore", invalid="ignore"):
        from scipy import special  # here, not at import: scipy.special alone takes a quarter second to import

        k = cutoff * special.j1(cutoff * r) / (2 * np.pi * r)
    k[int(c), int(c)] = cutoff**2 / (4 * np.pi)
    return k / k.sum()


def _beta(rng: np.random.Generator, beta_range: tuple[float, float]) -> float:
    # Real-ESRGAN draws beta below or above 1 with equal odds, so both heavy and light tails occur
    if rng.uniform() < 0.5:
        return float(rng.uniform(beta_range[0], 1.0))
    return float(rng.uniform(1.0, beta_range[1]))


def random_mixed_kernel(
    rng: np.random.Generator,
    size: int,
    kernel_prob: tuple[float, ...],
    sigma_range: tuple[float, float],
    betag_range: tuple[float, float],
    betap_range: tuple[float, float],
) -> tuple[np.ndarray, dict[str, Any]]:
    kind = KERNEL_TYPES[int(rng.choice(len(KERNEL_TYPES), p=np.asarray(kernel_prob) / np.sum(kernel_prob)))]
    sig_x = float(rng.uniform(*sigma_range))
    if kind.endswith("iso") and not kind.endswith("aniso"):
        sig_y, theta = sig_x, 0.0
    else:
        sig_y = float(rng.uniform(*sigma_range))
        theta = float(rng.uniform(-math.pi, math.pi))
    beta = 1.0
    if kind.startswith("generalized"):
        beta = _beta(rng, betag_range)
    elif kind.startswith("plateau"):
        beta = _beta(rng, betap_range)
    params = {"type": kind, "size": size, "sigma_x": sig_x, "sigma_y": sig_y, "theta": theta, "beta": beta}
    return anisotropic_kernel(kind, size, sig_x, sig_y, theta, beta), params
