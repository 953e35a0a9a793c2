"""The base of per-image feature operators for pairing (encoders, keypoints, faces, hashes): a batch of images at a
time, results into each SourceImage's typed features (schema.PhotoFeatures); an image that breaks the model is
quarantined with the error rather than losing its batch."""

from __future__ import annotations

import logging
from typing import ClassVar

import numpy as np

from datagen.batch import ITEMS, QuarantineRow, SourceImage, WorkBatch
from datagen.operator import Operator, Role
from datagen.schema import PhotoFeatures

log = logging.getLogger(__name__)

FEATURE_ERROR = "feature_error"


class FeatureOperator(Operator):
    """Computes one kind of per-image feature for a whole batch of images at a time."""

    role: ClassVar[Role] = Role.FEATURES
    reads = (ITEMS,)

    def compute(self, images: list[np.ndarray]) -> list[PhotoFeatures]:
        """One PhotoFeatures per image, in order, with only this operator's fields set."""
        raise NotImplementedError

    def process(self, batch: WorkBatch) -> WorkBatch:
        bs = max(1, self.resources().batch_size)
        kept: list[SourceImage] = []
        for start in range(0, len(batch.items), bs):
            chunk = batch.items[start : start + bs]
            try:
                results = self.compute([it.image for it in chunk])
            except Exception as err:  # noqa: BLE001 - isolate the image that breaks the model, keep the others
                log.warning("%s: batch failed (%s: %s); retrying image by image", self.name, type(err).__name__, err)
                results = []
                for it in chunk:
                    try:
                        results.append(self.compute([it.image])[0])
                    except Exception as one:  # noqa: BLE001
                        batch.quarantine.append(
                            QuarantineRow(it.uri, FEATURE_ERROR, self.name, f"{type(one).__name__}: {one}")
                        )
                        results.append(None)
            for it, res in zip(chunk, results):
                if res is None:
                    continue
                it.features.merge(res)
                kept.append(it)
        batch.items = kept
        return batch


def gpu_request(device: str, num_gpus: float | None) -> dict[str, float]:
    """The GPU part of a model feature operator's Resources: none on `device: cpu`, the recipe's `num_gpus` when set,
    else one GPU per actor wherever the cluster has GPUs (the runtime decides; the operator never probes)."""
    if device == "cpu":
        return {"num_gpus": 0.0}
    if num_gpus is not None:
        return {"num_gpus": float(num_gpus)}
    return {"gpus_if_available": 1.0}
