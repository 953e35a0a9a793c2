"""Instruction throughput and variety: template instructions per second and how many are distinct, against the
spine's first bank (8 fixed phrasings per task, the peer this bank replaces), and the rewrite stage's uniqueness
rate (rewrites delivered distinct per template) and speed with the classical paraphraser + MiniLM checks.

    python bench/bench_instructions.py [--n 20000] [--rewrites 200]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from datagen import schema  # noqa: E402
from datagen.batch import WorkBatch  # noqa: E402
from datagen.ingest.listing import BUILTIN_CAPTIONS  # noqa: E402
from datagen.schema import Frame, Provenance, Sample, Turn  # noqa: E402
from operators.instructions.config import RewriteConfig  # noqa: E402
from operators.instructions.rewrites import RewriteInstructions  # noqa: E402
from operators.instructions.templates import TemplateInstructions, fill_template  # noqa: E402

# The spine's first bank (commit ca8241c): four tasks, eight fixed phrasings each, picked by seed % 8.
SPINE_BANK = {
    "Grayscale": [
        "Convert {image} to grayscale.",
        "Make {image} black and white.",
        "Remove all colour from {image}.",
        "Turn {image} into a monochrome photo.",
        "Desaturate {image} completely.",
        "Render {image} in shades of gray.",
        "Give me a grayscale version of {image}.",
        "Turn this photo of {caption} in {image} into black and white.",
    ],
    "Image Colorization": [
        "Colorize {image}.",
        "Add natural colours to the grayscale image {image}.",
        "Bring {image} to life with realistic colour.",
        "Turn the black-and-white {image} into a colour photo.",
        "Restore plausible colours to {image}.",
        "Paint realistic colours onto {image}.",
        "Colorize {image}, which shows {caption}.",
        "Make {image} a full-colour photograph.",
    ],
    "Edge map Extraction": [
        "Extract the edge map of {image}.",
        "Detect the edges in {image}.",
        "Run Canny edge detection on {image}.",
        "Show only the outlines of {image} as white lines on black.",
        "Produce an edge map from {image}.",
        "Give me the Canny edges of {image}.",
        "Find the edges of {caption} in {image}.",
        "Draw the edge lines of {image}.",
    ],
    "Edge-guided Generation": [
        "Generate a photo that follows the edges in {image}.",
        "Create a realistic image from the edge map {image}.",
        "Use {image} as a Canny edge map and render a photo.",
        "Turn the line edges in {image} into a natural image.",
        "Fill in the edge map {image} to make a photograph.",
        "Generate an image of {caption} following the edges of {image}.",
        "Produce a photo whose contours match {image}.",
        "Make a realistic picture based on the edges in {image}.",
    ],
}


def spine_fill(task: str, caption: str, seed: int) -> str:
    bank = SPINE_BANK[task]
    usable = bank if caption else [t for t in bank if "{caption}" not in t]
    choice = usable[seed % len(usable)]
    return choice.replace("{caption}", caption.strip().rstrip(".")) if caption else choice


def distinct_rate(texts: list[str]) -> float:
    return len(set(texts)) / max(1, len(texts))


def template_rows(n: int) -> list[tuple]:
    rng = np.random.default_rng(0)
    seeds = [int(s) for s in rng.integers(0, 2**62, size=n)]
    tasks = list(SPINE_BANK)
    rows = []
    for name, fill in (
        ("spine bank (8 fixed/task)", lambda t, c, s: spine_fill(t, c, s)),
        ("grammar bank (this)", lambda t, c, s: fill_template(t, schema.TASKS[t].direction, c, s).text),
    ):
        t0 = time.perf_counter()
        for i, s in enumerate(seeds):
            fill(tasks[i % len(tasks)], "", s)
        rate = n / (time.perf_counter() - t0)
        # variety as the demo sees it: 17 photos with alt text, and a caption-free folder of 17 and of 200
        caps = list(BUILTIN_CAPTIONS.values())
        with_caps = np.mean([distinct_rate([fill(t, c, seeds[k]) for k, c in enumerate(caps)]) for t in tasks])
        no_caps_17 = np.mean([distinct_rate([fill(t, "", seeds[k]) for k in range(17)]) for t in tasks])
        no_caps_200 = np.mean([distinct_rate([fill(t, "", seeds[k]) for k in range(200)]) for t in tasks])
        rows.append((name, rate, with_caps, no_caps_17, no_caps_200))
    return rows


def stage_rate(n: int) -> float:
    img = np.zeros((8, 8, 3), np.uint8)
    batch = WorkBatch("bench", {}, seed=0, recipe="r")
    tasks = [t for t, spec in schema.TASKS.items() if spec.direction != schema.DIRECTION_TEXT]
    for i in range(n):
        turn = Turn(
            tasks[i % len(tasks)],
            schema.TASKS[tasks[i % len(tasks)]].direction,
            [Frame(img)],
            Frame(img),
            caption="a tabby cat",
        )
        batch.samples.append(Sample([turn], Provenance([f"u{i}"], [f"id{i}"], "bench", "1")))
    t0 = time.perf_counter()
    TemplateInstructions()(batch)
    return n / (time.perf_counter() - t0)


def rewrite_rows(n: int, want: int) -> tuple[dict, dict[str, float]]:
    img = np.zeros((8, 8, 3), np.uint8)
    batch = WorkBatch("bench", {}, seed=0, recipe="r")
    tasks = list(schema.TASKS)
    caps = list(BUILTIN_CAPTIONS.values())
    for i in range(n):
        task = tasks[i % len(tasks)]
        spec = schema.TASKS[task]
        inputs = [] if spec.direction == schema.DIRECTION_TEXT else [Frame(img)]
        turn = Turn(task, spec.direction, inputs, Frame(img), caption=caps[i % len(caps)])
        batch.samples.append(Sample([turn], Provenance([f"u{i}"], [f"id{i}"], "bench", "1")))
    TemplateInstructions()(batch)
    before = [s.current.instruction for s in batch.samples]
    stage = RewriteInstructions(RewriteConfig(n=want))
    t0 = time.perf_counter()
    stage.setup()
    load = time.perf_counter() - t0
    t0 = time.perf_counter()
    stage(batch)
    secs = time.perf_counter() - t0
    kept = [len(s.turns[0].instruction_record.alternates) for s in batch.samples]
    skipped = batch.stats["rewrite_instructions"].skipped
    cands = sum(kept) + sum(v for k, v in skipped.items() if k.startswith("rejected_rewrite:"))
    per_task_before, per_task_after = defaultdict(list), defaultdict(list)
    for s, b in zip(batch.samples, before):
        per_task_before[s.task].append(b)
        per_task_after[s.task].append(s.current.instruction)
    return (
        {
            "instructions": n,
            "rewrites asked": n * want,
            "rewrites kept": sum(kept),
            "uniqueness rate": sum(kept) / (n * want),
            "full N delivered": float(np.mean([k == want for k in kept])),
            "candidates judged": cands,
            "candidate acceptance": sum(kept) / max(1, cands),
            "model load s": load,
            "instructions/s": n / secs,
            "rewrites/s": sum(kept) / secs,
        },
        {
            "template": float(np.mean([distinct_rate(v) for v in per_task_before.values()])),
            "after rewrite": float(np.mean([distinct_rate(v) for v in per_task_after.values()])),
        },
        skipped,
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=20000, help="template instructions to time")
    ap.add_argument("--rewrites", type=int, default=240, help="template instructions to rewrite")
    ap.add_argument("--per", type=int, default=3, help="rewrites asked per instruction")
    args = ap.parse_args()

    print(f"template instructions ({args.n} fills, tasks {', '.join(SPINE_BANK)})")
    print(
        f"{'bank':<28} {'instr/s':>10} {'distinct, 17 captioned':>23} {'distinct, 17 no caption':>24} "
        f"{'distinct, 200 no caption':>25}"
    )
    for name, rate, a, b, c in template_rows(args.n):
        print(f"{name:<28} {rate:>10.0f} {a:>23.1%} {b:>24.1%} {c:>25.1%}")
    print(
        f"template stage over all {len(schema.TASKS)} tasks (with provenance records): {stage_rate(5000):.0f} "
        f"instructions/s"
    )
    print()
    stats, distinct, skipped = rewrite_rows(args.rewrites, args.per)[0:3]
    print(f"rewrites: classical rule-based paraphraser + all-MiniLM-L6-v2 checks, {args.per} per template instruction")
    for k, v in stats.items():
        print(f"  {k:<22} {v:>10.3f}" if isinstance(v, float) else f"  {k:<22} {v:>10}")
    print(
        f"  distinct per task     template {distinct['template']:.1%} -> after rewrite {distinct['after rewrite']:.1%}"
    )
    print(
        "  rejections: "
        + ", ".join(
            f"{k.split(':', 1)[1]} {v}" for k, v in sorted(skipped.items()) if k.startswith("rejected_rewrite:")
        )
    )


if __name__ == "__main__":
    main()
