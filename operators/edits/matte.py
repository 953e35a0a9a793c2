"""The base of the edits made along the photo's foreground matte (background change, layers, subject references):
the subject and its matte per photo, classical (GrabCut from the frame) or grown from a detector's best object."""

from __future__ import annotations

from typing import Any, Iterator, Optional

import numpy as np

from datagen.batch import WorkBatch
from datagen.devices import resolve_device
from operators.edits.base import CACHE, NO_OBJECT, EditOperator, image_key, proposals_for
from operators.edits.object_proposals import ProposalConfig, Proposer, foreground_matte, subject, subject_matte

NO_MATTE = "foreground matte covers too little or too much of the photo"


def matte_for(proposer: Proposer, cfg: ProposalConfig, item, min_foreground: float):
    """(subject proposal, its matte) of an item, or (None, None); computed once per worker. Classical: GrabCut from the
    photo's frame (the main subject, named so); model: GrabCut refining the detector's best object of that size."""
    if cfg.backend == "classical":
        p = CACHE.get(("subject", image_key(item)), lambda: subject_matte(item.image))
        return p, (p.mask if p is not None else None)
    props = proposals_for(proposer, cfg, item)
    p = subject(props, min_foreground)
    return p, CACHE.get(
        ("matte", image_key(item), cfg.model_dump_json(), p.box if p else None), lambda: foreground_matte(item.image, p)
    )


def describe_matte(cfg: ProposalConfig) -> str:
    if cfg.backend == "classical":
        return "the main subject by OpenCV GrabCut from the photo's frame (classical)"
    return f"GrabCut refining the best object of {Proposer(cfg).describe()}"


class MatteEditOperator(EditOperator):
    """An edit along the photo's foreground matte (background change, layers, subject references): one proposer per
    worker, and per photo its subject and matte, photos without one (or with a matte outside the foreground share
    limits) counted and skipped."""

    def __init__(self, config=None, **context: Any):
        super().__init__(config, **context)
        self.stateful = self.uses_model()
        self._proposer: Optional[Proposer] = None

    def uses_model(self) -> bool:
        return self.config.proposals.backend == "model"

    def setup(self) -> None:
        if self._proposer is None:
            self._proposer = Proposer(self.config.proposals, resolve_device(self.config.device))
            self._proposer.setup()

    def subjects(self, batch: WorkBatch, stats) -> Iterator[tuple[Any, Any, np.ndarray, float]]:
        """(item, proposal, matte, foreground share) for each photo with a usable matte."""
        c = self.config
        for item in batch.items:
            p, matte = matte_for(self._proposer, c.proposals, item, c.min_foreground)
            if matte is None:
                stats.skip(NO_OBJECT)
                continue
            share = float((matte > 0).mean())
            if not c.min_foreground <= share <= c.max_foreground:
                stats.skip(NO_MATTE)
                continue
            yield item, p, matte, share
