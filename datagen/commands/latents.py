"""`datagen latents DIR --config RECIPE key=value ...`: precompute the VAE latents and text encoder states of a
finished shard folder for the trainer (datagen/trainer/latents.py). Resumable; under torchrun, one GPU per process."""

from __future__ import annotations

import argparse
import json
import os


def cmd_latents(args: argparse.Namespace) -> int:
    from datagen.trainer.config import load_train_recipe
    from datagen.trainer.latents import latents

    recipe = load_train_recipe(args.config, [*args.overrides, f"data.path={args.dir}"])
    summary = latents(recipe, batch_frames=args.batch)
    if os.environ.get("RANK", "0") == "0" or args.verbose:
        print(json.dumps(summary, indent=2, default=str))
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "latents",
        help="precompute the trainer's VAE latents and text states beside finished shards: "
        "datagen latents out/demo --config configs/train_tiny.yaml",
    )
    p.add_argument("dir", help="the shard folder (a run's output.dir; local path or fsspec URI)")
    p.add_argument("--config", required=True, help="the train recipe whose encoders, buckets and text length to use")
    p.add_argument("--batch", type=int, default=32, help="frames per VAE batch (default 32)")
    p.add_argument("overrides", nargs="*", help="key.sub=value overrides of the train recipe, e.g. output.dir=RUN")
    p.set_defaults(fn=cmd_latents)
