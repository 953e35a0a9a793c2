"""Tiny models of the real architectures the scorers load, random weights, saved the way published checkpoints are:
an open_clip CLIP (local-dir: snapshot layout), the LAION aesthetic MLP, and a transformers DINOv2 with its image
processor. Tests and `datagen rehearse` build them."""

from __future__ import annotations

from pathlib import Path


def build_tiny_clip(out: Path) -> str:
    """A tiny CLIP of open_clip's own architecture (ViT image tower, causal text transformer, CLIP's BPE tokenizer
    that ships with open_clip), saved as local-dir: (open_clip_config.json + safetensors) like a hub snapshot."""
    import json

    import open_clip
    import torch
    from safetensors.torch import save_file

    cfg = {
        "embed_dim": 32,
        "vision_cfg": {"image_size": 64, "layers": 1, "width": 32, "patch_size": 16, "head_width": 16},
        "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
    }
    out.mkdir(parents=True, exist_ok=True)
    pp = {
        "mean": [0.481, 0.458, 0.408],
        "std": [0.269, 0.261, 0.276],
        "interpolation": "bicubic",
        "resize_mode": "shortest",
    }
    (out / "open_clip_config.json").write_text(json.dumps({"model_cfg": cfg, "preprocess_cfg": pp}))
    torch.manual_seed(0)
    model = open_clip.CLIP(**cfg)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(out / "open_clip_model.safetensors"))
    return f"local-dir:{out}"


def build_tiny_aesthetic(out: Path, dim: int = 32) -> Path:
    import torch

    from operators.scoring.aesthetic_mlp import build_mlp

    torch.manual_seed(1)
    path = out / "aesthetic_tiny.pth"
    torch.save(build_mlp(dim).state_dict(), path)
    return path


def build_tiny_dinov2(out: Path) -> Path:
    """A 1-layer Dinov2Model with DINOv2's image processor (BitImageProcessor), saved as a transformers checkpoint."""
    import torch
    from transformers import BitImageProcessor, Dinov2Config, Dinov2Model

    torch.manual_seed(0)
    Dinov2Model(
        Dinov2Config(
            hidden_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=64,
            image_size=56,
            patch_size=14,
        )
    ).save_pretrained(out)
    BitImageProcessor(
        size={"shortest_edge": 64},
        crop_size={"height": 56, "width": 56},
        do_convert_rgb=True,
        image_mean=[0.485, 0.456, 0.406],
        image_std=[0.229, 0.224, 0.225],
    ).save_pretrained(out)
    return out
