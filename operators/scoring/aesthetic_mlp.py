"""The LAION improved-aesthetic predictor (christophschuhmann/improved-aesthetic-predictor): an MLP from an
L2-normalised CLIP image embedding (ViT-L/14: 768-d) to a 1-10 score. Layer names match its released state dict
(sac+logos+ava1-l14-linearMSE.pth: layers.0/2/4/6/7), so that file loads as is; the input width is read from it."""

from __future__ import annotations

from typing import Any


def build_mlp(input_size: int) -> Any:
    from torch import nn

    class AestheticMLP(nn.Module):
        def __init__(self, d: int):
            super().__init__()
            self.layers = nn.Sequential(
                nn.Linear(d, 1024),
                nn.Dropout(0.2),
                nn.Linear(1024, 128),
                nn.Dropout(0.2),
                nn.Linear(128, 64),
                nn.Dropout(0.1),
                nn.Linear(64, 16),
                nn.Linear(16, 1),
            )

        def forward(self, x):
            return self.layers(x)

    return AestheticMLP(input_size)


def load_aesthetic_mlp(path: str) -> Any:
    """The MLP with the checkpoint's weights, in eval mode (no pickled code: weights_only)."""
    from operators.models.checkpoints import load_state_dict

    sd = load_state_dict(path, "clip_scores.aesthetic_checkpoint")
    if "layers.0.weight" not in sd:
        raise ValueError(f"clip_scores.aesthetic_checkpoint={path!r}: not the LAION aesthetic MLP (no layers.0.weight)")
    mlp = build_mlp(int(sd["layers.0.weight"].shape[1]))
    mlp.load_state_dict(sd)
    return mlp.eval()
