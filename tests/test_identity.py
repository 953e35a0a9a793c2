"""photo_key: one photo, one key, however many arrays hold it."""

import numpy as np

from datagen.identity import photo_key


def test_same_pixels_same_key_other_pixels_or_shape_other_key():
    a = np.arange(48, dtype=np.uint8).reshape(4, 4, 3)
    assert photo_key(a) == photo_key(a.copy()) == photo_key(np.asfortranarray(a))
    b = a.copy()
    b[3, 3, 2] += 1
    assert photo_key(b) != photo_key(a)
    assert photo_key(a.reshape(4, 12)) != photo_key(a)
