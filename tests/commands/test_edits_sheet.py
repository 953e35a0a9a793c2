"""`datagen edits-sheet`: one photo through every synthesized edit, one row per sample (inputs, target, template
instruction); makers that are off or skip the photo say why in their row."""

from __future__ import annotations

import cv2

from pipelines.cli import main
from pipelines.commands.edits_sheet import HEAD_H, SHEET_EDITS, render_rows
from tests.conftest import load_photo


def test_renders_every_synthesized_edit(tmp_path, capsys):
    photo = tmp_path / "astronaut.png"
    cv2.imwrite(str(photo), cv2.cvtColor(load_photo("astronaut.png", 160), cv2.COLOR_RGB2BGR))
    out = tmp_path / "sheet.png"
    assert (
        main(
            [
                "edits-sheet",
                str(photo),
                "--out",
                str(out),
                "--caption",
                "an astronaut",
                "--tile",
                "64",
                "--text-width",
                "200",
                "--max-side",
                "160",
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    n = int(printed.split("(")[1].split(" rows")[0])
    sheet = cv2.imread(str(out))
    assert (
        sheet.shape[0] == n * (64 + HEAD_H) and sheet.shape[1] == 3 * 64 + 200
    )  # two inputs (layer fusion) + target + text
    assert "replace_object (OFF" in printed


def test_rows_name_their_task_and_instruction():
    image = load_photo("astronaut.png", 160)
    rows = render_rows(image, "an astronaut", {})
    tasks = [r["task"] for r in rows]
    assert {"Remove Object", "Add Object", "Style Transfer", "Text-to-Image", "Layer Fusion"} <= set(tasks)
    assert "replace_object" in tasks and len(SHEET_EDITS) == 7
    for r in rows:
        if "target" in r:
            assert r["instruction"] and r["target"].shape == image.shape
            assert ("{image" in r["instruction"]) == bool(r["inputs"])
