"""`datagen finetune-captioner`: LoRA-fine-tune an InternVL checkpoint into the instruction captioner on data
written by `datagen export-captioner-data`; prints where the adapter and the merged checkpoint went."""

from __future__ import annotations

import argparse
import json


def cmd_finetune_captioner(args: argparse.Namespace) -> int:
    from operators.instructions.finetune import FinetuneConfig, finetune_captioner

    cfg = FinetuneConfig(
        model=args.model,
        data=args.data,
        out=args.out,
        lora_r=args.lora_r,
        lora_alpha=args.lora_alpha,
        lora_dropout=args.lora_dropout,
        epochs=args.epochs,
        max_steps=args.max_steps,
        lr=args.lr,
        grad_accum=args.grad_accum,
        warmup_steps=args.warmup_steps,
        max_patches=args.max_patches,
        seed=args.seed,
        device=args.device,
        dtype=args.dtype,
        gradient_checkpointing=args.gradient_checkpointing,
        merge=not args.no_merge,
    )
    if args.target_modules:
        cfg.target_modules = args.target_modules
    result = finetune_captioner(cfg)
    print(json.dumps(result.to_json(), indent=2))
    if result.merged_dir:
        print(
            f"use it: datagen run RECIPE 'instructions.methods=[template,captioner]' "
            f"instructions.captioner.backend.model={result.merged_dir}"
        )
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "finetune-captioner", help="LoRA-fine-tune an InternVL checkpoint into the instruction captioner"
    )
    p.add_argument(
        "--model",
        required=True,
        help="InternVL checkpoint (transformers-native, e.g. an -hf export): local dir or hub id",
    )
    p.add_argument(
        "--data", required=True, help="folder written by export-captioner-data, its captioner_meta.json, or a jsonl"
    )
    p.add_argument("--out", required=True, help="output folder: adapter/, merged/, finetune_log.json")
    p.add_argument("--lora-r", type=int, default=16)
    p.add_argument("--lora-alpha", type=int, default=32)
    p.add_argument("--lora-dropout", type=float, default=0.05)
    p.add_argument(
        "--target-modules",
        default="",
        help="regex of module names to adapt (default: the language model's projections)",
    )
    p.add_argument("--epochs", type=float, default=1.0)
    p.add_argument("--max-steps", type=int, default=None, help="optimizer steps (overrides --epochs)")
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--grad-accum", type=int, default=8, help="examples per optimizer step")
    p.add_argument("--warmup-steps", type=int, default=10)
    p.add_argument(
        "--max-patches", type=int, default=None, help="InternVL dynamic tiles per image (default: the checkpoint's)"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("--dtype", default="auto", choices=["auto", "bfloat16", "float16", "float32"])
    p.add_argument("--gradient-checkpointing", action="store_true")
    p.add_argument("--no-merge", action="store_true", help="save the adapter only")
    p.set_defaults(fn=cmd_finetune_captioner)
