"""Peak memory of a streaming run over many small images: the whole process tree (driver, Ray workers, raylet,
object store) is sampled while `datagen run` works through N images; bounded memory means the peak stays flat as
N grows. Prints a table.

    python bench/bench_memory.py [--sizes 10000,100000] [--side 64] [--executor ray]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import psutil

ROOT = Path(__file__).resolve().parents[1]


def make_images(root: Path, n: int, side: int) -> None:
    """n distinct small photos: random crops of the shipped photos (real content, unique bytes)."""
    sys.path.insert(0, str(ROOT))
    from datagen.ingest.listing import builtin_photos

    photos = [cv2.imread(p) for _, p in builtin_photos()]
    rng = np.random.default_rng(0)
    root.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        img = photos[i % len(photos)]
        h, w = img.shape[:2]
        s = int(rng.integers(side, min(h, w)))
        y, x = int(rng.integers(0, h - s + 1)), int(rng.integers(0, w - s + 1))
        crop = cv2.resize(img[y : y + s, x : x + s], (side, side), interpolation=cv2.INTER_AREA)
        sub = root / f"{i // 1000:04d}"
        sub.mkdir(exist_ok=True)
        cv2.imwrite(str(sub / f"{i:07d}.jpg"), crop, [cv2.IMWRITE_JPEG_QUALITY, 90])


def tree_rss(pid: int) -> tuple[int, int]:
    """(driver RSS, RSS of the driver and everything it started plus Ray's daemons) in bytes."""
    try:
        proc = psutil.Process(pid)
        procs = [proc, *proc.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0, 0
    seen = {p.pid for p in procs}
    for p in psutil.process_iter(["cmdline"]):  # raylet/gcs may be reparented
        cmd = " ".join(p.info["cmdline"] or [])
        if p.pid not in seen and ("raylet" in cmd or "gcs_server" in cmd or "ray::" in cmd):
            procs.append(p)
    total = 0
    for p in procs:
        try:
            total += p.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    try:
        driver = proc.memory_info().rss
    except psutil.NoSuchProcess:
        driver = 0
    return driver, total


def measure(inp: Path, out: Path, args) -> dict:
    # the lean recipe with grayscale only: this measures the streaming machinery, not an operator's working set
    cmd = [
        sys.executable,
        "-m",
        "pipelines.cli",
        "run",
        "tests/tiny_recipe.yaml",
        f"input.path={inp}",
        f"output.dir={out}",
        f"runtime.executor={args.executor}",
        f"input.images_per_partition={args.per_partition}",
        "input.max_side=64",
        "input.min_side=32",
        "operators.canny.enabled=false",
        "operators.lcu_chains.enabled=false",
        "output.samples_per_shard=5000",
    ]
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    peak = {"driver": 0, "total": 0}

    def sample():
        while proc.poll() is None:
            d, t = tree_rss(proc.pid)
            peak["driver"], peak["total"] = max(peak["driver"], d), max(peak["total"], t)
            time.sleep(0.5)

    th = threading.Thread(target=sample, daemon=True)
    th.start()
    _, err = proc.communicate()
    th.join()
    if proc.returncode != 0:
        raise SystemExit(err[-3000:])
    summary = json.loads((out / "run.json").read_text())
    return {"wall": time.perf_counter() - t0, **peak, "samples": summary["samples"], "decoded": summary["decoded"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--sizes", default="10000,100000")
    ap.add_argument("--side", type=int, default=64)
    ap.add_argument("--executor", default="ray", choices=["ray", "local"])
    ap.add_argument("--per-partition", type=int, default=500)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench_mem_"))
    rows = []
    for n in [int(x) for x in args.sizes.split(",")]:
        inp = tmp / f"in{n}"
        t0 = time.perf_counter()
        make_images(inp, n, args.side)
        gen = time.perf_counter() - t0
        r = measure(inp, tmp / f"out{n}", args)
        rows.append((n, gen, r))
        shutil.rmtree(inp)
        shutil.rmtree(tmp / f"out{n}")
    print(
        f"\ngrayscale both ways on {args.side}px images, executor {args.executor}, "
        f"{args.per_partition} images per partition, {os.cpu_count()} CPUs\n"
    )
    print(f"{'images':>8}{'samples':>9}{'wall s':>9}{'images/s':>10}{'peak driver MB':>16}{'peak total MB':>15}")
    for n, _, r in rows:
        print(
            f"{n:>8}{r['samples']:>9}{r['wall']:>9.1f}{r['decoded'] / r['wall']:>10.1f}"
            f"{r['driver'] / 2**20:>16.0f}{r['total'] / 2**20:>15.0f}"
        )
    shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
