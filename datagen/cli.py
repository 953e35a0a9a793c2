"""The core of the `datagen` command: validate and summarise shard folders, plus the core's commands in
datagen/commands/ (each module has `register(subparsers)` that adds its parser and sets `fn`). The program users run
is pipelines/cli.py, which adds the commands that run pipelines (`run`, `conditions-sheet`, ...).
Options may come anywhere: `datagen run RECIPE a=1 --address HOST:PORT b=2` takes both overrides."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections import Counter
from typing import Any, Callable, Sequence

from datagen.config import ConfigError

log = logging.getLogger("datagen")


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )


def cmd_validate(args: argparse.Namespace) -> int:
    from datagen.shards.validate import validate_dir

    n, problems = validate_dir(args.dir)
    for p in problems:
        print(p)
    print(f"{n} shards checked, {len(problems)} problems")
    return 1 if problems else 0


def cmd_stats(args: argparse.Namespace) -> int:
    from datagen.shards.reader import read_index, shard_paths

    index = read_index(args.dir)
    rows = index.select(["task", "kind", "bytes", "width", "height"]).to_pylist()
    tasks = Counter(r["task"] for r in rows)
    kinds = Counter(r["kind"] for r in rows)
    stats = {
        "shards": len(shard_paths(args.dir)),
        "samples": len(rows),
        "bytes": sum(r["bytes"] for r in rows),
        "kinds": dict(kinds),
        "tasks": dict(sorted(tasks.items())),
        "width": {"min": min((r["width"] for r in rows), default=0), "max": max((r["width"] for r in rows), default=0)},
        "height": {
            "min": min((r["height"] for r in rows), default=0),
            "max": max((r["height"] for r in rows), default=0),
        },
        "scores": score_quantiles(index),
    }
    if args.json:
        print(json.dumps(stats, indent=2))
        return 0
    print(
        f"{stats['samples']} samples in {stats['shards']} shards, {stats['bytes'] / 1e6:.1f} MB; kinds {stats['kinds']}"
    )
    w = max((len(t) for t in tasks), default=4)
    for t, n in stats["tasks"].items():
        print(f"  {t:<{w}}  {n}")
    print(
        f"  width {stats['width']['min']}-{stats['width']['max']}, height "
        f"{stats['height']['min']}-{stats['height']['max']}"
    )
    if stats["scores"]:
        print("  scores (samples scored: min / p10 / median / p90 / max):")
        w = max(len(k) for k in stats["scores"])
        for k, q in stats["scores"].items():
            print(
                f"    {k:<{w}}  {q['n']:>6}:  "
                + " / ".join(f"{q[x]:.3g}" for x in ("min", "p10", "median", "p90", "max"))
            )
    return 0


def score_quantiles(index) -> dict[str, dict[str, float]]:
    """Per score column of the index: how many samples carry it and its quantiles."""
    import numpy as np

    from datagen import schema

    out = {}
    for name in schema.SCORES:
        col = schema.SCORE_COLUMN_PREFIX + name
        if col not in index.column_names:
            continue
        v = np.array([x for x in index.column(col).to_pylist() if x is not None], np.float64)
        if v.size:
            p10, med, p90 = np.quantile(v, [0.1, 0.5, 0.9])
            out[name] = {
                "n": int(v.size),
                "min": float(v.min()),
                "p10": float(p10),
                "median": float(med),
                "p90": float(p90),
                "max": float(v.max()),
            }
    return out


Register = Callable[[Any], None]


def build_parser(extra: Sequence[Register] = ()) -> argparse.ArgumentParser:
    """The parser of the core's commands, plus those that `extra` registers (pipelines/cli.py adds its own)."""
    p = argparse.ArgumentParser(prog="datagen", description=__doc__)
    p.add_argument("-v", "--verbose", action="store_true")
    sub = p.add_subparsers(dest="command", required=True)
    for register in extra:
        register(sub)

    v = sub.add_parser("validate", help="check every shard of a folder against its index and stats")
    v.add_argument("dir")
    v.set_defaults(fn=cmd_validate)

    s = sub.add_parser("stats", help="counts per task and sizes of a shard folder")
    s.add_argument("dir")
    s.add_argument("--json", action="store_true")
    s.set_defaults(fn=cmd_stats)

    # further commands (review, filter, export, train, ...) live one per module in datagen/commands/
    import importlib
    import pkgutil

    import datagen.commands as commands

    for mod in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        importlib.import_module(f"datagen.commands.{mod.name}").register(sub)
    return p


def parse(parser: argparse.ArgumentParser, argv: list[str] | None) -> argparse.Namespace:
    """argparse stops filling `overrides` at the first option; the key=value words after an option are taken here."""
    args, rest = parser.parse_known_args(argv)
    unknown = [w for w in rest if not (hasattr(args, "overrides") and "=" in w and not w.startswith("-"))]
    if unknown:
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    if rest:
        args.overrides = [*args.overrides, *rest]
    return args


def main(argv: list[str] | None = None, extra: Sequence[Register] = ()) -> int:
    args = parse(build_parser(extra), argv)
    _setup_logging(args.verbose)
    try:
        return args.fn(args)
    except ConfigError as e:
        print(f"datagen: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
