"""Per-image half of the object-consistency score (datagen/pairing/object_score.py): ORB keypoints and descriptors of
each image, and a small edge map for the score's shape fallback, stored with its features so that pass 2 can verify a
link geometrically without decoding images again."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from pydantic import Field

from datagen.batch import ITEM_FEATURES
from datagen.operator import OperatorConfig, Resources
from datagen.pairing.object_score import edge_map, orb_keypoints, pack
from datagen.schema import PhotoFeatures
from operators.features.base import FeatureOperator


class ObjectKeypointsConfig(OperatorConfig):
    n_features: int = Field(
        300, ge=16, description="ORB keypoints kept per image (32 bytes + 8 bytes each in the features file)"
    )
    side: int = Field(384, ge=64, description="images are analysed at this long side")


class ObjectKeypoints(FeatureOperator):
    name = "object_keypoints"
    writes = (
        ITEM_FEATURES["keypoints"],
        ITEM_FEATURES["descriptors"],
        ITEM_FEATURES["edges"],
    )
    version = "2"
    Config: ClassVar[type[ObjectKeypointsConfig]] = ObjectKeypointsConfig

    def resources(self) -> Resources:
        return Resources(num_cpus=1, batch_size=32)

    def describe(self) -> str:
        c = self.config
        return (
            f"object_keypoints: OpenCV ORB, {c.n_features} keypoints at long side {c.side}, and a Canny edge map "
            f"(classical)"
        )

    def compute(self, images: list[np.ndarray]) -> list[PhotoFeatures]:
        out = []
        for im in images:
            xy, desc = pack(*orb_keypoints(im, self.config.n_features, self.config.side))
            out.append(PhotoFeatures(keypoints=xy, descriptors=desc, edges=edge_map(im)))
        return out
