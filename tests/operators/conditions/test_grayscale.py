"""Grayscale condition: equal channels equal to OpenCV luma, and one CU per direction with the right roles."""

from __future__ import annotations

import cv2
import numpy as np

from datagen import schema
from datagen.batch import SourceImage, WorkBatch
from operators.conditions.grayscale import Grayscale
from tests.conftest import load_photo


def _batch(*images):
    return WorkBatch(
        "img-00000", {}, 0, "r", items=[SourceImage(f"mem://{i}", f"id{i}", im) for i, im in enumerate(images)]
    )


def test_grayscale_both_directions():
    photo = load_photo("coffee.png", 96)
    batch = Grayscale()(_batch(photo))
    ana, gen = batch.samples
    assert (ana.task, ana.direction) == ("Grayscale", schema.DIRECTION_ANALYSIS)
    assert (gen.task, gen.direction) == ("Image Colorization", schema.DIRECTION_GENERATION)
    gray = ana.current.target.image
    assert ana.current.target.role == schema.ROLE_CONDITION and ana.current.inputs[0].role == schema.ROLE_PHOTO
    assert np.array_equal(gray[..., 0], cv2.cvtColor(photo, cv2.COLOR_RGB2GRAY))
    assert np.array_equal(gray[..., 0], gray[..., 2])
    assert np.array_equal(gen.current.inputs[0].image, gray) and np.array_equal(gen.current.target.image, photo)
