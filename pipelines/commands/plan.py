"""`datagen plan RECIPE [key=value ...] [--cluster gpus=8,cpus=96,nodes=2 | --address HOST:PORT]`: where every stage
of every job would run (pool sizes, CPUs and GPUs per actor, which operators share an actor), decided the way
`datagen run` decides it, without starting any work. A recipe that cannot fit is refused, naming the stage and what
is missing (exit status 2)."""

from __future__ import annotations

import argparse
import sys


def cmd_plan(args: argparse.Namespace) -> int:
    from datagen.config import ConfigError
    from datagen.planning import ClusterShape, PlanError
    from pipelines import load_recipe, plan_waves

    overrides = list(args.overrides)
    if args.address:
        overrides.append(f"runtime.address={args.address}")
    shape = None
    try:
        recipe = load_recipe(args.recipe, overrides)
        if args.cluster:
            shape = ClusterShape.parse(args.cluster)
        else:
            from datagen.runtime import live_shape

            shape = live_shape(recipe.runtime)
        for i, wave in enumerate(plan_waves(recipe, shape)):
            print(f"wave {i + 1}: jobs {', '.join(wave.jobs)}")
            print(wave.table())
    except PlanError as err:
        where = shape.describe() if shape else "this cluster"
        print(f"plan refused on {where}: {err}", file=sys.stderr)
        return 2
    except ConfigError as err:
        print(f"recipe error: {err}", file=sys.stderr)
        return 2
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    r = subparsers.add_parser(
        "plan",
        help="show where every stage of a recipe would run on a cluster, or why it cannot: "
        "datagen plan configs/ace_full.yaml --cluster gpus=8,cpus=96,nodes=2",
    )
    r.add_argument("recipe", help="YAML recipe")
    r.add_argument("overrides", nargs="*", help="key.sub=value overrides of any recipe key")
    r.add_argument("--cluster", help="a declared shape: gpus=G,cpus=C[,nodes=N][,gpu_memory_gb=M] (totals)")
    r.add_argument("--address", help="plan against a live Ray cluster (default: RAY_ADDRESS or the local machine)")
    r.set_defaults(fn=cmd_plan)
