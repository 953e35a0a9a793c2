"""Throughput of each condition operator (images/s on one core at 512px) next to controlnet_aux's weight-free
detectors in the same run: CannyDetector against our canny, LineartStandardDetector against our contour and
scribble line drawings. The rest have no weight-free peer and are reported absolute. Prints a table.

    python bench/bench_conditions.py [--side 512] [--seconds 3] [--models]

--models adds the model backends at their published sizes (random weights of the real architectures: the cost
is the same), which on a CPU take seconds per image.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

# one core for every library before any of them starts its thread pool
for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[var] = "1"
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import cv2  # noqa: E402
import numpy as np  # noqa: E402

cv2.setNumThreads(1)

PHOTOS = ("astronaut.png", "chelsea.png", "coffee.png", "motorcycle_left.png", "rocket.jpg", "china.jpg")


def load_photos(side: int) -> list[np.ndarray]:
    from datagen.ingest.listing import builtin_photos

    paths = {rel.rsplit("/", 1)[-1]: p for rel, p in builtin_photos()}
    out = []
    for name in PHOTOS:
        bgr = cv2.imread(paths[name], cv2.IMREAD_COLOR)
        s = side / max(bgr.shape[:2])
        out.append(cv2.cvtColor(cv2.resize(bgr, None, fx=s, fy=s, interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2RGB))
    return out


def rate(fn, photos: list[np.ndarray], seconds: float, trials: int = 3) -> float:
    """Images per second of fn(photo, i) over the photos: the best of `trials` runs of at least seconds/trials each,
    after one warm-up pass (the best, not the mean, because other processes on the machine only ever slow a run)."""
    for i, p in enumerate(photos[:2]):
        fn(p, i)
    best, k = 0.0, 0
    for _ in range(trials):
        n, t0 = 0, time.perf_counter()
        while True:
            for p in photos:
                fn(p, k)
                k += 1
            n += len(photos)
            dt = time.perf_counter() - t0
            if dt >= seconds / trials:
                break
        best = max(best, n / dt)
    return best


def ours(name: str, config=None):
    from pipelines.catalog import OPERATORS

    op = OPERATORS[name](config)
    op.setup()

    def run(photo, i):
        return op.make_conditions([photo], [np.random.default_rng(i)])

    return run


def repainting():
    from datagen.batch import SourceImage, WorkBatch
    from operators.conditions.repainting import Repainting

    op = Repainting()

    def run(photo, i):
        op.process(WorkBatch("img-00000", {}, i, "bench", items=[SourceImage("bench", str(i), photo)]))

    return run


def model_configs(tmp: Path) -> dict[str, object]:
    """Published-size models with random weights, saved and loaded through the operators' own loaders."""
    import torch

    from operators.conditions.contour import ContourConfig
    from operators.conditions.doodle import DoodleConfig
    from operators.conditions.hed import build_hed
    from operators.conditions.informative_drawings import build_generator

    torch.set_num_threads(1)
    tmp.mkdir(parents=True, exist_ok=True)
    gen, hed = tmp / "netG_A_latest.pth", tmp / "ControlNetHED.pth"
    torch.save(build_generator().state_dict(), gen)
    torch.save(build_hed().state_dict(), hed)
    return {
        "contour (informative-drawings)": (
            "contour",
            ContourConfig(backend="model", checkpoint=str(gen), device="cpu"),
        ),
        "doodle (HED)": ("doodle", DoodleConfig(backend="model", checkpoint=str(hed), device="cpu")),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--side", type=int, default=512)
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--models", action="store_true", help="also time the model backends (slow on CPU)")
    args = ap.parse_args()

    from controlnet_aux import CannyDetector, LineartStandardDetector

    from operators.conditions.doodle import DoodleConfig
    from operators.conditions.segmentation import SegmentationConfig

    photos = load_photos(args.side)
    canny_peer, lineart_peer = CannyDetector(), LineartStandardDetector()
    peers = {
        "CannyDetector": lambda p, i: canny_peer(
            p, detect_resolution=args.side, image_resolution=args.side, output_type="np"
        ),
        "LineartStandardDetector": lambda p, i: lineart_peer(p, detect_resolution=args.side, output_type="np"),
    }
    rows = [
        ("canny", ours("canny"), "CannyDetector"),
        ("contour (XDoG)", ours("contour"), "LineartStandardDetector"),
        ("scribble (XDoG)", ours("scribble"), "LineartStandardDetector"),
        ("grayscale", ours("grayscale"), None),
        ("mosaic", ours("mosaic"), None),
        ("degradation", ours("degradation"), None),
        ("doodle (region outlines)", ours("doodle"), None),
        ("doodle (old: gradient)", ours("doodle", DoodleConfig(edges="gradient")), None),
        ("segmentation (object regions)", ours("segmentation"), None),
        ("segmentation (old: Felzenszwalb)", ours("segmentation", SegmentationConfig(method="felzenszwalb")), None),
        ("repainting", repainting(), None),
    ]
    if args.models:
        import tempfile

        for label, (name, cfg) in model_configs(Path(tempfile.mkdtemp(prefix="bench_cond_"))).items():
            rows.append((label, ours(name, cfg), None))

    print(
        f"\n{len(photos)} photos at long side {args.side}, one thread (cv2, torch, BLAS), best of 3 runs in "
        f"{args.seconds}s per row\n"
    )
    print(f"{'operator':<32}{'ours img/s':>12}  {'controlnet_aux peer':<26}{'peer img/s':>11}{'ours/peer':>11}")
    for label, fn, peer in rows:
        if peer:
            # the peer is timed right next to ours, so both see the same machine load
            pr = rate(peers[peer], photos, args.seconds)
            r = rate(fn, photos, args.seconds)
            print(f"{label:<32}{r:>12.1f}  {peer:<26}{pr:>11.1f}{r / pr:>10.2f}x")
            continue
        r = rate(fn, photos, args.seconds)
        print(f"{label:<32}{r:>12.1f}  {'-':<26}{'-':>11}{'-':>11}")


if __name__ == "__main__":
    main()
