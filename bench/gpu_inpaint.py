"""GPU check, optional part `inpaint` (bash bench/gpu_check.sh --with inpaint): throughput of the synthesized edits'
inpainting stage, images/s per GPU at 1024 px, through the stage's own code (operators/edits/diffusion.py
DiffusionRunner:
resize to the working size, one batched diffusers call, resize back; the paste-back is a CPU step and not timed).

The pipeline is diffusers' StableDiffusionInpaintPipeline with the published SD-inpainting architecture (9-channel
UNet of runwayml/stable-diffusion-inpainting, its VAE and a CLIP ViT-L/14 text encoder) randomly initialised at real
size in fp16: denoising speed does not depend on the weights and nothing can be downloaded on the lent machine. The
machine has no diffusers: carry its wheel (pip download diffusers --no-deps, ~4 MB) and install it first. With
--cpu-smoke a tiny pipeline of the same classes is saved and loaded back through DiffusionPipeline.from_pretrained,
as the operator loads a checkpoint, and run for two steps on CPU (checks the code path, not speed)."""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from gpu_common import ROOT, device, parser, peak_mem_gib, row, sync, write

sys.path.insert(0, str(ROOT))

# runwayml/stable-diffusion-inpainting's unet/config.json and vae/config.json (the sizes that matter for speed)
UNET = dict(
    sample_size=64,
    in_channels=9,
    out_channels=4,
    layers_per_block=2,
    block_out_channels=(320, 640, 1280, 1280),
    down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
    up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
    cross_attention_dim=768,
    attention_head_dim=8,
)
VAE = dict(
    in_channels=3,
    out_channels=3,
    latent_channels=4,
    block_out_channels=(128, 256, 512, 512),
    layers_per_block=2,
    down_block_types=("DownEncoderBlock2D",) * 4,
    up_block_types=("UpDecoderBlock2D",) * 4,
    sample_size=512,
)


def real_size_pipeline(dev, dtype):
    """StableDiffusionInpaintPipeline at SD-inpainting size, random weights, built on the device."""
    import torch
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionInpaintPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from pipelines.rehearsal.tiny_vision import _clip_tokenizer

    with torch.device(dev):
        unet = UNet2DConditionModel(**UNET)
        vae = AutoencoderKL(**VAE)
        text = CLIPTextModel(
            CLIPTextConfig(
                hidden_size=768,
                intermediate_size=3072,
                num_hidden_layers=12,
                num_attention_heads=12,
                max_position_embeddings=77,
                vocab_size=49408,
                projection_dim=768,
            )
        )
    tok = _clip_tokenizer(Path(tempfile.mkdtemp()) / "tok")  # tokenising a prompt costs nothing next to the UNet
    sched = DDIMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
    )
    pipe = StableDiffusionInpaintPipeline(
        vae=vae,
        text_encoder=text,
        tokenizer=tok,
        unet=unet,
        scheduler=sched,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    return pipe.to(dev, dtype)


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--px", type=int, default=1024, help="working resolution (long side)")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--steps", type=int, default=20, help="denoising steps per image")
    ap.add_argument("--repeats", type=int, default=3, help="timed batches after one warm-up batch")
    ap.add_argument("--max-seconds", type=float, default=120)
    args = ap.parse_args()

    import numpy as np
    import torch

    from operators.edits.diffusion import INPAINT, DiffusionConfig, DiffusionRunner

    dev = device(args.cpu_smoke)
    t0 = time.perf_counter()
    if args.cpu_smoke:
        from pipelines.rehearsal.tiny_vision import make_tiny_sd

        ckpt = make_tiny_sd(Path(tempfile.mkdtemp()) / "sd-inpainting", inpainting=True)
        args.px, args.batch, args.steps, args.repeats = 64, 2, 2, 1
        runner = DiffusionRunner(
            DiffusionConfig(checkpoint=str(ckpt), steps=args.steps, resolution=args.px), INPAINT, "cpu"
        )
        runner.setup()  # the operator's loader: DiffusionPipeline.from_pretrained on the saved checkpoint
        name = "tiny SD-inpainting (smoke)"
    else:
        runner = DiffusionRunner(
            DiffusionConfig(checkpoint="(random init)", steps=args.steps, resolution=args.px), INPAINT, "cuda"
        )
        runner.pipe = real_size_pipeline(dev, torch.float16)
        runner.pipe.set_progress_bar_config(disable=True)
        import inspect

        runner._accepts = set(inspect.signature(runner.pipe.__call__).parameters)
        name = "SD-inpainting architecture (860M UNet), fp16"
    build_s = time.perf_counter() - t0
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 255, (args.px, args.px, 3), dtype=np.uint8) for _ in range(args.batch)]
    masks = []
    for _ in range(args.batch):
        m = np.zeros((args.px, args.px), np.uint8)
        m[args.px // 4 : args.px // 2, args.px // 3 : 2 * args.px // 3] = 255
        masks.append(m)
    prompts, seeds = ["an empty wooden table"] * args.batch, list(range(args.batch))
    runner.run(images, prompts, seeds, masks=masks, batch_size=args.batch)  # warm-up
    sync(dev)
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    t0 = time.perf_counter()
    done = 0
    while done < args.repeats and time.perf_counter() - t0 < args.max_seconds:
        out = runner.run(images, prompts, seeds, masks=masks, batch_size=args.batch)
        done += 1
    sync(dev)
    dt = time.perf_counter() - t0
    assert len(out) == args.batch and out[0].shape == images[0].shape
    ips = args.batch * done / dt
    what = f"{name} inpainting, {args.px} px, batch {args.batch}, {args.steps} steps, {dev.type}"
    write(
        args.json,
        "inpaint",
        [
            row(
                "inpaint_img_per_s",
                what,
                f"{ips:,.3f} img/s",
                f"{1000 * dt / done:.0f} ms/batch over {done} timed batches after 1 warm-up; {ips * args.steps:.1f} "
                f"denoising steps/s; "
                + (f"peak mem {peak_mem_gib(dev)} GiB; " if dev.type == "cuda" else "")
                + f"build {build_s:.1f} s",
                images_per_s=ips,
                px=args.px,
                batch=args.batch,
                steps=args.steps,
                batches=done,
                peak_mem_gib=peak_mem_gib(dev),
            )
        ],
    )


if __name__ == "__main__":
    main()
