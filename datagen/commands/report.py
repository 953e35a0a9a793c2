"""`datagen report DIR`: (re)write OUT/report.html and OUT/report.png from OUT/run.json."""

from __future__ import annotations

import argparse


def cmd_report(args: argparse.Namespace) -> int:
    from datagen.report import write_report

    path = write_report(args.dir)
    print(f"wrote {path} and {path.with_suffix('.png')}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="write the run report (task counts plot, quarantine, throughput)")
    p.add_argument("dir")
    p.set_defaults(fn=cmd_report)
