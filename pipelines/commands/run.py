"""`datagen run RECIPE key=value ... [--address HOST:PORT]`: run a recipe's jobs and print the summary."""

from __future__ import annotations

import argparse


def cmd_run(args: argparse.Namespace) -> int:
    from datagen.summary import format_summary
    from pipelines import load_recipe, run

    overrides = list(args.overrides)
    if args.address:
        overrides.append(f"runtime.address={args.address}")
    summary = run(load_recipe(args.recipe, overrides), release=True)  # Ray stops while the report is drawn
    print(format_summary(summary))
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    r = subparsers.add_parser(
        "run", help="run a recipe: datagen run configs/demo.yaml key=value ... [--address HOST:PORT]"
    )
    r.add_argument("recipe", help="YAML recipe")
    r.add_argument("overrides", nargs="*", help="key.sub=value overrides of any recipe key (before or after options)")
    r.add_argument("--address", help="Ray cluster address (default: RAY_ADDRESS or an embedded local Ray)")
    r.set_defaults(fn=cmd_run)
