"""Aspect-ratio buckets: ACE's sizing rules hold for every bucket, the nearest bucket keeps the aspect, and
fitting crops without distorting or blending mask values."""

import math

import numpy as np
import pytest

from datagen.testing import load_photo
from datagen.trainer.buckets import Bucket, fit_to_bucket, make_buckets, nearest_bucket


@pytest.mark.parametrize("budget", [16, 256, 1024, 4096])
def test_every_bucket_obeys_ace_sizing(budget):
    buckets = make_buckets(budget, 16, 4.0)
    assert buckets
    for b in buckets:
        assert b.height % 16 == 0 and b.width % 16 == 0
        assert (b.height // 16) * (b.width // 16) <= budget
        assert max(b.height, b.width) / min(b.height, b.width) <= 4.0
    if budget == 1024:  # 512x512 at 512px is ACE's square bucket
        assert Bucket(512, 512) in buckets
        assert nearest_bucket(1000, 1000, buckets) == Bucket(512, 512)


def test_nearest_bucket_follows_aspect():
    buckets = make_buckets(1024)
    wide = nearest_bucket(1600, 900, buckets)
    tall = nearest_bucket(900, 1600, buckets)
    assert wide.width > wide.height and tall.height > tall.width
    assert abs(math.log(wide.aspect) - math.log(16 / 9)) < 0.15
    extreme = nearest_bucket(5000, 100, buckets)  # beyond 4:1 -> the widest allowed bucket
    assert extreme.aspect == max(b.aspect for b in buckets)


def test_fit_to_bucket_crops_and_keeps_mask_binary():
    img = load_photo(side=160)
    b = nearest_bucket(img.shape[1], img.shape[0], make_buckets(64))
    out = fit_to_bucket(img, b)
    assert out.shape == (b.height, b.width, 3) and out.dtype == np.uint8
    mask = np.zeros(img.shape[:2], np.uint8)
    mask[40:100, 30:90] = 255
    m = fit_to_bucket(mask, b, nearest=True)
    assert m.shape == (b.height, b.width)
    assert set(np.unique(m)) == {0, 255}
