"""The `datagen` command: run a recipe, validate and summarise shard folders. Further subcommands are modules
in datagen/commands/, each with `register(subparsers)` that adds its parser and sets `fn`."""
from __future__ import annotations

import argparse
import json
import logging
import sys
from collections import Counter
from pathlib import Path

from datagen.config import ConfigError, load_recipe

log = logging.getLogger("datagen")


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )


def cmd_run(args: argparse.Namespace) -> int:
    from datagen.run import run

    overrides = list(args.overrides)
    if args.address:
        overrides.append(f"runtime.address={args.address}")
    recipe = load_recipe(args.recipe, overrides)
    summary = run(recipe)
    from datagen.summary import format_summary

    print(format_summary(summary))
    return 0


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
        "height": {"min": min((r["height"] for r in rows), default=0), "max": max((r["height"] for r in rows), default=0)},
    }
    if args.json:
        print(json.dumps(stats, indent=2))
        return 0
    print(f"{stats['samples']} samples in {stats['shards']} shards, {stats['bytes'] / 1e6:.1f} MB; kinds {stats['kinds']}")
    w = max((len(t) for t in tasks), default=4)
    for t, n in stats["tasks"].items():
        print(f"  {t:<{w}}  {n}")
    print(f"  width {stats['width']['min']}-{stats['width']['max']}, height {stats['height']['min']}-{stats['height']['max']}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="datagen", description=__doc__)
    p.add_argument("-v", "--verbose", action="store_true")
    sub = p.add_subparsers(dest="command", required=True)

    r = sub.add_parser("run", help="run a recipe: datagen run configs/demo.yaml key=value ...")
    r.add_argument("recipe", help="YAML recipe")
    r.add_argument("overrides", nargs="*", help="key.sub=value overrides of any recipe key")
    r.add_argument("--address", help="Ray cluster address (default: RAY_ADDRESS or an embedded local Ray)")
    r.set_defaults(fn=cmd_run)

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


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _setup_logging(args.verbose)
    try:
        return args.fn(args)
    except ConfigError as e:
        print(f"datagen: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
