"""The demo recipe end to end, before and after, in one invocation: the old code (a git ref, by default where this
branch left main) and this tree run `datagen run configs/demo.yaml` on the same input, interleaved round by round
(the side that goes first alternates), each in a fresh process and output folder. Prints per-stage worker seconds,
the rewrite stage's share of worker time, wall time end to end (process start to exit: Ray start-up and shutdown
included) and the instruction variety of each side, as medians over the rounds.

    python bench/bench_demo_speed.py [--baseline REF] [--rounds 3] [--input PATH] [--variant NAME=KEY=VALUE ...]
    [--same-work]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from datagen.shards.reader import iter_samples  # noqa: E402

REWRITE = "rewrite_instructions"
# the demo recipe's stages that the pre-issue-14 demo (bcdd19d) did not run, and its classical pairing encoder
SAME_WORK = [
    f"operators.{op}.enabled=false"
    for op in (
        "pose",
        "remove_object",
        "background_change",
        "style_transfer",
        "text_to_image",
        "layers",
        "subject_reference",
        "face_features",
        "pixel_scores",
        "nsfw_score",
        "quality_filter",
    )
] + ["pairing.encoder=classical_features", "pairing.routes.facial_editing.enabled=false"]


def git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=ROOT, check=True, capture_output=True, text=True).stdout.strip()


def checkout(ref: str, into: Path) -> Path:
    """The tree at `ref`, unpacked (no .git): it runs from its own folder with this environment's packages."""
    into.mkdir(parents=True)
    archive = subprocess.run(["git", "archive", ref], cwd=ROOT, check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


def run_demo(src: Path, out: Path, overrides: list[str]) -> float:
    """Wall seconds of one `datagen run` of the demo recipe from the tree at `src` (its code, its demo.yaml)."""
    env = dict(os.environ, PYTHONPATH=str(src))  # Ray's workers inherit it: they import the same tree
    cmd = [
        sys.executable,
        "-m",
        "pipelines.cli",
        "run",
        "configs/demo.yaml",
        f"output.dir={out}",
        "runtime.progress=false",
        *overrides,
    ]
    t0 = time.perf_counter()
    res = subprocess.run(cmd, cwd=src, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    (out.parent / f"{out.name}.log").write_text(res.stdout + res.stderr)
    if res.returncode != 0:
        raise SystemExit(f"{src}: demo failed (rc {res.returncode}):\n{res.stderr[-3000:]}")
    return wall


def variety(out: Path) -> dict[str, float]:
    """Distinct instructions per task over every turn of every sample (tasks with >= 10 samples), and the rewrites
    kept per rewritten turn (the alternates the LCU turns draw on)."""
    per_turn, samples, kept, turns = defaultdict(list), defaultdict(int), 0, 0
    for s in iter_samples(out):
        samples[s.task] += 1
        for t in s.turns:
            per_turn[t.task].append(t.instruction)
        if s.kind == "cu":
            for rec in (t.instruction_record for t in s.turns if t.instruction_record.method):
                turns += 1
                kept += len(rec.alternates)
    rates = [len(set(v)) / len(v) for t, v in per_turn.items() if samples[t] >= 10]
    return {
        "min distinct/task": min(rates),
        "mean distinct/task": statistics.mean(rates),
        "rewrites kept/turn": kept / max(1, turns),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--baseline", default="", help="git ref of the old code (default: merge-base of HEAD and main)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--input", default="", help="input.path for both sides (default: the demo's builtin:photos)")
    ap.add_argument("--cpus", type=int, default=2, help="runtime.num_cpus for both sides")
    ap.add_argument(
        "--variant", action="append", default=[], help="NAME=KEY=VALUE[;KEY=VALUE...]: this tree again with overrides"
    )
    ap.add_argument(
        "--same-work",
        action="store_true",
        help="also run this tree with the baseline demo's stages only "
        "(what issues 12-14 added turned off), to separate the engine's speed from the recipe's growth",
    )
    ap.add_argument("--keep", default="", help="folder to keep the outputs in (default: a temporary one)")
    args = ap.parse_args()

    ref = args.baseline or git("merge-base", "HEAD", "main")
    work = Path(args.keep or tempfile.mkdtemp(prefix="bench_demo_"))
    base = checkout(ref, work / "baseline")
    common = [f"runtime.num_cpus={args.cpus}"] + ([f"input.path={args.input}"] if args.input else [])
    sides: list[tuple[str, Path, list[str]]] = [("before", base, common), ("after", ROOT, common)]
    for v in args.variant:
        name, overrides = v.split("=", 1)
        sides.append((name, ROOT, common + overrides.split(";")))
    if args.same_work:
        # this tree on the stages the baseline's demo had: no synthesized edits, judges, pose, faces or MobileNetV2
        sides.append(("same work", ROOT, common + SAME_WORK))

    # the ONNX exports are one-offs per checkpoint (cached by its hash): done here, timed, not inside a round
    from operators.features.mobilenet import cached_onnx as mobilenet_onnx
    from operators.instructions.embedder import default_model_dir
    from operators.instructions.onnx_text_model import cached_onnx

    t0 = time.perf_counter()
    cached_onnx(default_model_dir())
    cached_onnx(default_model_dir(), "int8")
    mobilenet_onnx()
    export_s = time.perf_counter() - t0

    load0 = os.getloadavg()
    walls: dict[str, list[float]] = defaultdict(list)
    stages: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    varieties: dict[str, list[dict]] = defaultdict(list)
    for r in range(args.rounds):
        order = sides if r % 2 == 0 else sides[::-1]
        for name, src, overrides in order:
            out = work / f"{name}-{r}"
            wall = run_demo(src, out, overrides)
            walls[name].append(wall)
            summary = json.loads((out / "run.json").read_text())
            for stage, row in summary["stages"].items():
                stages[name][stage].append(row["seconds"])
            varieties[name].append(variety(out))
            print(
                f"round {r} {name:<8} {wall:6.1f}s wall, "
                f"{sum(row['seconds'] for row in summary['stages'].values()):6.1f} worker-s, "
                f"rewrite {summary['stages'].get(REWRITE, {}).get('seconds', 0):5.1f}s",
                flush=True,
            )
    load1 = os.getloadavg()

    med = lambda xs: statistics.median(xs) if xs else 0.0  # noqa: E731
    names = [n for n, _, _ in sides]
    all_stages = list(dict.fromkeys(s for n in names for s in stages[n]))
    print(
        f"\ndemo recipe, {args.rounds} interleaved rounds, runtime.num_cpus={args.cpus}, input "
        f"{args.input or 'builtin:photos'}; "
        f"before = {ref[:10]}, after = this tree; medians"
    )
    print(
        f"load average (1 min) {load0[0]:.1f} at start, {load1[0]:.1f} at end; one-off ONNX exports (MiniLM + int8 "
        f"copy, MobileNetV2): {export_s:.1f}s (cached)"
    )
    print(f"{'stage (worker s)':<24}" + "".join(f"{n:>12}" for n in names))
    for st in all_stages:
        print(f"{st:<24}" + "".join(f"{med(stages[n].get(st, [])):>12.2f}" for n in names))
    totals = {n: [sum(v[i] for v in stages[n].values()) for i in range(args.rounds)] for n in names}
    shares = {n: [stages[n][REWRITE][i] / totals[n][i] for i in range(args.rounds)] for n in names}
    print(f"{'worker total':<24}" + "".join(f"{med(totals[n]):>12.2f}" for n in names))
    print(f"{'rewrite share':<24}" + "".join(f"{med(shares[n]):>12.1%}" for n in names))
    print(f"{'wall, end to end':<24}" + "".join(f"{med(walls[n]):>12.1f}" for n in names))
    print(f"{'speed-up vs before':<24}" + "".join(f"{med(walls['before']) / med(walls[n]):>11.2f}x" for n in names))
    for key in varieties["before"][0]:
        print(f"{key:<24}" + "".join(f"{med([v[key] for v in varieties[n]]):>12.3f}" for n in names))
    print(f"outputs and logs: {work}")


if __name__ == "__main__":
    main()
