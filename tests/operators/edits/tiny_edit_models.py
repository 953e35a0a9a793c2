"""Tiny models of the real architectures the synthesized edits load: Stable Diffusion pipelines (UNet2DConditionModel,
AutoencoderKL, CLIPTextModel, a CLIP BPE tokenizer), an OWLv2 detector and a segment-anything model, built from
configs at test or smoke-bench time and saved the way published checkpoints are, so operators load them through the
same loaders (DiffusionPipeline / AutoModelForZeroShotObjectDetection .from_pretrained, the SAM state-dict loader)."""

from __future__ import annotations

import json
import string
from pathlib import Path

CHARS = string.ascii_lowercase + string.digits + ".,;:!?'-()"
BOS, EOS = 2 * len(CHARS), 2 * len(CHARS) + 1


def _clip_tokenizer(folder: Path):
    """A CLIP BPE tokenizer over single characters (no merges): every lower-case word still tokenizes."""
    from transformers import CLIPTokenizer

    vocab: dict[str, int] = {}
    for c in CHARS:
        vocab.setdefault(c, len(vocab))
        vocab.setdefault(c + "</w>", len(vocab))
    # the special tokens last, as in CLIP (OWLv2 treats a query whose first id is 0 as padding)
    vocab["<|startoftext|>"], vocab["<|endoftext|>"] = BOS, EOS
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    return CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"), model_max_length=77)


def make_tiny_sd(out: Path, inpainting: bool, seed: int = 0) -> Path:
    """Save a tiny Stable Diffusion pipeline (inpainting: the 9-channel UNet of SD inpainting checkpoints)."""
    import torch
    from diffusers import (
        AutoencoderKL,
        DDIMScheduler,
        StableDiffusionInpaintPipeline,
        StableDiffusionPipeline,
        UNet2DConditionModel,
    )
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        block_out_channels=(8, 16),
        layers_per_block=1,
        sample_size=16,
        in_channels=9 if inpainting else 4,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=16,
        attention_head_dim=2,
        norm_num_groups=4,
    )
    vae = AutoencoderKL(
        block_out_channels=[8, 16],
        in_channels=3,
        out_channels=3,
        down_block_types=["DownEncoderBlock2D"] * 2,
        up_block_types=["UpDecoderBlock2D"] * 2,
        latent_channels=4,
        norm_num_groups=4,
        sample_size=32,
    )
    text = CLIPTextModel(
        CLIPTextConfig(
            bos_token_id=BOS,
            eos_token_id=EOS,
            pad_token_id=EOS,
            hidden_size=16,
            intermediate_size=32,
            num_attention_heads=2,
            num_hidden_layers=1,
            vocab_size=128,
            max_position_embeddings=77,
            projection_dim=16,
        )
    )
    tokenizer = _clip_tokenizer(out.parent / (out.name + "-tok"))
    scheduler = DDIMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
    )
    cls = StableDiffusionInpaintPipeline if inpainting else StableDiffusionPipeline
    pipe = cls(
        vae=vae,
        text_encoder=text,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.save_pretrained(out)
    return out


def make_tiny_owlv2(out: Path, seed: int = 0) -> Path:
    """Save a tiny OWLv2 open-vocabulary detector (Owlv2ForObjectDetection + Owlv2Processor with a CLIP tokenizer),
    loadable with AutoModelForZeroShotObjectDetection / AutoProcessor like google/owlv2-base-patch16-ensemble."""
    import torch
    from transformers import Owlv2Config, Owlv2ForObjectDetection, Owlv2ImageProcessor, Owlv2Processor

    torch.manual_seed(seed)
    cfg = Owlv2Config(
        text_config={
            "vocab_size": 128,
            "hidden_size": 16,
            "intermediate_size": 32,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "max_position_embeddings": 16,
            "bos_token_id": BOS,
            "eos_token_id": EOS,
            "pad_token_id": EOS,
        },
        vision_config={
            "hidden_size": 16,
            "intermediate_size": 32,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "image_size": 64,
            "patch_size": 16,
        },
        projection_dim=16,
    )
    model = Owlv2ForObjectDetection(cfg).eval()
    with torch.no_grad():
        # random weights score every query ~0 after the sigmoid; shift the logits so queries score ~0.7 and make the
        # box head predict the per-patch prior boxes (a quarter of the image wide), so the plumbing has boxes to use
        model.class_head.logit_shift.weight.zero_()
        model.class_head.logit_shift.bias.fill_(1.0)
        model.class_head.logit_scale.weight.zero_()
        model.class_head.logit_scale.bias.zero_()
        model.class_head.dense0.weight.mul_(0.01)
        last = model.box_head.dense2
        last.weight.zero_()
        last.bias.zero_()
    tok = _clip_tokenizer(out.parent / (out.name + "-tok"))
    tok.model_max_length = 16
    proc = Owlv2Processor(image_processor=Owlv2ImageProcessor(size={"height": 64, "width": 64}), tokenizer=tok)
    model.save_pretrained(out)
    proc.save_pretrained(out)
    return out


def make_tiny_sam(path: Path, seed: int = 0) -> Path:
    """A tiny segment-anything model (ViT encoder 64px) saved as a plain state dict like the published .pth files."""
    from functools import partial

    import torch
    from segment_anything.modeling import ImageEncoderViT, MaskDecoder, PromptEncoder, Sam, TwoWayTransformer

    torch.manual_seed(seed)
    sam = Sam(
        image_encoder=ImageEncoderViT(
            img_size=64,
            patch_size=8,
            embed_dim=32,
            depth=2,
            num_heads=2,
            mlp_ratio=2.0,
            out_chans=32,
            qkv_bias=True,
            norm_layer=partial(torch.nn.LayerNorm, eps=1e-6),
            use_rel_pos=True,
            window_size=4,
            global_attn_indexes=(1,),
        ),
        prompt_encoder=PromptEncoder(
            embed_dim=32, image_embedding_size=(8, 8), input_image_size=(64, 64), mask_in_chans=8
        ),
        mask_decoder=MaskDecoder(
            num_multimask_outputs=3,
            transformer=TwoWayTransformer(depth=1, embedding_dim=32, mlp_dim=64, num_heads=8),
            transformer_dim=32,
            iou_head_depth=3,
            iou_head_hidden_dim=32,
        ),
        pixel_mean=[123.675, 116.28, 103.53],
        pixel_std=[58.395, 57.12, 57.375],
    ).eval()
    torch.save(sam.state_dict(), path)
    return path
