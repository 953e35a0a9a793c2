"""GPU check, part `inpaint`: seconds per edit and edits per GPU-hour of the synthesized edits' inpainting stage
(remove_object, replace_object, background_change) as configs/ace_full.yaml runs it, beside Step1X-Edit's figure.

The model is the SDXL inpainting architecture of diffusers/stable-diffusion-xl-1.0-inpainting-0.1 (the recipe's
checkpoint): its 9-channel 2.6B UNet, CLIP ViT-L and OpenCLIP bigG text encoders and SDXL VAE, configs written
below, weights random (denoising speed does not depend on them; the lent machine cannot download anything). It is
built on the device, saved with save_pretrained and loaded back through the operator's own loader (Inpainter.setup:
worker_cache, DiffusionPipeline.from_pretrained, fp16 on CUDA). Each batch size (1, 2, 4, ...) is timed on one real
call of Inpainter.fill with the recipe's settings (1024 px, 30 steps at strength 0.99, CFG 7.5, negative prompt, the
paste-back), while the next one fits in the time left (--deadline since the process started) and still helps; the
best batch gives `inpaint_seconds_per_edit`. Nothing is extrapolated. Photos are 1024 x 1024, the most pixels a
recipe with max_side 1024 sends. The lent machine has no diffusers: carry its wheel and accelerate's (without
accelerate diffusers builds every weight on the CPU before loading it). --cpu-smoke: tiny widths of the same classes
at 64 px, 3 steps, on CPU (checks the code path, not speed)."""

from __future__ import annotations

import time

START = time.perf_counter()  # the deadline counts from here: imports and the build are part of the part's time

import shutil  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

from gpu_common import ROOT, device, parser, peak_mem_gib, row, sync, write  # noqa: E402

sys.path.insert(0, str(ROOT))

RECIPE = ROOT / "configs" / "ace_full.yaml"
STAGE = "remove_object"  # replace_object and background_change share its inpaint settings (one YAML anchor)
# stepfun-ai/Step1X-Edit README: batch 1, 28 steps with flash-attn, 1024 px, one H800 (5 s at 512, 11 s at 768)
STEP1X_EDIT_S = 22.0

# diffusers/stable-diffusion-xl-1.0-inpainting-0.1 unet/config.json (stabilityai/stable-diffusion-xl-base-1.0's with
# 9 input channels: latents, mask, masked-image latents)
UNET = dict(
    sample_size=128,
    in_channels=9,
    out_channels=4,
    layers_per_block=2,
    block_out_channels=(320, 640, 1280),
    down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
    up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
    transformer_layers_per_block=(1, 2, 10),
    attention_head_dim=(5, 10, 20),
    cross_attention_dim=2048,  # 768 (CLIP ViT-L) + 1280 (OpenCLIP bigG), concatenated per token
    use_linear_projection=True,
    addition_embed_type="text_time",
    addition_time_embed_dim=256,
    projection_class_embeddings_input_dim=2816,  # bigG's pooled 1280 + 6 size/crop numbers x 256
    norm_num_groups=32,
)
# the SDXL VAE (vae/config.json): fp16 overflows in it, so the pipeline runs it in fp32 (force_upcast)
VAE = dict(
    in_channels=3,
    out_channels=3,
    latent_channels=4,
    block_out_channels=(128, 256, 512, 512),
    layers_per_block=2,
    down_block_types=("DownEncoderBlock2D",) * 4,
    up_block_types=("UpDecoderBlock2D",) * 4,
    norm_num_groups=32,
    sample_size=1024,
    scaling_factor=0.13025,
    force_upcast=True,
)
# text_encoder (CLIP ViT-L/14) and text_encoder_2 (OpenCLIP ViT-bigG/14) config.json
CLIP_L = dict(
    hidden_size=768,
    intermediate_size=3072,
    num_hidden_layers=12,
    num_attention_heads=12,
    hidden_act="quick_gelu",
    projection_dim=768,
    vocab_size=49408,
    max_position_embeddings=77,
)
CLIP_BIGG = dict(
    hidden_size=1280,
    intermediate_size=5120,
    num_hidden_layers=32,
    num_attention_heads=20,
    hidden_act="gelu",
    projection_dim=1280,
    vocab_size=49408,
    max_position_embeddings=77,
)
# scheduler/scheduler_config.json
SCHEDULER = dict(
    beta_start=0.00085,
    beta_end=0.012,
    beta_schedule="scaled_linear",
    num_train_timesteps=1000,
    steps_offset=1,
    timestep_spacing="leading",
    prediction_type="epsilon",
    interpolation_type="linear",
    use_karras_sigmas=False,
)
# --cpu-smoke: the same classes and wiring at tiny widths (cross-attention 32 + 32, time embedding 32 + 6 x 8)
TINY = {
    "unet": dict(
        sample_size=32,
        block_out_channels=(32, 64),
        layers_per_block=1,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        transformer_layers_per_block=(1, 2),
        attention_head_dim=(2, 4),
        cross_attention_dim=64,
        addition_time_embed_dim=8,
        projection_class_embeddings_input_dim=80,
        norm_num_groups=8,
    ),
    "vae": dict(
        block_out_channels=(16, 32),
        layers_per_block=1,
        down_block_types=("DownEncoderBlock2D",) * 2,
        up_block_types=("UpDecoderBlock2D",) * 2,
        norm_num_groups=8,
        sample_size=64,
    ),
    "clip": dict(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        projection_dim=32,
        vocab_size=128,
    ),
}


