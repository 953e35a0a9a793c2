"""`datagen export DIR --layout ace|ace++ --out DIR`: files and lists for ACE's and ACE++'s reference loaders."""

from __future__ import annotations

import argparse
import json


def cmd_export(args: argparse.Namespace) -> int:
    from datagen.export.reference_layouts import export_ace, export_ace_plus

    fn = export_ace if args.layout == "ace" else export_ace_plus
    report = fn(args.dir, args.out)
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
    p = sub.add_parser("export", help="export shards to ACE's or ACE++'s reference loader layout")
    p.add_argument("dir")
    p.add_argument("--layout", choices=["ace", "ace++"], required=True)
    p.add_argument("--out", required=True)
    p.set_defaults(fn=cmd_export)
