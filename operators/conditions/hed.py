"""HED soft edges (Xie and Tu, 2015) in the Apache-2.0 re-implementation that ControlNet's scribble annotator uses
(ControlNetHED.pth): five VGG-like stages, one side output each, averaged and squashed. RGB input in 0..255."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import cv2
import numpy as np

from operators.models.checkpoints import load_state_dict

STAGE_WIDTHS = (64, 128, 256, 512, 512)
STAGE_LAYERS = (2, 2, 3, 3, 3)


@lru_cache(maxsize=None)
def _hed_class():
    """Defined on first use so that operator discovery on the driver does not import torch."""
    import torch
    import torch.nn.functional as F

    class DoubleConvBlock(torch.nn.Module):
        def __init__(self, cin: int, cout: int, layers: int):
            super().__init__()
            self.convs = torch.nn.Sequential(
                *[torch.nn.Conv2d(cin if i == 0 else cout, cout, 3, padding=1) for i in range(layers)]
            )
            self.projection = torch.nn.Conv2d(cout, 1, 1)

        def forward(self, x, down_sampling: bool = False):
            h = F.max_pool2d(x, 2, 2) if down_sampling else x
            for conv in self.convs:
                h = F.relu(conv(h))
            return h, self.projection(h)

    class HED(torch.nn.Module):
        """Parameter names match ControlNetHED.pth (norm, block1..block5)."""

        def __init__(self, widths=STAGE_WIDTHS, layers=STAGE_LAYERS):
            super().__init__()
            self.norm = torch.nn.Parameter(torch.zeros(1, 3, 1, 1))
            cin = 3
            for i, (w, n) in enumerate(zip(widths, layers)):
                setattr(self, f"block{i + 1}", DoubleConvBlock(cin, w, n))
                cin = w
            self.n_blocks = len(widths)

        def forward(self, x):
            h = x - self.norm
            sides = []
            for i in range(self.n_blocks):
                h, side = getattr(self, f"block{i + 1}")(h, down_sampling=i > 0)
                sides.append(side)
            return sides

    return HED


def build_hed(widths=STAGE_WIDTHS, layers=STAGE_LAYERS):
    return _hed_class()(tuple(widths), tuple(layers))


def architecture_of(state_dict: dict[str, Any]) -> dict[str, tuple[int, ...]]:
    """Stage widths and depths read off a checkpoint: the published model and a tiny test model share a loader."""
    widths, layers = [], []
    i = 1
    while f"block{i}.projection.weight" in state_dict:
        convs = sorted(
            int(k.split(".")[2]) for k in state_dict if k.startswith(f"block{i}.convs.") and k.endswith(".weight")
        )
        widths.append(int(state_dict[f"block{i}.convs.0.weight"].shape[0]))
        layers.append(len(convs))
        i += 1
    return {"widths": tuple(widths), "layers": tuple(layers)}


def load_hed(path: str, device: str):
    sd = load_state_dict(path, "HED")
    if "norm" not in sd or "block1.projection.weight" not in sd:
        raise ValueError(f"{path!r} is not a ControlNetHED checkpoint (no norm / block1.projection)")
    net = build_hed(**architecture_of(sd))
    net.load_state_dict(sd, strict=True)
    return net.float().eval().requires_grad_(False).to(device)


def soft_edges(net, images: list[np.ndarray], device: str) -> list[np.ndarray]:
    """RGB uint8 photos -> HxW uint8 edge probability maps at each photo's size (same-size photos share a batch)."""
    import torch

    out: list[np.ndarray | None] = [None] * len(images)
    groups: dict[tuple[int, ...], list[int]] = {}
    for i, im in enumerate(images):
        groups.setdefault(im.shape, []).append(i)
    with torch.inference_mode():
        for shape, idx in groups.items():
            h, w = shape[:2]
            x = torch.from_numpy(np.stack([images[i] for i in idx]).astype(np.float32)).permute(0, 3, 1, 2).to(device)
            sides = [s.float().cpu().numpy()[:, 0] for s in net(x)]
            for j, i in enumerate(idx):
                stack = np.stack([cv2.resize(s[j], (w, h), interpolation=cv2.INTER_LINEAR) for s in sides], axis=2)
                edge = 1.0 / (1.0 + np.exp(-stack.mean(axis=2)))
                out[i] = np.clip(edge * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return out  # type: ignore[return-value]
