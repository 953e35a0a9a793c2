"""GPU check, part `siglip`: image-embedding throughput of SigLIP SO400M/14 at 384 px in bf16 (images/s).

The model is timm's `vit_so400m_patch14_siglip_384` (the vision tower of the SigLIP SO400M checkpoint that
configs/ace_full.yaml pairs with), randomly initialised at its real size: the speed of a forward pass does not
depend on the weights, and nothing can be downloaded on the lent machine. Inputs are random pixels already
resized and normalised (decoding and resizing run on CPU workers in the pipeline and are not timed here). The
pooled 1152-d embedding is what the pairing job stores. Warm-up steps first, then timed steps; TFLOP/s and MFU
come from an analytic count of the ViT's matmuls and attention (2 FLOPs per multiply-add)."""

from __future__ import annotations

import time

from gpu_common import device, parser, peak_bf16, peak_mem_gib, row, sync, write

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


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--max-seconds", type=float, default=60, help="stop the timed loop early past this")
    args = ap.parse_args()

    import timm
    import torch

    dev = device(args.cpu_smoke)
    kw: dict = {"pretrained": False, "num_classes": 0}
    if args.cpu_smoke:  # the same timm class and code path at toy size
        kw.update(img_size=56, embed_dim=64, depth=2, num_heads=2, mlp_ratio=2.0)
        args.batch, args.warmup, args.steps = 4, 1, 2
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
    x = torch.randn(args.batch, 3, side, side, device=dev, dtype=dtype)

    with torch.inference_mode():
        for _ in range(args.warmup):
            emb = model(x)
        sync(dev)
        if dev.type == "cuda":
            torch.cuda.reset_peak_memory_stats(dev)
        t0 = time.perf_counter()
        done = 0
        while done < args.steps:
            emb = model(x)
            done += 1
            if time.perf_counter() - t0 > args.max_seconds:
                sync(dev)
                if time.perf_counter() - t0 > args.max_seconds:
                    break
        sync(dev)
        dt = time.perf_counter() - t0
    assert emb.shape == (args.batch, model.embed_dim) and torch.isfinite(emb.float()).all()

    ips = args.batch * done / dt
    flops = vit_forward_flops(model, tokens) * ips
    peak = peak_bf16(dev)
    mfu = f"{100 * flops / peak:.1f}%" if peak else "n/a"
    name = "SigLIP SO400M/14" if not args.cpu_smoke else "SigLIP-arch toy (smoke)"
    what = (
        f"{name} image embedding, {n_params / 1e6:.3g}M params, {side} px, batch {args.batch}, "
        f"{'bf16' if dtype == torch.bfloat16 else 'fp32'}, {dev.type}"
    )
    write(
        args.json,
        "siglip",
        [
            row(
                "siglip_img_per_s",
                what,
                f"{ips:,.1f} img/s",
                f"{1000 * dt / done:.1f} ms/batch over {done} timed steps after {args.warmup} warm-up; "
                f"{flops / 1e12:.1f} TFLOP/s, MFU {mfu}; emb dim {model.embed_dim}; "
                + (f"peak mem {peak_mem_gib(dev)} GiB; " if dev.type == "cuda" else "")
                + f"build {build_s:.1f} s",
                images_per_s=ips,
                ms_per_batch=1000 * dt / done,
                steps=done,
                batch=args.batch,
                px=side,
                tokens=tokens,
                params=n_params,
                tflops=flops / 1e12,
                mfu=mfu,
                peak_mem_gib=peak_mem_gib(dev),
                arch=ARCH,
            )
        ],
    )


if __name__ == "__main__":
    main()
