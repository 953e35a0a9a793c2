"""The `datagen` program: the core's commands (validate, stats, review, filter, export, report, train) plus the
commands that run datagen's pipelines and operators (run, conditions-sheet, edits-sheet, export-captioner-data,
finetune-captioner). `python -m pipelines.cli ...` is the same program."""

from __future__ import annotations

import sys

from datagen import cli
from pipelines.commands import (
    conditions_sheet,
    edits_sheet,
    export_captioner_data,
    finetune_captioner,
    plan,
    rehearse,
    run,
)

COMMANDS = (
    run.register,
    plan.register,
    rehearse.register,
    conditions_sheet.register,
    edits_sheet.register,
    export_captioner_data.register,
    finetune_captioner.register,
)


def main(argv: list[str] | None = None) -> int:
    return cli.main(argv, COMMANDS)


def program() -> int:
    """The `datagen` executable: main(), then an exit without the interpreter's last garbage collections. A run
    leaves a large heap (Ray's, pyarrow's, matplotlib's objects) that the collector walked for over a second at exit
    to free memory the process was about to hand back anyway; atexit handlers and file closing still run."""
    import gc

    rc = main()
    gc.disable()
    gc.freeze()
    return rc


if __name__ == "__main__":
    sys.exit(program())
