"""`datagen review DIR --out review.html`: a stratified contact sheet per task for quality reviewers."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def cmd_review(args: argparse.Namespace) -> int:
    from datagen.review.html import render
    from datagen.review.sampling import load_samples, stratified_keys

    sort = args.sort or ""
    if sort:
        from datagen import schema
        from datagen.config import ConfigError

        name, _, direction = sort.partition(":")
        if name not in schema.SCORES or direction not in ("asc", "desc"):
            raise ConfigError(f"--sort {sort!r}: use NAME:asc or NAME:desc with NAME one of {sorted(schema.SCORES)}")
    strata_keys = stratified_keys(args.dir, args.per_task, args.seed)
    wanted = {k for ks in strata_keys.values() for k in ks}
    found = load_samples(args.dir, wanted)
    strata = {name: [found[k] for k in ks if k in found] for name, ks in strata_keys.items()}
    run_json = Path(args.dir) / "run.json"
    summary = json.loads(run_json.read_text()) if run_json.exists() else None
    Path(args.out).write_text(render(str(args.dir), strata, summary, sort), encoding="utf-8")
    print(f"wrote {args.out}: {len(found)} samples in {len(strata)} strata")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("review", help="stratified HTML contact sheet of a shard folder for reviewers")
    p.add_argument("dir")
    p.add_argument("--out", default="review.html")
    p.add_argument("--per-task", type=int, default=6, help="samples per task (and per task of multi-turn samples)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--sort", help="NAME:asc or NAME:desc: cards of each task sorted by that score (the page's menu changes it)"
    )
    p.set_defaults(fn=cmd_review)
