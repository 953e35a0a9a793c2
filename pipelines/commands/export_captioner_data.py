"""`datagen export-captioner-data DIR --out DATA`: reviewed samples of a shard folder as InternVL conversation
fine-tuning data (jsonl + meta json + images), the input of `datagen finetune-captioner`."""

from __future__ import annotations

import argparse
import json


def cmd_export(args: argparse.Namespace) -> int:
    from operators.instructions.captioner_data import export_captioner_data, read_keys

    exclude = [] if args.include_fallbacks else ["fallback_template"]
    stats = export_captioner_data(
        args.dir,
        args.out,
        keep_keys=read_keys(args.keep_keys),
        drop_keys=read_keys(args.drop_keys),
        tasks=args.task or None,
        exclude_methods=exclude,
        limit=args.limit,
    )
    print(
        json.dumps(
            {"written": stats.written, "tasks": stats.tasks, "skipped": stats.skipped, "out": args.out}, indent=2
        )
    )
    return 0 if stats.written else 1


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "export-captioner-data", help="export reviewed instructions in InternVL's fine-tuning format"
    )
    p.add_argument("dir", help="shard folder (after review: `datagen filter` drops marked samples)")
    p.add_argument("--out", required=True)
    p.add_argument(
        "--keep-keys", help='only these sample keys (file: one key per line, or a JSON list / {"keys": [...]})'
    )
    p.add_argument("--drop-keys", help="leave out these sample keys (same formats), e.g. a reviewer's marks")
    p.add_argument("--task", action="append", help="only this task (repeatable)")
    p.add_argument(
        "--include-fallbacks", action="store_true", help="also export turns whose model method fell back to a template"
    )
    p.add_argument("--limit", type=int, default=None)
    p.set_defaults(fn=cmd_export)
