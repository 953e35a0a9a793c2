"""`datagen rehearse RECIPE --cluster gpus=G,cpus=C[,nodes=N] [key=value ...]`: run the whole recipe on a loopback
Ray cluster of that shape with tiny checkpoints of every model it names (pipelines/rehearsal/), and print per stage
how it ran, its items and seconds, and any fallback. Exit status: the run's."""

from __future__ import annotations

import argparse
from pathlib import Path


def cmd_rehearse(args: argparse.Namespace) -> int:
    from datagen.planning import ClusterShape
    from pipelines.rehearsal.rehearse import rehearse

    shape = ClusterShape.parse(args.cluster)
    outcome = rehearse(args.recipe, shape, list(args.overrides), photos=args.photos, keep=args.keep)
    return outcome.returncode


def register(subparsers: argparse._SubParsersAction) -> None:
    r = subparsers.add_parser(
        "rehearse",
        help="run a recipe end to end on a loopback Ray cluster of a declared shape with tiny models: "
        "datagen rehearse configs/ace_full.yaml --cluster gpus=4,cpus=4",
    )
    r.add_argument("recipe", help="YAML recipe")
    r.add_argument("overrides", nargs="*", help="key.sub=value overrides of any recipe key")
    r.add_argument("--cluster", required=True, help="gpus=G,cpus=C[,nodes=N]: totals over all nodes")
    r.add_argument("--photos", type=int, default=8, help="shipped photos to run on (default 8)")
    r.add_argument("--keep", type=Path, help="folder for the tiny models, the output and the log (default: a temp dir)")
    r.set_defaults(fn=cmd_rehearse)
