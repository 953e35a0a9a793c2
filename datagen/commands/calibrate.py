"""`datagen calibrate OUT --marks marks.json`: the judge's agreement with the reviewers per task, and the thresholds
that would best match them, ready to paste into a recipe (datagen/review/calibrate.py)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def cmd_calibrate(args: argparse.Namespace) -> int:
    from datagen.review.calibrate import calibrate, format_report, load_thresholds, load_verdicts, snippet_yaml

    report = calibrate(args.dir, load_verdicts(args.marks), load_thresholds(args.thresholds), args.score)
    if args.yaml:
        Path(args.yaml).write_text(snippet_yaml(report))
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(format_report(report))
    print()
    print(snippet_yaml(report), end="")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "calibrate",
        help="the judge against the reviewers' verdicts: precision and recall per task, and the best thresholds",
    )
    p.add_argument("dir", help="a run's output folder (its shards, and rejects/ where the run kept them)")
    p.add_argument(
        "--marks", required=True, help="marks.json from the review page, or CSV/parquet with key and verdict columns"
    )
    p.add_argument(
        "--thresholds",
        help="what 'passes' means: a recipe (its quality_filter thresholds) or a YAML mapping '*'/group/task -> "
        "score -> {min, max}; only judge_* scores count. Default: judge_overall >= 5",
    )
    p.add_argument("--score", default="judge_overall", help="the judge score to suggest a minimum for")
    p.add_argument("--yaml", help="also write the suggested thresholds (recipe YAML) to this file")
    p.add_argument("--json", action="store_true", help="print the whole report as JSON")
    p.set_defaults(fn=cmd_calibrate)
