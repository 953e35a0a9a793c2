"""Tiny models of the real architectures the image operators load, random weights, saved the way the published
checkpoints are so that operators load them through their own loaders: Stable Diffusion pipelines (UNet2DCondition,
AutoencoderKL, CLIPTextModel, a CLIP BPE tokenizer), an OWLv2 detector, segment-anything, the informative-drawings
line generator, HED, a DPT depth model, and rtmlib's YOLOX + RTMPose ONNX layouts. Tests and `datagen rehearse`
build them; nothing here is downloaded."""

from __future__ import annotations

import json
import string
from pathlib import Path

import torch  # the rtmlib stand-ins below are torch modules; this module is for tests and rehearsals only

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


def _box_targets(boxes: "torch.Tensor", side: int, scale: float) -> "torch.Tensor":
    """A rounded rectangle (a superellipse) inscribed in each box (B, 4: x0 y0 x1 y1 in input pixels), as a
    (B, 1, side, side) 0/1 map on a grid of `scale` input pixels per cell: the shape of an object that fills its box."""
    centres = (torch.arange(side, dtype=torch.float32) + 0.5) * scale
    ys, xs = centres.view(1, side, 1), centres.view(1, 1, side)
    cx, cy = ((boxes[:, 0] + boxes[:, 2]) / 2).view(-1, 1, 1), ((boxes[:, 1] + boxes[:, 3]) / 2).view(-1, 1, 1)
    rx, ry = ((boxes[:, 2] - boxes[:, 0]) / 2).view(-1, 1, 1), ((boxes[:, 3] - boxes[:, 1]) / 2).view(-1, 1, 1)
    inside = ((xs - cx) / rx) ** 4 + ((ys - cy) / ry) ** 4 <= 1.0
    return inside.float().unsqueeze(1)


def teach_box_masks(path: Path, steps: int = 300, boxes_per_step: int = 16, seed: int = 0) -> Path:
    """Train a tiny segment-anything checkpoint for a few steps so that a box prompt gives the object-sized mask an
    object filling the box would (a rounded rectangle inscribed in it), on synthetic images, and save it back the same
    way. With random weights its masks are noise spread over the whole photo, so every matte grown from them covered
    the photo and the edits along a matte (background change, layers, subject references) had nothing to work with.
    Only the prompt encoder and mask decoder learn; the architecture and the loader stay the real ones."""
    from operators.models.sam import load_sam

    torch.manual_seed(seed)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny tensors: more threads only fight over the cores (ten times slower on 2 busy ones)
    sam = load_sam(str(path), "cpu")
    side = sam.image_encoder.img_size
    train = [*sam.prompt_encoder.parameters(), *sam.mask_decoder.parameters()]
    for prm in train:
        prm.requires_grad_(True)
    sam.prompt_encoder.train(), sam.mask_decoder.train()
    opt = torch.optim.Adam(train, lr=3e-3)
    for _ in range(steps):
        # a smooth random image (colour blobs at a few scales), normalised as SAM's preprocess does
        image = sum(
            torch.nn.functional.interpolate(torch.rand(1, 3, k, k), size=(side, side), mode="bilinear")
            for k in (2, 4, 8)
        ) * (255.0 / 3)
        with torch.no_grad():
            embedding = sam.image_encoder((image - sam.pixel_mean) / sam.pixel_std)
        lo = torch.rand(boxes_per_step, 2) * side * 0.7
        size = (0.1 + torch.rand(boxes_per_step, 2) * 0.6) * side
        boxes = torch.cat([lo, torch.minimum(lo + size, torch.tensor(float(side)))], dim=1)
        sparse, dense = sam.prompt_encoder(points=None, boxes=boxes, masks=None)
        logits, _ = sam.mask_decoder(
            image_embeddings=embedding,
            image_pe=sam.prompt_encoder.get_dense_pe(),
            sparse_prompt_embeddings=sparse,
            dense_prompt_embeddings=dense,
            multimask_output=False,
        )
        target = _box_targets(boxes, logits.shape[-1], side / logits.shape[-1])
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, target)
        opt.zero_grad()
        loss.backward()
        opt.step()
    torch.set_num_threads(threads)
    torch.save({k: v.detach() for k, v in sam.state_dict().items()}, path)
    return path


