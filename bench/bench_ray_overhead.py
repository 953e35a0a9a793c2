"""Ray's overhead on the demo slice: the same operators over the same images, once through the Ray Data
streaming pipeline (embedded local Ray) and once in a plain Python loop. Prints a table.

    python bench/bench_ray_overhead.py [--copies 4] [--operators grayscale,canny] [--max-side 512]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("RAY_AUTH_MODE", "disabled")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from datagen.ingest.listing import builtin_photos  # noqa: E402
from pipelines import load_recipe, run  # noqa: E402


def make_inputs(root: Path, copies: int) -> int:
    n = 0
    for c in range(copies):
        d = root / f"copy{c}"
        d.mkdir(parents=True)
        for rel, p in builtin_photos():
            shutil.copy(p, d / rel.replace("/", "_"))
            n += 1
    return n


def one(executor: str, inp: Path, out: Path, args) -> dict:
    overrides = [
        f"input.path={inp}",
        f"output.dir={out}",
        f"runtime.executor={executor}",
        "runtime.progress=false",
        "pairing.enabled=false",
        "instructions.methods=[template]",
        f"input.max_side={args.max_side}",
        f"input.images_per_partition={args.per_partition}",
    ]
    recipe = load_recipe("configs/demo.yaml", overrides)
    keep = set(args.operators.split(",")) if args.operators else set(recipe.operators)
    for name, cfg in recipe.operators.items():
        cfg.enabled = name in keep
    t0 = time.perf_counter()
    summary = run(recipe, progress=False)
    wall = time.perf_counter() - t0
    return {"wall": wall, "samples": summary["samples"], "images": summary["decoded"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--copies", type=int, default=4, help="copies of the shipped photos (17 each)")
    ap.add_argument("--operators", default="grayscale,canny", help="comma list, empty for all in demo.yaml")
    ap.add_argument("--max-side", type=int, default=512)
    ap.add_argument("--per-partition", type=int, default=8)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench_ray_"))
    n = make_inputs(tmp / "in", args.copies)
    import ray

    t0 = time.perf_counter()
    ray.init(include_dashboard=False, log_to_driver=False)
    startup = time.perf_counter() - t0
    rows = [
        ("plain loop", one("local", tmp / "in", tmp / "local", args)),
        ("Ray Data (warm)", one("ray", tmp / "in", tmp / "ray", args)),
    ]
    ray.shutdown()
    print(
        f"\n{n} images at max side {args.max_side}, operators: {args.operators or 'all in demo.yaml'}, "
        f"{os.cpu_count()} CPUs; Ray startup {startup:.1f}s (not included below)\n"
    )
    print(f"{'executor':<18}{'wall s':>9}{'images/s':>11}{'samples/s':>11}{'vs loop':>9}")
    base = rows[0][1]["wall"]
    for name, r in rows:
        wall = r["wall"]
        print(f"{name:<18}{wall:>9.2f}{r['images'] / wall:>11.1f}{r['samples'] / wall:>11.1f}{base / wall:>8.2f}x")
    assert rows[0][1]["samples"] == rows[1][1]["samples"], "both executors must make the same samples"
    shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
