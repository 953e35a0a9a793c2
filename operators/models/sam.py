"""Build a segment-anything model from its checkpoint alone: every size (ViT-H/L/B, or a tiny test model) is read
off the state dict, then the stock segment_anything.modeling classes are assembled exactly as build_sam does."""

from __future__ import annotations

import re
from functools import partial
from typing import Any

from operators.models.checkpoints import load_state_dict

# Not recoverable from weights (attention heads of the two-way transformer); every published SAM uses 8.
DECODER_HEADS = 8
PIXEL_MEAN = [123.675, 116.28, 103.53]
PIXEL_STD = [58.395, 57.12, 57.375]


def _count(sd: dict[str, Any], pattern: str) -> int:
    rx = re.compile(pattern)
    return len({m.group(1) for k in sd if (m := rx.match(k))})


def sam_architecture(sd: dict[str, Any]) -> dict[str, Any]:
    patch = sd["image_encoder.patch_embed.proj.weight"]
    embed_dim, patch_size = int(patch.shape[0]), int(patch.shape[2])
    grid = int(sd["image_encoder.pos_embed"].shape[1])
    depth = _count(sd, r"image_encoder\.blocks\.(\d+)\.")
    head_dim = int(sd["image_encoder.blocks.0.attn.rel_pos_h"].shape[1])
    global_idx, window = [], 0
    for i in range(depth):
        span = int(sd[f"image_encoder.blocks.{i}.attn.rel_pos_h"].shape[0])  # 2*size-1 of what the block attends to
        if span == 2 * grid - 1:
            global_idx.append(i)
        else:
            window = (span + 1) // 2
    out_chans = int(sd["image_encoder.neck.0.weight"].shape[0])
    return {
        "img_size": grid * patch_size,
        "patch_size": patch_size,
        "embed_dim": embed_dim,
        "depth": depth,
        "num_heads": embed_dim // head_dim,
        "mlp_ratio": sd["image_encoder.blocks.0.mlp.lin1.weight"].shape[0] / embed_dim,
        "global_attn_indexes": global_idx,
        "window_size": window,
        "out_chans": out_chans,
        "mask_in_chans": int(sd["prompt_encoder.mask_downscaling.3.weight"].shape[0]),
        "decoder_depth": _count(sd, r"mask_decoder\.transformer\.layers\.(\d+)\."),
        "decoder_mlp_dim": int(sd["mask_decoder.transformer.layers.0.mlp.lin1.weight"].shape[0]),
        "num_multimask_outputs": int(sd["mask_decoder.mask_tokens.weight"].shape[0]) - 1,
        "iou_head_depth": _count(sd, r"mask_decoder\.iou_prediction_head\.layers\.(\d+)\."),
        "iou_head_hidden_dim": int(sd["mask_decoder.iou_prediction_head.layers.0.weight"].shape[0]),
    }


def build_sam(arch: dict[str, Any]):
    import torch
    from segment_anything.modeling import ImageEncoderViT, MaskDecoder, PromptEncoder, Sam, TwoWayTransformer

    a = arch
    grid = a["img_size"] // a["patch_size"]
    return Sam(
        image_encoder=ImageEncoderViT(
            img_size=a["img_size"],
            patch_size=a["patch_size"],
            embed_dim=a["embed_dim"],
            depth=a["depth"],
            num_heads=a["num_heads"],
            mlp_ratio=a["mlp_ratio"],
            out_chans=a["out_chans"],
            qkv_bias=True,
            norm_layer=partial(torch.nn.LayerNorm, eps=1e-6),
            use_rel_pos=True,
            window_size=a["window_size"],
            global_attn_indexes=tuple(a["global_attn_indexes"]),
        ),
        prompt_encoder=PromptEncoder(
            embed_dim=a["out_chans"],
            image_embedding_size=(grid, grid),
            input_image_size=(a["img_size"], a["img_size"]),
            mask_in_chans=a["mask_in_chans"],
        ),
        mask_decoder=MaskDecoder(
            num_multimask_outputs=a["num_multimask_outputs"],
            transformer=TwoWayTransformer(
                depth=a["decoder_depth"],
                embedding_dim=a["out_chans"],
                mlp_dim=a["decoder_mlp_dim"],
                num_heads=DECODER_HEADS,
            ),
            transformer_dim=a["out_chans"],
            iou_head_depth=a["iou_head_depth"],
            iou_head_hidden_dim=a["iou_head_hidden_dim"],
        ),
        pixel_mean=PIXEL_MEAN,
        pixel_std=PIXEL_STD,
    )


def load_sam(path: str, device: str):
    sd = load_state_dict(path, "segment-anything")
    if "image_encoder.patch_embed.proj.weight" not in sd:
        raise ValueError(f"{path!r} is not a segment-anything checkpoint (no image_encoder.patch_embed)")
    sam = build_sam(sam_architecture(sd))
    sam.load_state_dict(sd, strict=True)
    return sam.eval().requires_grad_(False).to(device)
