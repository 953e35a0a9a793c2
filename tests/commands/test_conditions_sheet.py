"""`datagen conditions-sheet`: one PNG with the photo, every condition map and both repainting inputs; conditions
that cannot run say why in their tile; a recipe's checkpoints are honoured."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from operators.conditions.informative_drawings import build_generator
from pipelines.cli import main
from pipelines.commands.conditions_sheet import LABEL_H, SHEET_OPERATORS, compose_sheet, render_tiles
from tests.conftest import load_photo


def test_renders_every_condition(tmp_path, capsys):
    photo = tmp_path / "astronaut.png"
    cv2.imwrite(str(photo), cv2.cvtColor(load_photo("astronaut.png", 128), cv2.COLOR_RGB2BGR))
    out = tmp_path / "sheet.png"
    assert (
        main(["conditions-sheet", str(photo), "--out", str(out), "--tile", "64", "--columns", "5", "--max-side", "128"])
        == 0
    )
    sheet = cv2.imread(str(out))
    # photo + 10 conditions + inpainting + outpainting = 13 tiles -> 3 rows of 5
    assert sheet.shape == (3 * (64 + LABEL_H), 5 * 64, 3)
    printed = capsys.readouterr().out
    assert "13 tiles" in printed and "depth (OFF" in printed and "pose (OFF" in printed


def test_tiles_and_recipe_overrides(tmp_path):
    image = load_photo("coffee.png", 96)
    tiles = render_tiles(image, {})
    labels = [t[0] for t in tiles]
    assert labels == ["photo", *[n for n in SHEET_OPERATORS if n != "repainting"], "inpainting", "outpainting"]
    off = {label: note for label, pic, note in tiles if pic is None}
    assert set(off) == {"depth", "pose"} and all(n.startswith("OFF:") for n in off.values())
    for label, pic, _ in tiles:
        if pic is not None:
            assert pic.shape == image.shape and pic.dtype == np.uint8, label
    # a recipe override switches contour to a (tiny) checkpoint: the tile changes to the model's drawing
    ckpt = tmp_path / "contour.pth"
    torch.manual_seed(0)
    torch.save(build_generator(ngf=4).state_dict(), ckpt)
    from pipelines.commands.conditions_sheet import _operator_configs

    configs = _operator_configs(
        None,
        ["operators.contour.backend=model", f"operators.contour.checkpoint={ckpt}", "operators.contour.device=cpu"],
    )
    model_tiles = dict((t[0], t[1]) for t in render_tiles(image, configs))
    assert not np.array_equal(model_tiles["contour"], dict((t[0], t[1]) for t in tiles)["contour"])
    sheet = compose_sheet(tiles, 48, 4)
    assert sheet.shape == (4 * (48 + LABEL_H), 4 * 48, 3)


def test_only_some_operators_for_several_photos(tmp_path, capsys):
    photos = []
    for name in ("astronaut.png", "coffee.png"):
        photos.append(tmp_path / name)
        cv2.imwrite(str(photos[-1]), cv2.cvtColor(load_photo(name, 96), cv2.COLOR_RGB2BGR))
    out = tmp_path / "maps.png"
    args = ["conditions-sheet", *map(str, photos), "--only", "segmentation,doodle", "--columns", "3", "--tile", "48"]
    assert main([*args, "--out", str(out), "--max-side", "96"]) == 0
    assert cv2.imread(str(out)).shape == (2 * (48 + LABEL_H), 3 * 48, 3)  # one row per photo: photo, map, doodle
    assert "6 tiles" in capsys.readouterr().out
    with pytest.raises(ValueError, match="nope.*allowed"):
        main([*args, "--only", "segmentation,nope", "--out", str(out)])
