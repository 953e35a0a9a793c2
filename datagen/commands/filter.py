"""`datagen filter DIR --marks marks.json [--rule operator=canny]`: drop reviewed samples or whole rules."""

from __future__ import annotations

import argparse


def cmd_filter(args: argparse.Namespace) -> int:
    from datagen.review.filter import filter_dir, load_marks, parse_rule

    keys: set[str] = set()
    rules = []
    if args.marks:
        keys, rules = load_marks(args.marks)
    rules += [parse_rule(r) for r in args.rule]
    report = filter_dir(args.dir, keys, rules, args.out)
    print(f"dropped {report['dropped']} samples, kept {report['kept']}, rewrote {report['shards_rewritten']} shards")
    for t, n in sorted(report["by_task"].items()):
        print(f"  {t}: -{n}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("filter", help="drop marked samples or everything a rule made; rewrites shards and index")
    p.add_argument("dir")
    p.add_argument("--marks", help="marks.json from the review page, or parquet/CSV with a `key` column")
    p.add_argument(
        "--rule",
        action="append",
        default=[],
        help="FIELD=VALUE[,FIELD=VALUE] over operator, task, "
        "task_group, instruction_method, kind; or a score rule scores.NAME<VALUE (<=, >, >=: drops the samples "
        "whose score compares so, e.g. scores.nsfw>0.8); repeatable",
    )
    p.add_argument("--out", help="write the filtered folder here instead of rewriting in place")
    p.set_defaults(fn=cmd_filter)
