"""The base of per-image feature operators for pairing (encoders, keypoints, faces, hashes): a batch of images at a
time, results into each SourceImage's typed features (schema.PhotoFeatures); an image that breaks the model is
quarantined with the error rather than losing its batch."""

from __future__ import annotations

import logging
from typing import ClassVar

import numpy as np

from datagen.batch import ITEMS, SourceImage, WorkBatch
from datagen.isolation import FEATURE_ERROR, isolate
from datagen.operator import Operator, Role
from datagen.schema import PhotoFeatures

log = logging.getLogger(__name__)


class FeatureOperator(Operator):
    """Computes one kind of per-image feature for a whole batch of images at a time."""

    role: ClassVar[Role] = Role.FEATURES
    reads = (ITEMS,)

    def compute(self, images: list[np.ndarray]) -> list[PhotoFeatures]:
        """One PhotoFeatures per image, in order, with only this operator's fields set."""
        raise NotImplementedError

    def batches_per_call(self) -> int:
        """Model batches handed to one `compute` call: more than one lets an operator prepare its next batch while
        the model runs the current one (a failing call is retried image by image all the same)."""
        return 1

    def process(self, batch: WorkBatch) -> WorkBatch:
        bs = max(1, self.resources().batch_size) * max(1, self.batches_per_call())
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
                    it.features.merge(res)
                    kept.append(it)
        batch.items = kept
        return batch
