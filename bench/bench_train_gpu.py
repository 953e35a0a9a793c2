"""GPU training benchmark of the ACE DiT: samples/s, image tokens/s and MFU of a config (default ACE's 0.6B at
512px) in bf16 autocast, with AdamW, one process or DDP/FSDP under torchrun. Prints a table.

    python bench/bench_train_gpu.py [--size ACE-0.6B] [--resolution 512] [--frames 2] [--batch 8]
    torchrun --nproc_per_node 8 bench/bench_train_gpu.py --strategy fsdp

What is timed: the DiT's forward, backward and optimiser step on inputs laid out exactly as the loader lays out a
batch (every sample: `frames` frames = inputs + target, one CU text of `text-tokens` T5 states), as the trainer runs
it: blocks compiled on CUDA (`--no-compile` to compare), fused AdamW, no host sync in the step. Every text token
valid by default, so attention takes no mask (the flash path); `--text-valid K` pads texts to K valid tokens, which
takes the masked kernel (`--attention flex|sdpa`). `--encoders online` adds what training without the latents job
costs: the frozen VAE (SD's architecture) encoding every frame and T5-XXL every text, each step (random weights at
the published sizes); `--encoders both` prints both rows, `precomputed` being the DiT step alone.
MFU = model FLOPs (forward x 3, counted analytically, no recomputation) / peak dense bf16 FLOPs of the GPU.
`--cpu-smoke` runs a tiny config on CPU to check the code path and the FLOP formula against torch's counter.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from datagen.trainer.distributed import DistInfo, all_gather_objects, cleanup, init_distributed, wrap_model  # noqa: E402
from datagen.trainer.models import ACEDiT, FrameLayout, attention_plan, count_params, size_spec  # noqa: E402

# dense bf16 tensor-core peaks (no sparsity), from the vendors' datasheets
PEAK_BF16 = {"H200": 989e12, "H100 PCIe": 756e12, "H100": 989e12, "A100": 312e12, "L40S": 362e12, "B200": 2250e12}


def peak_flops(name: str, override: float | None) -> float | None:
    if override:
        return override * 1e12
    for key, v in PEAK_BF16.items():  # longest names first where they share a prefix (H100 PCIe before H100)
        if key in name:
            return v
    return None


def forward_flops(
    spec: dict,
    frames: int,
    side: int,
    text_tokens: int,
    text_dim: int,
    latent_channels: int = 4,
    mlp_ratio: float = 4.0,
    parts: bool = False,
) -> float | dict[str, float]:
    """FLOPs of one sample's forward pass (2 per multiply-add), as the model computes them: linear layers and
    patch convolutions, plus attention (scores and weighted sums). The timestep MLP (per sample, tiny) is left out."""
    D, depth, p = spec["hidden"], spec["depth"], spec["patch"]
    cells = (side // (8 * p)) ** 2
    L, S = frames * cells, text_tokens
    linear = depth * (
        2 * L * 4 * D * D  # qkv + proj of self-attention
        + 2 * L * 2 * D * D  # q + proj of cross-attention
        + 2 * S * 2 * D * D  # k, v of the text
        + 2 * L * 2 * D * int(D * mlp_ratio)  # MLP
    )
    linear += 2 * L * D * p * p * latent_channels + 2 * S * (text_dim * D + D * D)  # final layer, caption projection
    conv = 2 * L * (2 * latent_channels + 1) * p * p * D  # patch embedding
    attention = depth * (4 * L * L * D + 4 * L * S * D)  # self over all frames of the sample; cross to the CU text
    if parts:
        return {"linear": linear, "conv": conv, "attention": attention}
    return linear + conv + attention


def synthetic_batch(B: int, frames: int, side: int, text_tokens: int, text_dim: int, device, latent_channels: int = 4):
    h = side // 8
    N = B * frames
    t = torch.tensor
    layout = FrameLayout(
        frame_sample=t([b for b in range(B) for _ in range(frames)]),
        frame_slot=t([f for _ in range(B) for f in range(frames)]),
        frame_text=t([b for b in range(B) for _ in range(frames)]),
        frame_indicator=t([1 if f == frames - 1 else f + 2 for _ in range(B) for f in range(frames)]),
        text_sample=t(list(range(B))),
        text_slot=t([0] * B),
        n_samples=B,
    ).to(device)
    x = torch.randn(N, 2 * latent_channels + 1, h, h, device=device)
    target = torch.randn(N, latent_channels, h, h, device=device)
    text = torch.randn(B, text_tokens, text_dim, device=device)
    valid = torch.ones(B, text_tokens, dtype=torch.bool, device=device)
    ind = torch.zeros(B, text_tokens, dtype=torch.long, device=device)
    return x, target, text, valid, ind, layout


def check_flop_formula() -> None:
    """Compare the analytic count with torch's FlopCounterMode on a tiny config (CPU, fp32). The counter does
    not see CPU scaled_dot_product_attention, so attention is compared on its own formula only."""
    from torch.utils.flop_counter import FlopCounterMode

    spec = size_spec("tiny")
    model = ACEDiT(latent_channels=4, text_dim=32, **spec)
    x, _, text, valid, ind, layout = synthetic_batch(2, 3, 64, 16, 32, "cpu")
    with FlopCounterMode(display=False) as fc:
        model(x, torch.rand(2), text, valid, ind, layout)
    counts = {str(k): v / 2 for k, v in fc.get_flop_counts()["Global"].items()}  # per sample
    parts = forward_flops(spec, 3, 64, 16, 32, parts=True)
    mine = parts["linear"] + parts["conv"]
    counted = counts.get("aten.addmm", 0) + counts.get("aten.mm", 0) + counts.get("aten.convolution", 0)
    print(
        f"FLOP formula check (tiny, per sample): linear+conv analytic {mine:.5g}, torch counter {counted:.5g} "
        f"(ratio {mine / counted:.3f}; the counter also has the timestep MLP); attention {parts['attention']:.4g} "
        f"(analytic)"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", default="ACE-0.6B")
    ap.add_argument("--resolution", type=int, default=512, help="square frames of this side (1024 tokens at 512)")
    ap.add_argument("--frames", type=int, default=2, help="frames per sample: inputs + target (2 = one-input CU)")
    ap.add_argument("--batch", type=int, default=8, help="samples per GPU")
    ap.add_argument("--text-tokens", type=int, default=120)
    ap.add_argument("--text-dim", type=int, default=4096, help="T5 width (4096 = T5-v1.1-XXL)")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--strategy", choices=["auto", "ddp", "fsdp"], default="auto")
    ap.add_argument("--grad-checkpointing", action="store_true")
    ap.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None, help="default: on with CUDA")
    ap.add_argument(
        "--attention", choices=["sdpa", "flex"], default=None, help="masked batches; default: flex if compiled"
    )
    ap.add_argument("--text-valid", type=int, default=None, help="valid tokens per text (default: all)")
    ap.add_argument("--encoders", choices=["precomputed", "online", "both"], default="precomputed")
    ap.add_argument("--peak-tflops", type=float, help="override the GPU's dense bf16 peak")
    ap.add_argument("--cpu-smoke", action="store_true", help="no GPU: a tiny config on CPU, to check the code path")
    args = ap.parse_args()

    if args.cpu_smoke:
        torch.set_num_threads(1)
        check_flop_formula()
        args.size, args.resolution, args.batch, args.text_dim, args.text_tokens, args.steps, args.warmup = (
            "tiny",
            64,
            2,
            32,
            16,
            3,
            1,
        )
        if args.attention == "flex":
            args.attention = "sdpa"  # flex attention has no backward pass on CPU
    elif not torch.cuda.is_available():
        print("no CUDA device: this benchmark measures GPU training (use --cpu-smoke to check the code path on CPU)")
        return
    info = (
        init_distributed()
        if int(os.environ.get("WORLD_SIZE", "1")) > 1
        else DistInfo(
            0,
            1,
            0,
            torch.device("cuda", 0) if torch.cuda.is_available() and not args.cpu_smoke else torch.device("cpu"),
        )
    )
    device = info.device
    bf16 = device.type == "cuda"
    if args.compile is None:
        args.compile = device.type == "cuda"
    if args.attention is None:
        args.attention = "flex" if args.compile and device.type == "cuda" else "sdpa"
    spec = size_spec(args.size)
    torch.manual_seed(0)
    model = ACEDiT(
        latent_channels=4,
        text_dim=args.text_dim,
        grad_checkpointing=args.grad_checkpointing,
        attention=args.attention,
        **spec,
    )
    n_params = count_params(model)
    strategy = {"auto": "ddp" if info.world > 1 else "none"}.get(args.strategy, args.strategy)
    if info.world == 1 and strategy == "ddp":
        strategy = "none"
    if args.compile:
        model.compile_blocks()
    model = wrap_model(model.to(device), strategy, info, bf16)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=device.type == "cuda")  # under FSDP too
    x, target, text, valid, ind, layout = synthetic_batch(
        args.batch, args.frames, args.resolution, args.text_tokens, args.text_dim, device
    )
    if args.text_valid is not None:
        valid[:, args.text_valid :] = False
    layout.with_text_valid(valid.cpu())
    plan = attention_plan(layout, None, args.attention)
    encoders = None

    def step(online: bool) -> None:
        if online:  # what the latents job saves: the frozen encoders' forward passes, every step
            vae, t5, pixels, ids = encoders
            with torch.no_grad():
                vae.encode(pixels).latent_dist.mean
                t5(input_ids=ids, attention_mask=valid.long()).last_hidden_state
        t = torch.rand(args.batch, device=device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            pred = model(x, t, text, valid, ind, layout)
        loss = (pred.float() - target).pow(2).mean()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    peak = peak_flops(name, args.peak_tflops)
    modes = ["precomputed", "online"] if args.encoders == "both" else [args.encoders]
    results = []
    for mode in modes:
        if mode == "online" and encoders is None:
            try:
                encoders = build_encoders(args, device, bf16)
            except ImportError as e:  # the lent GPU machine has no diffusers unless its wheel is carried
                print(f"online encoders: not measured ({e})")
                continue
        for _ in range(args.warmup):
            step(mode == "online")
        sync()
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        t0 = time.perf_counter()
        for _ in range(args.steps):
            step(mode == "online")
        sync()
        dt = (time.perf_counter() - t0) / args.steps
        mem = torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else 0.0
        step_s = max(all_gather_objects(info, dt))  # the slowest rank sets the pace
        samples = args.batch * info.world / step_s
        tokens = samples * args.frames * (args.resolution // (8 * spec["patch"])) ** 2
        train_flops = 3 * forward_flops(spec, args.frames, args.resolution, args.text_tokens, args.text_dim) * samples
        mfu = f"{100 * train_flops / (peak * info.world):.1f}%" if peak else "n/a (unknown peak; --peak-tflops)"
        results.append((mode, step_s, samples, tokens, train_flops, mfu, mem))
    if info.rank != 0:
        cleanup(info)
        return
    print(
        f"\n{name} x{info.world}, strategy {strategy}, {'bf16 autocast' if bf16 else 'fp32'}, compile={args.compile}, "
        f"attention self/cross {plan[0]}/{plan[1]} (dense = no mask: flash), masked kernel {args.attention}, "
        f"fused AdamW {device.type == 'cuda'}, grad_ckpt={args.grad_checkpointing}"
    )
    widths = (10, 11, 7, 4, 6, 9, 8, 9, 9, 8, 6, 7)
    heads = ("config", "encoders", "params", "res", "frames", "batch/GPU", "step ms", "samples/s", "tokens/s")
    heads += ("TFLOP/s", "MFU", "mem GiB")
    print("| " + " | ".join(f"{h:>{w}}" for h, w in zip(heads, widths)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for mode, step_s, samples, tokens, train_flops, mfu, mem in results:
        cells = (args.size, mode, f"{n_params / 1e6:.0f}M", args.resolution, args.frames, args.batch)
        cells += (f"{1000 * step_s:.1f}", f"{samples:.1f}", f"{tokens:.0f}", f"{train_flops / 1e12:.1f}", mfu)
        cells += (f"{mem:.1f}",)
        print("| " + " | ".join(f"{c:>{w}}" for c, w in zip(cells, widths)) + " |")
    cleanup(info)


def build_encoders(args, device, bf16: bool):
    """SD's VAE and a T5-v1.1-XXL encoder (4.7B) at their published sizes with random weights, built on the device
    in bf16 (tiny ones with --cpu-smoke), and one batch of pixels and token ids for them."""
    from diffusers import AutoencoderKL
    from transformers import T5Config, T5EncoderModel

    dtype = torch.bfloat16 if bf16 else torch.float32
    if args.cpu_smoke:
        vae_kw = dict(block_out_channels=(16, 16, 32, 32), layers_per_block=1, norm_num_groups=8)
        t5_kw = dict(d_model=args.text_dim, d_kv=8, d_ff=64, num_layers=2, num_heads=4, vocab_size=512)
    else:
        vae_kw = dict(block_out_channels=(128, 256, 512, 512), layers_per_block=2)
        t5_kw = dict(d_model=4096, d_kv=64, d_ff=10240, num_layers=24, num_heads=64, vocab_size=32128)
    with torch.device(device):
        vae = AutoencoderKL(
            down_block_types=("DownEncoderBlock2D",) * 4,
            up_block_types=("UpDecoderBlock2D",) * 4,
            latent_channels=4,
            **vae_kw,
        ).to(dtype)
        t5 = T5EncoderModel(T5Config(feed_forward_proj="gated-gelu", **t5_kw)).to(dtype)
    vae.eval().requires_grad_(False)
    t5.eval().requires_grad_(False)
    pixels = torch.rand(args.batch * args.frames, 3, args.resolution, args.resolution, device=device, dtype=dtype)
    ids = torch.randint(0, t5.config.vocab_size, (args.batch, args.text_tokens), device=device)
    return vae, t5, pixels.contiguous(memory_format=torch.channels_last), ids


if __name__ == "__main__":
    main()
