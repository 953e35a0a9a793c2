"""The `datagen` program: the core's commands (validate, stats, review, filter, export, report, train) plus the
commands that run datagen's pipelines and operators (run, conditions-sheet, edits-sheet, export-captioner-data,
finetune-captioner). `python -m pipelines.cli ...` is the same program."""
from __future__ import annotations

import sys

from datagen import cli
from pipelines.commands import conditions_sheet, edits_sheet, export_captioner_data, finetune_captioner, run

COMMANDS = (run.register, conditions_sheet.register, edits_sheet.register, export_captioner_data.register, finetune_captioner.register)


def main(argv: list[str] | None = None) -> int:
    return cli.main(argv, COMMANDS)


if __name__ == "__main__":
    sys.exit(main())
