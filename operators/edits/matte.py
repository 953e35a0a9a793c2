"""The base of the edits made along the photo's foreground matte (background change, layers, subject references):
the subject and its matte per photo, classical (GrabCut from the frame) or grown from the photo's best proposed
object when the object_proposals stage runs a detector."""

from __future__ import annotations

from typing import Iterator

import numpy as np

from datagen.batch import SourceImage, WorkBatch
from operators.edits.base import CACHE, NO_OBJECT, ProposalEdit, image_key, proposals_of
from operators.edits.object_proposals import ProposalConfig, Proposer, foreground_matte, subject, subject_matte

NO_MATTE = "foreground matte covers too little or too much of the photo"


def matte_for(cfg: ProposalConfig, item: SourceImage, min_foreground: float, stage: str):
    """(subject proposal, its matte) of an item, or (None, None); computed once per worker. Classical: GrabCut from the
    photo's frame (the main subject, named so); model: GrabCut refining the photo's best proposed object of that
    size (its proposals from the object_proposals stage)."""
    if cfg.backend == "classical":
        p = CACHE.get(("subject", image_key(item)), lambda: subject_matte(item.image))
        return p, (p.mask if p is not None else None)
    p = subject(proposals_of(item, stage), min_foreground)
    return p, CACHE.get(
        ("matte", image_key(item), cfg.model_dump_json(), p.box if p else None), lambda: foreground_matte(item.image, p)
    )


def describe_matte(cfg: ProposalConfig) -> str:
    if cfg.backend == "classical":
        return "the main subject by OpenCV GrabCut from the photo's frame (classical)"
    return f"GrabCut refining the best object of {Proposer(cfg).describe()}"


class MatteEditOperator(ProposalEdit):
    """An edit along the photo's foreground matte (background change, layers, subject references): per photo its
    subject and matte, photos without one (or with a matte outside the foreground share limits) counted and skipped.
    It holds no detector of its own: with model proposals it reads the object_proposals stage's."""

    def reads_proposals(self) -> bool:
        return self.proposal_settings.backend == "model"

    def subjects(self, batch: WorkBatch, stats) -> Iterator[tuple[SourceImage, object, np.ndarray, float]]:
        """(item, proposal, matte, foreground share) for each photo with a usable matte."""
        c = self.config
        for item in batch.items:
            p, matte = matte_for(self.proposal_settings, item, c.min_foreground, self.name)
            if matte is None:
                stats.skip(NO_OBJECT)
                continue
            share = float((matte > 0).mean())
            if not c.min_foreground <= share <= c.max_foreground:
                stats.skip(NO_MATTE)
                continue
            yield item, p, matte, share
