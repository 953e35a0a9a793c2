"""The base of per-image feature operators for pairing (encoders, keypoints, faces, hashes): a batch of images at a
time, results into each SourceImage's meta under datagen.pairing.features' keys; an image that breaks the model is
quarantined with the error rather than losing its batch."""

from __future__ import annotations

import logging
from typing import Any, ClassVar

import numpy as np

from datagen.batch import SourceImage, WorkBatch
from datagen.isolation import FEATURE_ERROR, isolate
from datagen.operator import Operator, Role

log = logging.getLogger(__name__)


class FeatureOperator(Operator):
    """Computes one kind of per-image feature for a whole batch of images at a time."""

    role: ClassVar[Role] = Role.FEATURES

    def compute(self, images: list[np.ndarray]) -> list[dict[str, Any]]:
        """One dict of meta entries per image, in order."""
        raise NotImplementedError

    def process(self, batch: WorkBatch) -> WorkBatch:
        bs = max(1, self.resources().batch_size)
        kept: list[SourceImage] = []
        for start in range(0, len(batch.items), bs):
            runs, failed = isolate(
                lambda chunk: self.compute([it.image for it in chunk]),
                batch.items[start : start + bs],
                stage=self.name,
                code=FEATURE_ERROR,
                uri=lambda it: it.uri,
                where=f"partition {batch.partition}: ",
            )
            batch.quarantine.extend(f.quarantine_row() for f in failed)
            for chunk, results in runs:
                for it, res in zip(chunk, results):
                    it.meta.update(res)
                    kept.append(it)
        batch.items = kept
        return batch
