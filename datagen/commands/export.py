"""`datagen export DIR --layout ace|ace++ --out DIR`: files and lists for ACE's and ACE++'s reference loaders.
`datagen export preference OUT DEST`: preference pairs (kept against rejected outputs) as parquet for `datasets`."""

from __future__ import annotations

import argparse
import json

PREFERENCE = "preference"


def cmd_export(args: argparse.Namespace) -> int:
    if args.what[0] == PREFERENCE:
        if len(args.what) != 3:
            args.parser.error("export preference takes OUT and DEST: datagen export preference OUT DEST")
        from datagen.export.preference import export_preference

        report = export_preference(
            args.what[1], args.what[2], score=args.score, margin=args.margin, max_per_group=args.max_per_group
        )
        print(f"preference: {report['pairs']} pairs in {args.what[2]} ({json.dumps(report['counts'])})")
        return 0
    if len(args.what) != 1 or not args.layout or not args.out:
        args.parser.error("export DIR --layout ace|ace++ --out DIR, or export preference OUT DEST")
    from datagen.export.reference_layouts import export_ace, export_ace_plus

    fn = export_ace if args.layout == "ace" else export_ace_plus
    report = fn(args.what[0], args.out)
    print(f"{report['layout']}: {report['rows']} rows in {args.out}/train.csv; skipped {report['skipped'] or 'none'}")
    for why, text in report["skipped_why"].items():
        print(f"  skipped {why}: {text}")
    if "ace_plus_config" in report:
        # the list has no header: these TRAIN_DATA lines of an ACE++ training config read it as it is
        print("ACE++ config (TRAIN_DATA):")
        for name, value in report["ace_plus_config"].items():
            print(f"  {name}: {json.dumps(value)}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export",
        help="export shards to ACE's or ACE++'s reference loader layout (DIR --layout --out), or preference pairs "
        "for reward models and DPO (preference OUT DEST)",
    )
    p.add_argument("what", nargs="+", metavar="DIR | preference OUT DEST")
    p.add_argument("--layout", choices=["ace", "ace++"])
    p.add_argument("--out")
    p.add_argument("--score", help="preference: the score that parts two kept outputs (default: judge_overall)")
    p.add_argument(
        "--margin", type=float, default=0.2, help="preference: kept-vs-kept needs this share of the score's range"
    )
    p.add_argument("--max-per-group", type=int, default=16, help="preference: pairs of each kind per input+instruction")
    p.set_defaults(fn=cmd_export, parser=p)
