"""`make bench`: every CPU benchmark of bench/ with its defaults, one after another, each printing its own table
against the peer it replaces (controlnet_aux detectors, sklearn K-means, a plain loop for Ray's overhead, ...).
The GPU check is separate (bench/gpu_check.sh, on a GPU machine).

    python bench/run_all.py [--only conditions,scorers] [--list]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
# name -> arguments: small enough defaults for a laptop; each script's --help gives the knobs
BENCHES = {
    "conditions": ["--seconds", "2"],  # our detectors against controlnet_aux's
    "scorers": ["--seconds", "2"],  # pixel / NSFW scores against their peers
    "instructions": ["--n", "5000", "--rewrites", "100"],  # template bank and rewrites
    "ray_overhead": [],  # the same stages under Ray Data against a plain loop
    "scaling": ["--workers", "1,2"],
    "pairing_scale": ["--sizes", "20000,100000"],  # union-find + faiss range search against an all-pairs scan
    "pairing_quality": ["--split", "tuning"],  # pair precision/recall on the labelled set
    "memory": ["--sizes", "10000"],
    "loader": [],  # the trainer's shard loader
}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", default="", help="comma-separated names (default: all)")
    p.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    args = p.parse_args()
    if args.list:
        print("\n".join(BENCHES))
        return 0
    names = [n for n in args.only.split(",") if n] or list(BENCHES)
    unknown = [n for n in names if n not in BENCHES]
    if unknown:
        p.error(f"unknown benchmarks {unknown}; known: {list(BENCHES)}")
    failed = []
    for name in names:
        cmd = [sys.executable, str(HERE / f"bench_{name}.py"), *BENCHES[name]]
        print(f"\n=== {name}: {' '.join(cmd[1:])}", flush=True)
        t0 = time.perf_counter()
        rc = subprocess.run(cmd, cwd=HERE.parent).returncode
        print(f"=== {name}: exit {rc} after {time.perf_counter() - t0:.0f} s", flush=True)
        if rc:
            failed.append(name)
    if failed:
        print(f"\nfailed: {failed}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
