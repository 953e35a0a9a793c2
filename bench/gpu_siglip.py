"""GPU check, part `siglip`: image-embedding throughput of SigLIP SO400M/14 at 384 px in bf16 (images/s, MFU).

The model is timm's `vit_so400m_patch14_siglip_384` (the vision tower of the SigLIP SO400M checkpoint that
configs/ace_full.yaml pairs with), randomly initialised at its real size: the speed of a forward pass does not
depend on the weights, and nothing can be downloaded on the lent machine. Inputs are random pixels already
resized and normalised: this is the model alone (bench/gpu_siglip_operator.py times the operator from JPEG files).
The model runs as the operator runs it on CUDA: bf16, SDPA restricted to the flash / memory-efficient kernels, and
torch.compile for one batch shape. First a sweep of batch sizes in eager mode (a few steps each), then the best
one compiled and timed; the faster of eager and compiled is the figure. TFLOP/s and MFU come from an analytic
count of the ViT's matmuls and attention (2 FLOPs per multiply-add). The part's JSON carries `metrics`:
siglip_model_images_per_s, siglip_model_mfu (a fraction; null without a known peak, as on the CPU)."""

from __future__ import annotations

import sys
import time

from gpu_common import ROOT, device, parser, peak_bf16, peak_mem_gib, row, sync, write

sys.path.insert(0, str(ROOT))

ARCH = "vit_so400m_patch14_siglip_384"


def vit_forward_flops(model, tokens: int) -> float:
    """FLOPs of one image's forward pass: patch embedding, per block qkv/proj/MLP matmuls and attention, and the
    attention-pooling (MAP) head's single query."""
    D = model.embed_dim
    blocks = list(model.blocks)
    hidden = blocks[0].mlp.fc1.out_features
    patch = model.patch_embed.proj
    per_block = 2 * tokens * (4 * D * D + 2 * D * hidden) + 4 * tokens * tokens * D
    embed = 2 * tokens * patch.in_channels * patch.kernel_size[0] * patch.kernel_size[1] * D
    head = (
        2 * tokens * 2 * D * D + 2 * (2 * D * D + 2 * D * hidden)
        if getattr(model, "attn_pool", None) is not None
        else 0
    )
    return len(blocks) * per_block + embed + head


