"""Tiny models of the real architectures used by pairing, built at test or benchmark time and saved where the real
loaders read them: a SigLIP-architecture open_clip model (timm ViT with MAP pooling and no class token, SigLIP text
tower) and an insightface model pack (an SCRFD-layout detector and an ArcFace-layout recognizer as ONNX files)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

TINY_SIGLIP = "ViT-Pico-16-SigLIP-64"
TINY_TIMM = "vit_pico_patch16_siglip_64"


def register_tiny_siglip_trunk() -> None:
    """Register a 2-block, 32-wide timm ViT built exactly like timm's SigLIP towers (MAP head, no class token)."""
    import timm
    from timm.models import register_model
    from timm.models.vision_transformer import VisionTransformer

    if TINY_TIMM in timm.list_models(TINY_TIMM):
        return

    def vit_pico_patch16_siglip_64(pretrained: bool = False, **kwargs):
        args = dict(
            img_size=64, patch_size=16, embed_dim=32, depth=2, num_heads=2, class_token=False, global_pool="map"
        )
        for k in ("pretrained_cfg", "pretrained_cfg_overlay", "cache_dir"):  # timm's factory bookkeeping
            kwargs.pop(k, None)
        return VisionTransformer(**dict(args, **kwargs))

    register_model(vit_pico_patch16_siglip_64)


def tiny_siglip_config() -> dict:
    """An open_clip model config shaped like ViT-B-16-SigLIP.json, with tiny sizes."""
    return {
        "embed_dim": 32,
        "init_logit_bias": -10,
        "custom_text": True,
        "vision_cfg": {
            "image_size": 64,
            "timm_model_name": TINY_TIMM,
            "timm_model_pretrained": False,
            "timm_pool": "map",
            "timm_proj": "none",
        },
        "text_cfg": {
            "context_length": 16,
            "vocab_size": 1000,
            "hf_tokenizer_name": "timm/ViT-B-16-SigLIP",
            "tokenizer_kwargs": {"clean": "canonicalize"},
            "width": 32,
            "heads": 2,
            "layers": 1,
            "no_causal_mask": True,
            "proj_bias": True,
            "pool_type": "last",
            "norm_kwargs": {"eps": 1e-6},
        },
    }