def save_sdxl_inpainting(out: Path, dev, dtype, tiny: bool) -> Path:
    """An SDXL inpainting pipeline with random weights, built on `dev` in `dtype` and saved as a diffusers folder
    (model_index.json) like the recipe's checkpoint; published sizes unless `tiny`."""
    import torch
    from diffusers import AutoencoderKL, EulerDiscreteScheduler, StableDiffusionXLInpaintPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    from pipelines.rehearsal.tiny_vision import BOS, EOS, _clip_tokenizer

    def sized(published: dict, key: str) -> dict:
        return {**published, **TINY[key]} if tiny else dict(published)

    # the stand-in tokenizer spells words by characters: prompt length, not tokenisation, is what the encoders see
    ids = dict(bos_token_id=BOS, eos_token_id=EOS, pad_token_id=EOS)
    torch.manual_seed(0)
    with torch.device(dev):  # weights are made where they run: seconds for 3.5B parameters on a GPU
        unet = UNet2DConditionModel(**sized(UNET, "unet"))
        vae = AutoencoderKL(**sized(VAE, "vae"))
        text = CLIPTextModel(CLIPTextConfig(**sized(CLIP_L, "clip"), **ids))
        text_2 = CLIPTextModelWithProjection(CLIPTextConfig(**sized(CLIP_BIGG, "clip"), **ids))
    tok = _clip_tokenizer(out.parent / (out.name + "-tok"))
    pipe = StableDiffusionXLInpaintPipeline(
        vae=vae,
        text_encoder=text,
        text_encoder_2=text_2,
        tokenizer=tok,
        tokenizer_2=tok,
        unet=unet,
        scheduler=EulerDiscreteScheduler(**SCHEDULER),
        requires_aesthetics_score=False,
        force_zeros_for_empty_prompt=True,
    ).to(dtype=dtype)
    pipe.save_pretrained(out)
    return out


def recipe_settings() -> tuple[dict, int]:
    """The inpaint settings and batch size configs/ace_full.yaml gives the inpainting stage."""
    from datagen.config import load_yaml

    stage = load_yaml(RECIPE.read_text(), str(RECIPE))["operators"][STAGE]
    return dict(stage["inpaint"]), int(stage.get("batch_size", 4))


def scratch(need_gib: float) -> Path:
    """A folder for the saved checkpoint: memory-backed /dev/shm when it has room (saving and loading ~7 GiB from
    a slow disk would eat the part's time), else the temporary folder."""
    shm = Path("/dev/shm")
    if shm.is_dir() and shutil.disk_usage(shm).free > need_gib * 2**30:
        return Path(tempfile.mkdtemp(prefix="gpu_inpaint.", dir=shm))
    return Path(tempfile.mkdtemp(prefix="gpu_inpaint."))


