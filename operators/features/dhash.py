"""A 256-bit difference hash per image (signs of horizontal gradients of a 17x16 grayscale thumbnail): the cleaning
step of pairing counts two images of a set whose hashes differ in a few bits as one, so that re-encoded or resized
copies never make a pair, while a real edit (a region changed, a regrade) still differs in enough bits to be kept."""

from __future__ import annotations

import cv2
import numpy as np

from datagen.batch import ITEM_FEATURES
from datagen.operator import Resources
from datagen.schema import PhotoFeatures
from operators.features.base import FeatureOperator

HASH_SIDE = 16  # 16 x 16 = 256 bits; 8 x 8 cannot tell an edited copy from a re-encode


def dhash(image: np.ndarray, side: int = HASH_SIDE) -> bytes:
    gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    small = cv2.resize(gray, (side + 1, side), interpolation=cv2.INTER_AREA).astype(np.int16)
    return np.packbits((small[:, 1:] > small[:, :-1]).ravel()).tobytes()


class ImageDHash(FeatureOperator):
    name = "image_dhash"
    writes = (ITEM_FEATURES["dhash"],)
    version = "1"

    def resources(self) -> Resources:
        return Resources(num_cpus=1, batch_size=64)

    def describe(self) -> str:
        return f"image_dhash: {HASH_SIDE * HASH_SIDE}-bit difference hash (classical)"

    def compute(self, images: list[np.ndarray]) -> list[PhotoFeatures]:
        return [PhotoFeatures(dhash=dhash(im)) for im in images]
