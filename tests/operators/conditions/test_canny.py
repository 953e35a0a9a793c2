"""Canny condition: ACE's fixed 100/200 thresholds by default, per-image random thresholds inside their ranges."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from datagen.batch import SourceImage, WorkBatch
from datagen.config import ConfigError
from operators.conditions.canny import Canny, CannyConfig
from pipelines import load_recipe
from tests.conftest import load_photo


def _batch(*images, seed=0):
    return WorkBatch(
        "img-00000", {}, seed, "r", items=[SourceImage(f"mem://{i}", f"id{i}", im) for i, im in enumerate(images)]
    )


def test_default_thresholds_match_opencv():
    photo = load_photo("astronaut.png", 128)
    batch = Canny()(_batch(photo))
    edge = batch.samples[0].current.target.image
    assert np.array_equal(edge[..., 0], cv2.Canny(cv2.cvtColor(photo, cv2.COLOR_RGB2GRAY), 100, 200))
    assert set(np.unique(edge)) <= {0, 255}
    assert batch.samples[0].provenance.params["low"] == 100 and batch.samples[0].provenance.params["high"] == 200
    assert [s.task for s in batch.samples] == ["Edge map Extraction", "Edge-guided Generation"]


def test_random_thresholds_in_range_and_deterministic():
    cfg = CannyConfig(random_thresholds=True, low_range=(50, 120), high_range=(150, 250))
    photos = [load_photo(n, 64) for n in ("astronaut.png", "chelsea.png", "coffee.png")]
    a = Canny(cfg)(_batch(*photos, seed=3))
    b = Canny(cfg)(_batch(*photos, seed=3))
    for s, t in zip(a.samples, b.samples):
        p = s.provenance.params
        assert 50 <= p["low"] <= 120 and 150 <= p["high"] <= 250 and p["low"] < p["high"]
        assert p == t.provenance.params and s.key == t.key


def test_bad_thresholds_name_the_key():
    with pytest.raises(ConfigError, match="operators.canny"):
        load_recipe(None, ["operators.canny.low=300"])