def params(*modules) -> str:
    n = sum(p.numel() for m in modules for p in m.parameters())
    return f"{n / 1e9:.2f}B" if n >= 1e8 else f"{n / 1e6:.2f}M"


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--px", type=int, help="working resolution, long side (default: the recipe's, 1024)")
    ap.add_argument("--steps", type=int, help="denoising steps (default: the recipe's, 30)")
    ap.add_argument("--batches", default="1,2,4,8,16,32", help="batch sizes to try, in order")
    ap.add_argument(
        "--deadline", type=float, default=135, help="seconds since start: no batch size starts that would end later"
    )
    args = ap.parse_args()

    import numpy as np
    import torch
    from diffusers.utils import logging as diffusers_logging

    from operators.edits.inpaint import InpaintConfig, Inpainter

    diffusers_logging.set_verbosity_error()  # the fp32 VAE's cast warns on every call: the log would hide errors

    dev = device(args.cpu_smoke)
    settings, stage_batch = recipe_settings()
    if args.cpu_smoke:
        settings.update(resolution=64, steps=3)
        args.batches, args.deadline = "1,2", 1e9
    if args.px:
        settings["resolution"] = args.px
    if args.steps:
        settings["steps"] = args.steps
    px, steps = settings["resolution"], settings["steps"]
    batches = [int(b) for b in args.batches.split(",")]

    # build, save, load through the operator's loader (fp16 on CUDA, as dtype auto gives it)
    t0 = time.perf_counter()
    folder = scratch(need_gib=8)
    try:
        ckpt = save_sdxl_inpainting(
            folder / "sdxl-inpainting", dev, torch.float16 if dev.type == "cuda" else torch.float32, args.cpu_smoke
        )
        if dev.type == "cuda":
            torch.cuda.empty_cache()
        build_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        inpainter = Inpainter(InpaintConfig(**{**settings, "checkpoint": str(ckpt)}), dev.type)
        inpainter.setup()  # worker_cache.per_process -> load_pipeline -> DiffusionPipeline.from_pretrained
        load_s = time.perf_counter() - t0
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    pipe = inpainter.runner.pipe
    assert type(pipe).__name__ == "StableDiffusionXLInpaintPipeline", type(pipe).__name__
    size = f"UNet {params(pipe.unet)}, text encoders {params(pipe.text_encoder, pipe.text_encoder_2)}"
    denoise = min(int(steps * settings.get("strength", 1.0)), steps)  # diffusers skips the first steps below 1.0

    rng = np.random.default_rng(0)
    photo = rng.integers(0, 255, (px, px, 3), dtype=np.uint8)
    mask = np.zeros((px, px), np.uint8)
    mask[px // 4 : px // 2, px // 3 : 2 * px // 3] = 255
    prompt = "a wooden chair"

    def fill(n: int) -> float:
        sync(dev)
        t = time.perf_counter()
        out = inpainter.fill([photo] * n, [mask] * n, [prompt] * n, list(range(n)), batch_size=n)
        sync(dev)
        assert len(out) == n and out[0].shape == photo.shape
        return time.perf_counter() - t

    with np.errstate(invalid="ignore"):  # random weights may give NaN pixels; their cost is the same
        warm_s = fill(1)  # first call: kernels chosen, the VAE's fp32 copy made
        sweep: list[dict] = []
        for b in batches:
            # the next call takes about b edits at the last per-edit time; start it only if it ends in time
            guess = b * (sweep[-1]["seconds_per_edit"] if sweep else warm_s) * 1.15
            if sweep and time.perf_counter() - START + guess > args.deadline:
                break
            if dev.type == "cuda":
                torch.cuda.reset_peak_memory_stats(dev)
            try:
                dt = fill(b)
            except torch.cuda.OutOfMemoryError:
                torch.cuda.empty_cache()
                break
            sweep.append({"batch": b, "seconds": dt, "seconds_per_edit": dt / b, "peak_mem_gib": peak_mem_gib(dev)})
            best = min(s["seconds_per_edit"] for s in sweep[:-1]) if len(sweep) > 1 else None
            if best is not None and dt / b > 0.97 * best:
                break  # saturated: a larger batch gains under 3%

    top = min(sweep, key=lambda s: s["seconds_per_edit"])
    spe, per_hour = top["seconds_per_edit"], 3600.0 / top["seconds_per_edit"]
    at_stage = next((s for s in sweep if s["batch"] == stage_batch), None)
    what = (
        f"SDXL inpainting ({size}; random weights, {'fp16' if dev.type == 'cuda' else 'fp32'}, VAE in fp32) through "
        f"Inpainter.fill as {STAGE} runs it: {px} px, {steps} steps ({denoise} at strength "
        f"{settings.get('strength', 1.0)}), CFG {settings.get('guidance_scale')}, batch {top['batch']}, {dev.type}"
    )
    cmp = f"Step1X-Edit publishes {STEP1X_EDIT_S:.0f} s per edit at 1024 px (batch 1, 28 steps, one H800)" + (
        f", {STEP1X_EDIT_S / spe:.1f}x this" if px == 1024 and dev.type == "cuda" else ""
    )
    detail = (
        f"{per_hour:,.0f} edits per GPU-hour; {cmp}; "
        + (
            f"the recipe's batch_size {stage_batch}: {at_stage['seconds_per_edit']:.2f} s/edit; "
            if at_stage
            else f"the recipe's batch_size {stage_batch} not reached; "
        )
        + (f"peak mem {top['peak_mem_gib']} GiB; " if dev.type == "cuda" else "")
        + f"one timed call per batch size after a batch-1 warm-up ({warm_s:.1f} s); build + save {build_s:.0f} s, "
        f"load {load_s:.0f} s"
    )
    sweep_value = ", ".join(f"{s['batch']}: {s['seconds_per_edit']:.2f}" for s in sweep) + " s/edit"
    write(
        args.json,
        "inpaint",
        [
            row(
                "inpaint_seconds_per_edit",
                what,
                f"{spe:.2f} s/edit",
                detail,
                seconds_per_edit=spe,
                edits_per_gpu_hour=per_hour,
                batch=top["batch"],
                px=px,
                steps=steps,
                denoising_steps=denoise,
                peak_mem_gib=top["peak_mem_gib"],
                build_s=build_s,
                load_s=load_s,
                warmup_s=warm_s,
            ),
            row(
                "inpaint_batch_sweep",
                f"the same call per batch size (batch: seconds per edit), {px} px, {steps} steps",
                sweep_value,
                f"stops when the next size would pass {args.deadline:.0f} s since start, gains under 3% or runs "
                "out of memory",
                sweep=sweep,
            ),
        ],
        metrics={
            "inpaint_seconds_per_edit": spe,
            "inpaint_edits_per_gpu_hour": per_hour,
            "inpaint_best_batch": top["batch"],
            "inpaint_reference_step1x_edit_seconds_per_edit": STEP1X_EDIT_S,
        },
    )


if __name__ == "__main__":
    main()