def make_tiny_siglip(folder: Path, seed: int = 0) -> dict[str, str]:
    """Save a tiny SigLIP two ways users give weights: a local-dir: folder (open_clip_config.json + safetensors) and a
    bare checkpoint file for a registered architecture name. Returns {"local_dir": ..., "file": ..., "model": ...}."""
    import open_clip
    import torch
    from safetensors.torch import save_file

    register_tiny_siglip_trunk()
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    cfg = tiny_siglip_config()
    cfg_file = folder / f"{TINY_SIGLIP}.json"
    cfg_file.write_text(json.dumps(cfg))
    open_clip.add_model_config(cfg_file)
    torch.manual_seed(seed)
    model = open_clip.create_model(TINY_SIGLIP, pretrained=None)
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    local = folder / "local"
    local.mkdir(exist_ok=True)
    pp = {"mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5], "interpolation": "bicubic", "resize_mode": "squash"}
    (local / "open_clip_config.json").write_text(json.dumps({"model_cfg": cfg, "preprocess_cfg": pp}))
    save_file(state, str(local / "open_clip_model.safetensors"))
    ckpt = folder / "tiny_siglip.safetensors"
    save_file(state, str(ckpt))
    return {"local_dir": f"local-dir:{local}", "file": str(ckpt), "model": TINY_SIGLIP}


# insightface model pack ---------------------------------------------------------------------------------------
DET_SIZE = 128  # the tiny detector's fixed input side
FACE_KPS = np.float32([[-0.35, -0.3], [0.35, -0.3], [0.0, 0.05], [-0.28, 0.4], [0.28, 0.4]])  # eyes, nose, mouth


def make_tiny_face_pack(folder: Path, seed: int = 0, embedding_dim: int = 64) -> Path:
    """An insightface model pack folder (what FaceAnalysis(name=PATH) loads): det_tiny.onnx with SCRFD's 9-output
    layout (scores, boxes, 5 keypoints at strides 8/16/32, 2 anchors) and w_tiny.onnx with ArcFace's layout
    (1x3x112x112 -> embedding). The detector's weights are set so that a bright 32x32 cell on a dark background is
    a face: every such cell gives one detection, so tests can place zero, one or two faces."""
    import torch
    from torch import nn

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)

    class TinySCRFD(nn.Module):
        def __init__(self):
            super().__init__()
            self.strides = (8, 16, 32)
            self.register_buffer("box_mask", torch.tensor([[0.0, 0.0, 1.0, 1.0]]))
            self.register_buffer("kps", torch.from_numpy((FACE_KPS + 0.5).reshape(1, 10)))

        def forward(self, x):
            bright = x.mean(dim=1, keepdim=True)  # input is (pixel - 127.5) / 128: white ~ +1, black ~ -1
            scores, boxes, kpss = [], [], []
            for s in self.strides:
                cell = nn.functional.avg_pool2d(bright, s, s).permute(0, 2, 3, 1).reshape(-1, 1)
                cell = cell.repeat_interleave(2, dim=0)  # two anchors per location, as in SCRFD
                # only stride 32 fires; anchors sit at the top-left of their cell, so a box of (0, 0, 1, 1) strides
                # covers exactly the bright cell
                logit = 30.0 * (cell - 0.3) if s == 32 else cell * 0.0 - 30.0
                scores.append(torch.sigmoid(logit))
                boxes.append(cell * 0.0 + self.box_mask)
                kpss.append(cell * 0.0 + self.kps)
            return (*scores, *boxes, *kpss)

    class TinyArcFace(nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(seed)
            self.conv = nn.Conv2d(3, 8, 7, stride=4, padding=3, bias=False)
            self.fc = nn.Linear(8 * 10 * 10, embedding_dim, bias=False)

        def forward(self, x):
            # identity lives in the fine texture: a high-pass, then a random linear projection
            hp = x - nn.functional.avg_pool2d(x, 5, stride=1, padding=2, count_include_pad=False)
            return self.fc(self.conv(hp[:, :, 36:76, 36:76]).flatten(1))  # the centre of the aligned face only

    det = folder / "det_tiny.onnx"
    names = [f"score_{s}" for s in (8, 16, 32)] + [f"bbox_{s}" for s in (8, 16, 32)] + [f"kps_{s}" for s in (8, 16, 32)]
    torch.onnx.export(
        TinySCRFD(),
        torch.zeros(1, 3, DET_SIZE, DET_SIZE),
        str(det),
        input_names=["input.1"],
        output_names=names,
        opset_version=17,
        dynamo=False,
    )
    rec = folder / "w_tiny.onnx"
    torch.onnx.export(
        TinyArcFace(),
        torch.zeros(1, 3, 112, 112),
        str(rec),
        input_names=["input.1"],
        output_names=["embedding"],
        dynamic_axes={"input.1": {0: "batch"}, "embedding": {0: "batch"}},
        opset_version=17,
        dynamo=False,
    )
    return folder


def bright_cells(
    cells: list[tuple[int, int]],
    side: int = DET_SIZE,
    identity: int = 0,
    variation: float = 0.0,
    variation_seed: int = 0,
) -> np.ndarray:
    """A dark RGB image (side x side) with a bright textured 32x32 square at each (row, col) cell: each square is one
    face for the tiny detector. The texture is the face's identity for the tiny recognizer: the same `identity` gives
    the same embedding, `variation` (0..1) blends in other texture so the similarity drops by a controlled amount."""
    base = np.random.default_rng(identity).uniform(-1, 1, (32, 32, 3))
    other = np.random.default_rng(10_000 + variation_seed).uniform(-1, 1, (32, 32, 3))
    tex = (1 - variation) * base + variation * other
    img = np.full((side, side, 3), 10, np.uint8)
    for r, c in cells:
        img[r * 32 : (r + 1) * 32, c * 32 : (c + 1) * 32] = np.clip(212 + 40 * tex, 0, 255).astype(np.uint8)
    return img
