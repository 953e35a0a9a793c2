"""`datagen train RECIPE key=value ...`: train the ACE-style DiT on datagen shards (one process, or one per GPU
under `torchrun --nproc_per_node N -m datagen.cli train ...`). A rerun into the same output.dir resumes."""

from __future__ import annotations

import argparse
import json


def cmd_train(args: argparse.Namespace) -> int:
    from datagen.trainer.config import load_train_recipe
    from datagen.trainer.loop import train

    recipe = load_train_recipe(args.recipe, list(args.overrides))
    summary = train(recipe)
    import os

    if os.environ.get("RANK", "0") == "0":
        print(json.dumps(summary, indent=2, default=str))
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "train", help="train the ACE-style DiT on shards: datagen train configs/train_tiny.yaml data.path=out/demo"
    )
    p.add_argument("recipe", help="train recipe YAML (configs/train_tiny.yaml, configs/train_ace_0.6b.yaml)")
    p.add_argument("overrides", nargs="*", help="key.sub=value overrides, e.g. trainer.max_steps=80 output.dir=RUN")
    p.set_defaults(fn=cmd_train)
