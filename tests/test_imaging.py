"""fit_long_side: the one "at most N on the long side" resize the stages share."""

import numpy as np

from datagen.imaging import fit_long_side


def test_shrinks_to_the_long_side_and_reports_the_scale():
    img = np.zeros((300, 600, 3), np.uint8)
    small, s = fit_long_side(img, 200)
    assert small.shape == (100, 200, 3) and s == 200 / 600


def test_leaves_a_small_image_alone_unless_asked_to_upscale():
    img = np.zeros((30, 60, 3), np.uint8)
    same, s = fit_long_side(img, 200)
    assert same is img and s == 1.0
    big, s = fit_long_side(img, 120, upscale=True)
    assert big.shape == (60, 120, 3) and s == 2.0


def test_min_size_bounds_the_short_side():
    img = np.zeros((10, 1000), np.uint8)
    assert fit_long_side(img, 100)[0].shape == (1, 100)
    assert fit_long_side(img, 100, min_size=32)[0].shape == (32, 100)
