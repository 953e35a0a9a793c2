"""Throughput against the number of Ray workers (embedded local Ray with N CPUs), with each stage's share of the
worker time and the fixed start-up, next to the plain-loop baseline. Prints a table.

    python bench/bench_scaling.py [--workers 1,2,4] [--copies 4] [--operators grayscale,canny]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("RAY_AUTH_MODE", "disabled")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.bench_ray_overhead import make_inputs  # noqa: E402


def run_once(inp: Path, out: Path, executor: str, cpus: int, args) -> dict:
    import json

    ops = [f"operators.{n}.enabled=false" for n in ("lcu_chains",)]
    cmd = [
        sys.executable,
        "-m",
        "pipelines.cli",
        "run",
        "configs/demo.yaml",
        f"input.path={inp}",
        f"output.dir={out}",
        f"runtime.executor={executor}",
        f"runtime.num_cpus={cpus}",
        "runtime.progress=false",
        "pairing.enabled=false",
        "instructions.methods=[template]",
        f"input.max_side={args.max_side}",
        f"input.images_per_partition={args.per_partition}",
        *ops,
    ]
    t0 = time.perf_counter()
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    wall = time.perf_counter() - t0
    if res.returncode != 0:
        raise SystemExit(res.stdout[-2000:] + res.stderr[-2000:])
    summary = json.loads((out / "run.json").read_text())
    return {"wall": wall, "summary": summary}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--workers", default="1,2,4")
    ap.add_argument("--copies", type=int, default=4)
    ap.add_argument("--max-side", type=int, default=256)
    ap.add_argument("--per-partition", type=int, default=4)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench_scale_"))
    n = make_inputs(tmp / "in", args.copies)
    rows = [("loop", 1, run_once(tmp / "in", tmp / "loop", "local", 1, args))]
    for w in [int(x) for x in args.workers.split(",")]:
        rows.append(("ray", w, run_once(tmp / "in", tmp / f"ray{w}", "ray", w, args)))
    print(
        f"\n{n} images at max side {args.max_side}, demo operators (pairing and LCU off), "
        f"{os.cpu_count()} physical CPUs; wall includes process and Ray start-up\n"
    )
    stages = list(rows[0][2]["summary"]["stages"])
    head = f"{'executor':<8}{'workers':>8}{'wall s':>9}{'images/s':>10}{'samples/s':>11}  " + "  ".join(
        f"{s[:10]:>10}" for s in stages
    )
    print(head + "   (stage share of worker seconds)")
    for name, w, r in rows:
        s = r["summary"]
        tot = sum(st["seconds"] for st in s["stages"].values()) or 1.0
        shares = "  ".join(f"{s['stages'].get(k, {}).get('seconds', 0) / tot:>10.1%}" for k in stages)
        print(
            f"{name:<8}{w:>8}{r['wall']:>9.1f}{s['decoded'] / r['wall']:>10.1f}{s['samples'] / r['wall']:>11.1f}  "
            f"{shares}"
        )
    shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
