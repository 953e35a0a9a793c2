"""GPU check, part `kmeans`: spherical K-means on 1M x 1152 unit vectors (SigLIP SO400M's width), as
datagen/pairing/kmeans.py runs it (faiss.Kmeans, spherical, random init, no subsampling by faiss), at two sizes:
K = 1,000 for 20 iterations (bench/RESULTS.md's CPU figure is for this K) and K = 50,000 for 10 iterations
(configs/ace_full.yaml's cluster count; 10 iterations keep the check short, the per-iteration time is reported).

When `import faiss` fails or this faiss has no GPU, a clearly labelled stand-in runs instead: the same spherical
K-means written in torch on the GPU (fp32 matmuls, no TF32, chunked assignment), so the figure still tells what
the GPU does; it is NOT faiss's figure. The data are a seeded mixture of Gaussians made on the device (the time
per iteration depends on n, d and K, not on the values)."""

from __future__ import annotations

import time

from gpu_common import device, parser, row, sync, write


def mixture(n: int, d: int, centres: int, dev, seed: int = 0):
    import torch

    g = torch.Generator(device=dev).manual_seed(seed)
    c = torch.randn(centres, d, generator=g, device=dev)
    x = torch.empty(n, d, device=dev)
    step = 131072
    for i in range(0, n, step):  # in slices: the whole noise tensor at once would double the peak memory
        m = min(step, n - i)
        a = torch.randint(0, centres, (m,), generator=g, device=dev)
        x[i : i + m] = c[a] + 0.7 * torch.randn(m, d, generator=g, device=dev)
    return torch.nn.functional.normalize(x, dim=1)


def faiss_gpus() -> tuple[object | None, str]:
    """(faiss module or None, why not)."""
    try:
        import faiss
    except Exception as e:  # noqa: BLE001
        return None, f"faiss is not installed here ({type(e).__name__}: {e})"
    n = faiss.get_num_gpus() if hasattr(faiss, "get_num_gpus") else 0
    return faiss, ("" if n else f"faiss {faiss.__version__} has no GPU (CPU build or no visible GPU)")


def faiss_kmeans(faiss, x_np, k: int, niter: int, gpu: bool):
    km = faiss.Kmeans(
        x_np.shape[1],
        k,
        niter=niter,
        spherical=True,
        seed=1,
        gpu=gpu,
        max_points_per_centroid=max(1, -(-len(x_np) // k)),
        min_points_per_centroid=1,
        verbose=False,
    )
    t0 = time.perf_counter()
    km.train(x_np)
    return time.perf_counter() - t0, float(km.obj[-1]) / len(x_np)


def torch_kmeans(x, k: int, niter: int, seed: int = 1):
    """Spherical K-means (Lloyd): assign each row to the centroid of largest cosine, centroid = normalised sum
    of its rows (an empty cluster keeps its centroid). Random rows as the initial centroids, as faiss does."""
    import torch

    dev = x.device
    sync(dev)
    t0 = time.perf_counter()
    g = torch.Generator(device=dev).manual_seed(seed)
    c = x[torch.randperm(len(x), generator=g, device=dev)[:k]].clone()
    chunk = max(1024, int(2e9 // (4 * k)))  # at most ~2 GB of scores at a time
    assign = torch.empty(len(x), dtype=torch.long, device=dev)
    obj = 0.0
    for _ in range(niter):
        total = torch.zeros((), device=dev, dtype=torch.float64)
        for i in range(0, len(x), chunk):
            s, a = (x[i : i + chunk] @ c.T).max(dim=1)
            assign[i : i + chunk] = a
            total += s.sum(dtype=torch.float64)
        sums = torch.zeros_like(c).index_add_(0, assign, x)
        counts = torch.bincount(assign, minlength=k)
        c = torch.where((counts > 0)[:, None], torch.nn.functional.normalize(sums, dim=1), c)
        obj = float(total) / len(x)
    sync(dev)
    return time.perf_counter() - t0, obj


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--d", type=int, default=1152)
    ap.add_argument("--runs", default="1000:20,50000:10", help="K:iterations, comma separated")
    args = ap.parse_args()

    import torch

    dev = device(args.cpu_smoke)
    torch.backends.cuda.matmul.allow_tf32 = False  # fp32 like faiss's default GPU index
    if args.cpu_smoke:
        args.n, args.d, args.runs = 3000, 32, "10:5,50:3"
    runs = [tuple(int(v) for v in r.split(":")) for r in args.runs.split(",")]
    t0 = time.perf_counter()
    x = mixture(args.n, args.d, 2000 if not args.cpu_smoke else 20, dev)
    sync(dev)
    make_s = time.perf_counter() - t0

    faiss, why_not = faiss_gpus()
    use_faiss = faiss is not None and (not why_not or args.cpu_smoke)  # smoke: faiss-cpu checks the same call
    if use_faiss:
        x_np = x.cpu().numpy()
        engine = f"faiss {faiss.__version__} {'GPU' if not why_not else 'CPU (smoke)'}"
    else:
        engine = (
            "torch K-means on GPU - STAND-IN, NOT faiss"
            if dev.type == "cuda"
            else "torch K-means on CPU - STAND-IN, NOT faiss"
        )

    rows = []
    for i, (k, niter) in enumerate(runs):
        if use_faiss:
            s, obj = faiss_kmeans(faiss, x_np, k, niter, gpu=not why_not)
        else:
            s, obj = torch_kmeans(x, k, niter)
        key = ("kmeans_small_k", "kmeans_large_k")[i] if len(runs) == 2 else f"kmeans_{i}"
        what = f"{engine}: spherical K-means {args.n:,} x {args.d}, K={k:,}, {niter} iterations"
        note = f"{why_not}; " if why_not else ""
        rows.append(
            row(
                key,
                what,
                f"{s:.3g} s",
                f"{note}{1000 * s / niter:.0f} ms/iteration; mean cosine {obj:.3f}; data made in {make_s:.1f} s",
                seconds=s,
                iterations=niter,
                k=k,
                n=args.n,
                d=args.d,
                engine=engine,
                is_faiss=use_faiss,
                mean_cosine=obj,
            )
        )
    write(args.json, "kmeans", rows)


if __name__ == "__main__":
    main()
