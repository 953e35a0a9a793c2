"""The informative-drawings line generator (Chan et al., CVPR 2022): a ResNet generator with 3 residual blocks and a
1-channel sigmoid output, run at 256px; contour_style and anime_style checkpoints load into it unchanged."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import cv2
import numpy as np

from operators.models.checkpoints import load_state_dict

MODEL_SIDE = 256  # the published models were trained and are run with the shorter side at 256


@lru_cache(maxsize=None)
def _generator_class():
    """The torch module, defined on first use: importing this file (operator discovery on the driver) must not
    pay for importing torch."""
    import torch.nn as nn

    class ResidualBlock(nn.Module):
        def __init__(self, features: int):
            super().__init__()
            self.conv_block = nn.Sequential(
                nn.ReflectionPad2d(1),
                nn.Conv2d(features, features, 3),
                nn.InstanceNorm2d(features),
                nn.ReLU(inplace=True),
                nn.ReflectionPad2d(1),
                nn.Conv2d(features, features, 3),
                nn.InstanceNorm2d(features),
            )

        def forward(self, x):
            return x + self.conv_block(x)

    class Generator(nn.Module):
        """Parameter names match the published checkpoints (model0..model4); `ngf` is 64 there."""

        def __init__(self, input_nc: int = 3, output_nc: int = 1, n_residual_blocks: int = 3, ngf: int = 64):
            super().__init__()
            self.model0 = nn.Sequential(
                nn.ReflectionPad2d(3), nn.Conv2d(input_nc, ngf, 7), nn.InstanceNorm2d(ngf), nn.ReLU(inplace=True)
            )
            down, f = [], ngf
            for _ in range(2):
                down += [nn.Conv2d(f, f * 2, 3, stride=2, padding=1), nn.InstanceNorm2d(f * 2), nn.ReLU(inplace=True)]
                f *= 2
            self.model1 = nn.Sequential(*down)
            self.model2 = nn.Sequential(*[ResidualBlock(f) for _ in range(n_residual_blocks)])
            up = []
            for _ in range(2):
                up += [
                    nn.ConvTranspose2d(f, f // 2, 3, stride=2, padding=1, output_padding=1),
                    nn.InstanceNorm2d(f // 2),
                    nn.ReLU(inplace=True),
                ]
                f //= 2
            self.model3 = nn.Sequential(*up)
            self.model4 = nn.Sequential(nn.ReflectionPad2d(3), nn.Conv2d(ngf, output_nc, 7), nn.Sigmoid())

        def forward(self, x):
            return self.model4(self.model3(self.model2(self.model1(self.model0(x)))))

    return Generator


def build_generator(input_nc: int = 3, output_nc: int = 1, n_residual_blocks: int = 3, ngf: int = 64):
    return _generator_class()(input_nc, output_nc, n_residual_blocks, ngf)


def architecture_of(state_dict: dict[str, Any]) -> dict[str, int]:
    """Generator sizes read off a checkpoint, so the published 64-wide model and a tiny test model share a loader."""
    first = state_dict["model0.1.weight"]
    blocks = {k.split(".")[1] for k in state_dict if k.startswith("model2.")}
    return {
        "input_nc": int(first.shape[1]),
        "output_nc": int(state_dict["model4.1.weight"].shape[0]),
        "n_residual_blocks": len(blocks),
        "ngf": int(first.shape[0]),
    }


def load_generator(path: str, device: str):
    sd = load_state_dict(path, "informative-drawings")
    if "model0.1.weight" not in sd:
        raise ValueError(f"{path!r} is not an informative-drawings generator checkpoint (no model0.1.weight)")
    arch = architecture_of(sd)
    if arch["output_nc"] != 1 or arch["input_nc"] != 3:
        raise ValueError(f"{path!r}: expected a 3-channel in, 1-channel out generator, got {arch}")
    net = build_generator(**arch)
    net.load_state_dict(sd, strict=True)
    return net.eval().requires_grad_(False).to(device), arch


def model_size(h: int, w: int, side: int = MODEL_SIDE) -> tuple[int, int]:
    """(width, height) with the shorter side at `side`, multiples of 4 so the two stride-2 stages round-trip."""
    s = side / min(h, w)
    return max(4, int(round(w * s / 4)) * 4), max(4, int(round(h * s / 4)) * 4)


def draw_lines(net, images: list[np.ndarray], device: str, side: int = MODEL_SIDE) -> list[np.ndarray]:
    """RGB uint8 photos -> HxW uint8 drawings (dark lines on white), each at its photo's size. Photos that resize to
    the same shape run as one batch."""
    import torch

    out: list[np.ndarray | None] = [None] * len(images)
    groups: dict[tuple[int, int], list[int]] = {}
    for i, im in enumerate(images):
        groups.setdefault(model_size(*im.shape[:2], side), []).append(i)
    with torch.inference_mode():
        for (w, h), idx in groups.items():
            x = (
                np.stack([cv2.resize(images[i], (w, h), interpolation=cv2.INTER_CUBIC) for i in idx]).astype(np.float32)
                / 255.0
            )
            y = net(torch.from_numpy(x).permute(0, 3, 1, 2).to(device)).float().cpu().numpy()[:, 0]
            for j, i in enumerate(idx):
                ih, iw = images[i].shape[:2]
                line = cv2.resize(y[j], (iw, ih), interpolation=cv2.INTER_LINEAR)
                out[i] = np.clip(line * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return out  # type: ignore[return-value]
