"""The informative-drawings generator loader: sizes come from the checkpoint, the published 64-wide, 3-block layout
is what a default build gives, and a checkpoint of something else is refused with its path."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from operators.conditions.informative_drawings import (
    architecture_of,
    build_generator,
    draw_lines,
    load_generator,
    model_size,
)
from tests.conftest import load_photo


def test_default_build_is_the_published_layout():
    with torch.device("meta"):
        sd = build_generator().state_dict()
    assert architecture_of(sd) == {"input_nc": 3, "output_nc": 1, "n_residual_blocks": 3, "ngf": 64}
    # parameter names of the published contour_style / anime_style netG_A_latest.pth
    assert {
        "model0.1.weight",
        "model1.0.weight",
        "model2.2.conv_block.5.weight",
        "model3.0.weight",
        "model4.1.weight",
    } <= set(sd)


def test_tiny_checkpoint_round_trip(tmp_path):
    torch.manual_seed(0)
    net = build_generator(ngf=8, n_residual_blocks=3).eval()
    path = tmp_path / "netG_A_latest.pth"
    torch.save(net.state_dict(), path)
    loaded, arch = load_generator(str(path), "cpu")
    assert arch == {"input_nc": 3, "output_nc": 1, "n_residual_blocks": 3, "ngf": 8}
    photo = load_photo("astronaut.png", 100)
    (drawing,) = draw_lines(loaded, [photo], "cpu")
    assert drawing.shape == photo.shape[:2] and drawing.dtype == np.uint8
    w, h = model_size(*photo.shape[:2])
    assert min(w, h) == 256 and w % 4 == 0 and h % 4 == 0


def test_refuses_other_checkpoints(tmp_path):
    path = tmp_path / "other.pth"
    torch.save({"conv.weight": torch.zeros(1)}, path)
    with pytest.raises(ValueError, match="other.pth"):
        load_generator(str(path), "cpu")
    with pytest.raises(FileNotFoundError, match="missing.pth"):
        load_generator(str(tmp_path / "missing.pth"), "cpu")