def make_tiny_line_generator(path: Path, seed: int = 1) -> Path:
    """The informative-drawings ResNet generator (contour_style / anime_style), 8 filters, as netG_A_latest.pth."""
    import torch

    from operators.conditions.informative_drawings import build_generator

    torch.manual_seed(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(build_generator(ngf=8, n_residual_blocks=3).eval().state_dict(), path)
    return path


def make_tiny_hed(path: Path, seed: int = 3) -> Path:
    """HED (ControlNetHED.pth's layout) with narrow stages."""
    import torch

    from operators.conditions.hed import build_hed

    torch.manual_seed(seed)
    net = build_hed(widths=(4, 8, 8, 8, 8), layers=(2, 2, 3, 3, 3)).eval()
    with torch.no_grad():
        net.norm.copy_(torch.tensor([123.0, 117.0, 104.0]).view(1, 3, 1, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(net.state_dict(), path)
    return path


def make_tiny_dpt(out: Path, seed: int = 1) -> Path:
    """A DPT depth model (MiDaS dpt_hybrid's family) with its image processor, as a transformers folder."""
    import torch
    from transformers import DPTConfig, DPTForDepthEstimation, DPTImageProcessor

    torch.manual_seed(seed)
    cfg = DPTConfig(
        hidden_size=16,
        num_hidden_layers=4,
        num_attention_heads=2,
        intermediate_size=32,
        image_size=32,
        patch_size=8,
        backbone_out_indices=[0, 1, 2, 3],
        neck_hidden_sizes=[8, 8, 16, 16],
        fusion_hidden_size=8,
    )
    DPTForDepthEstimation(cfg).eval().save_pretrained(out)
    DPTImageProcessor(size={"height": 32, "width": 32}, keep_aspect_ratio=False).save_pretrained(out)
    return out


# rtmlib's ONNX layouts: a YOLOX end2end person detector and an RTMPose SimCC model -------------------------------
SIDE = 128  # the detector's input side
POSE_W, POSE_H = 48, 64  # RTMPose input (width, height); SimCC bins are twice as fine
BOX = (16.0, 0.0, 112.0, 128.0)  # person box: 96 x 128 -> with rtmlib's 1.25 padding exactly the 3:4 input
# COCO-17 keypoints in pose-input pixels: a standing figure
KEYPOINTS = [
    (24, 14),
    (26, 12),
    (22, 12),
    (28, 13),
    (20, 13),
    (30, 22),
    (18, 22),
    (32, 32),
    (16, 32),
    (33, 41),
    (15, 41),
    (28, 40),
    (20, 40),
    (28, 48),
    (20, 48),
    (28, 56),
    (20, 56),
]


class TinyDetector(torch.nn.Module):
    """YOLOX end2end layout: image -> dets (1, N, 5: x0 y0 x1 y1 score), labels (1, N)."""

    def __init__(self, score: float):
        super().__init__()
        self.features = torch.nn.Conv2d(3, 4, 8, stride=8)
        self.head = torch.nn.Linear(4, 5)
        with torch.no_grad():
            self.head.weight.zero_()
            self.head.bias.copy_(torch.tensor([*BOX, score]))

    def forward(self, x):
        f = torch.relu(self.features(x)).mean(dim=(2, 3))
        dets = self.head(f).view(1, 1, 5)
        return dets, torch.zeros(1, 1, dtype=torch.int64)


class TinyRTMPose(torch.nn.Module):
    """RTMPose SimCC layout: image -> simcc_x (1, 17, 2W), simcc_y (1, 17, 2H); peaks placed by the head's bias."""

    def __init__(self):
        super().__init__()
        self.features = torch.nn.Conv2d(3, 4, 8, stride=8)
        self.head_x = torch.nn.Linear(4, 17 * POSE_W * 2)
        self.head_y = torch.nn.Linear(4, 17 * POSE_H * 2)
        with torch.no_grad():
            for head in (self.head_x, self.head_y):
                head.weight.zero_()
                head.bias.zero_()
            bx = self.head_x.bias.view(17, POSE_W * 2)
            by = self.head_y.bias.view(17, POSE_H * 2)
            for j, (x, y) in enumerate(KEYPOINTS):
                bx[j, 2 * x] = 0.9
                by[j, 2 * y] = 0.9

    def forward(self, x):
        f = torch.relu(self.features(x)).mean(dim=(2, 3))
        return self.head_x(f).view(1, 17, POSE_W * 2), self.head_y(f).view(1, 17, POSE_H * 2)


def export_onnx(module, shape, outputs, path):
    import warnings

    import torch

    # the TorchScript exporter: the dynamo one needs onnxscript, which the project does not install
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            module.eval(),
            (torch.zeros(shape),),
            str(path),
            input_names=["input"],
            output_names=outputs,
            opset_version=17,
            dynamo=False,
        )
    return str(path)


def make_tiny_rtmlib(folder: Path) -> dict[str, str]:
    """{"checkpoint", "det_checkpoint", "pose_input_size", "det_input_size"}: the pose operator's keys for a tiny
    YOLOX end2end detector that finds one person and an RTMPose that places a standing figure."""
    import torch

    folder.mkdir(parents=True, exist_ok=True)
    with torch.no_grad():
        pose = export_onnx(TinyRTMPose(), (1, 3, POSE_H, POSE_W), ["simcc_x", "simcc_y"], folder / "rtmpose_tiny.onnx")
        det = export_onnx(TinyDetector(0.9), (1, 3, SIDE, SIDE), ["dets", "labels"], folder / "yolox_tiny.onnx")
    return {
        "checkpoint": pose,
        "det_checkpoint": det,
        "pose_input_size": [POSE_W, POSE_H],
        "det_input_size": [SIDE, SIDE],
    }