def timed(model, x, warmup: int, steps: int, max_seconds: float, dev) -> tuple[float, int, object]:
    """(seconds, steps run, last output) of `steps` forward passes after `warmup` untimed ones."""
    import torch

    with torch.inference_mode():
        for _ in range(warmup):
            emb = model(x)
        sync(dev)
        t0 = time.perf_counter()
        done = 0
        while done < steps:
            emb = model(x)
            done += 1
            if time.perf_counter() - t0 > max_seconds:
                sync(dev)
                if time.perf_counter() - t0 > max_seconds:
                    break
        sync(dev)
        return time.perf_counter() - t0, done, emb


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--batch", type=int, default=0, help="one batch size (0: the best of --sweep)")
    ap.add_argument("--sweep", default="64,128,256,384,512", help="batch sizes tried in eager mode")
    ap.add_argument("--no-compile", action="store_true", help="eager only")
    ap.add_argument("--attention", default="auto", help="SDPA kernels: auto (flash, efficient), flash, efficient, ...")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--max-seconds", type=float, default=30, help="stop a timed loop early past this")
    args = ap.parse_args()

    import timm
    import torch

    from operators.models.precision import attention_backends, attention_context, compile_fixed_shape

    dev = device(args.cpu_smoke)
    kw: dict = {"pretrained": False, "num_classes": 0}
    sweep = [int(b) for b in args.sweep.split(",") if b] if not args.batch else [args.batch]
    if args.cpu_smoke:  # the same timm class and code path at toy size; compile traced by the eager backend
        kw.update(img_size=56, embed_dim=64, depth=2, num_heads=2, mlp_ratio=2.0)
        sweep, args.warmup, args.steps = [2, 4], 1, 2
    torch.manual_seed(0)
    t0 = time.perf_counter()
    with dev:  # initialise on the device: the real model's CPU init alone takes many seconds
        model = timm.create_model(ARCH, **kw)
    dtype = torch.bfloat16 if dev.type == "cuda" else torch.float32
    model = model.to(dev, dtype).eval()
    build_s = time.perf_counter() - t0
    side = model.patch_embed.img_size[0]
    tokens = model.patch_embed.num_patches
    n_params = sum(p.numel() for p in model.parameters())
    per_image = vit_forward_flops(model, tokens)
    backends = attention_backends(args.attention, dev.type)

    swept: dict[int, float] = {}
    with attention_context(backends):
        for bs in sweep:
            x = torch.randn(bs, 3, side, side, device=dev, dtype=dtype)
            try:
                dt, done, _ = timed(model, x, 1, max(2, args.steps // 3), args.max_seconds / 3, dev)
            except torch.OutOfMemoryError:
                torch.cuda.empty_cache()
                break
            swept[bs] = bs * done / dt
            print(f"eager batch {bs}: {swept[bs]:,.1f} img/s", file=sys.stderr)
        batch = max(swept, key=swept.get)
        x = torch.randn(batch, 3, side, side, device=dev, dtype=dtype)
        if dev.type == "cuda":
            torch.cuda.reset_peak_memory_stats(dev)
        dt, done, emb = timed(model, x, args.warmup, args.steps, args.max_seconds, dev)
        eager_ips = batch * done / dt
        compiled_ips, compile_s = None, None
        if not args.no_compile:
            t0 = time.perf_counter()
            fast = compile_fixed_shape(model, backend="inductor" if dev.type == "cuda" else "eager")
            with torch.inference_mode():
                fast(x)
                sync(dev)
            compile_s = time.perf_counter() - t0
            cdt, cdone, cemb = timed(fast, x, args.warmup, args.steps, args.max_seconds, dev)
            compiled_ips = batch * cdone / cdt
            if compiled_ips > eager_ips:
                dt, done, emb = cdt, cdone, cemb
    assert emb.shape == (batch, model.embed_dim) and torch.isfinite(emb.float()).all()

    ips = batch * done / dt
    flops = per_image * ips
    peak = peak_bf16(dev)
    mfu = flops / peak if peak else None
    mode = "compiled" if compiled_ips is not None and ips == compiled_ips else "eager"
    name = "SigLIP SO400M/14" if not args.cpu_smoke else "SigLIP-arch toy (smoke)"
    attn = "/".join(b.name for b in backends) or "torch's choice"
    what = (
        f"{name} image embedding, {n_params / 1e6:.3g}M params, {side} px, batch {batch}, "
        f"{'bf16' if dtype == torch.bfloat16 else 'fp32'}, {mode}, SDPA {attn}, {dev.type}"
    )
    metrics = {"siglip_model_images_per_s": ips, "siglip_model_mfu": mfu}
    write(
        args.json,
        "siglip",
        [
            row(
                "siglip_img_per_s",
                what,
                f"{ips:,.1f} img/s",
                f"{1000 * dt / done:.1f} ms/batch over {done} timed steps after {args.warmup} warm-up; "
                f"{flops / 1e12:.1f} TFLOP/s, MFU {f'{100 * mfu:.1f}%' if mfu is not None else 'n/a'}; "
                f"eager {eager_ips:,.1f} img/s"
                + (f", compiled {compiled_ips:,.1f} img/s (compile {compile_s:.0f} s)" if compiled_ips else "")
                + f"; sweep {', '.join(f'{b}: {v:,.0f}' for b, v in swept.items())}; emb dim {model.embed_dim}; "
                + (f"peak mem {peak_mem_gib(dev)} GiB; " if dev.type == "cuda" else "")
                + f"build {build_s:.1f} s",
                images_per_s=ips,
                ms_per_batch=1000 * dt / done,
                steps=done,
                batch=batch,
                sweep=swept,
                eager_images_per_s=eager_ips,
                compiled_images_per_s=compiled_ips,
                compile_s=compile_s,
                attention=attn,
                px=side,
                tokens=tokens,
                params=n_params,
                tflops=flops / 1e12,
                mfu=mfu,
                peak_mem_gib=peak_mem_gib(dev),
                arch=ARCH,
                **metrics,
            )
        ],
        metrics=metrics,
    )


if __name__ == "__main__":
    main()
