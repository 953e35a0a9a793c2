"""What every scorer shares: it looks at the current turn of each finished sample (CU or LCU), scores what that turn
has (a Text-to-Image turn has no input, a condition turn has a map), skips what does not apply with a counted reason,
and never drops a sample: a scorer that fails on one sample leaves it unscored, counts why, and lists the scores it
owed in Sample.unscored, so that the quality filter can tell a failed score (dropped: score_missing) from one that
does not apply."""

from __future__ import annotations

import dataclasses
import logging
import math
from dataclasses import dataclass
from typing import ClassVar, Optional

import numpy as np

from datagen import schema
from datagen.batch import SAMPLE_SCORES, SAMPLES, WorkBatch
from datagen.isolation import SCORE_ERROR, isolate, sample_uri
from datagen.operator import Operator, OperatorConfig, Role
from datagen.schema import Frame, Sample

log = logging.getLogger(__name__)


class ScorerConfig(OperatorConfig):
    pass


@dataclass
class TurnView:
    """The parts of a sample's current turn that scorers read."""

    sample: Sample
    input: Optional[Frame]  # the turn's first input (None for text-to-image)
    target: Frame
    instruction: str
    caption: str  # the target's caption, when known

    @property
    def mask(self) -> Optional[np.ndarray]:
        """The input's edit mask (255 = edit), None when the whole image is editable."""
        return self.input.mask if self.input is not None else None

    def photos(self) -> list[Frame]:
        """Every photo of the turn (inputs and target), condition maps left out."""
        turn = self.sample.current
        return [f for f in (*turn.inputs, turn.target) if f.role == schema.ROLE_PHOTO]


def own_provenance(samples: list[Sample]) -> None:
    """Give every sample a provenance of its own: a maker that shared one between samples (both directions of a
    condition) would otherwise see one sample's scores and records land on the other."""
    seen: set[int] = set()
    for s in samples:
        if id(s.provenance) in seen:
            p = s.provenance
            s.provenance = dataclasses.replace(p, params=dict(p.params), scores=dict(p.scores))
        seen.add(id(s.provenance))


def view(sample: Sample) -> TurnView:
    turn = sample.current
    return TurnView(sample, turn.inputs[0] if turn.inputs else None, turn.target, turn.instruction, turn.caption)


class Scorer(Operator):
    """Subclasses say which turns they apply to (`skip_reason`) and score a list of views at once (`score`).
    `partition_memo` is a dict that lives while one partition is scored, across its chunks of `batch_size` views:
    a photo is a frame of samples in every chunk (each condition both ways, its edits), and what a scorer computes
    of it alone can be kept there. Per partition, not per process, so a score never depends on which partitions a
    worker saw before."""

    role = Role.SCORE
    reads = (SAMPLES,)
    writes = (SAMPLE_SCORES,)
    Config = ScorerConfig
    partition_memo: Optional[dict] = None
    makes: ClassVar[tuple[str, ...]] = ()  # the score names (datagen.schema.SCORES) this scorer can make

    def unscored(self, sample: Sample, names: tuple[str, ...] | list[str] | None = None) -> None:
        """This scorer applied to the sample's turn but did not make `names` (default: every score it makes)."""
        new = [n for n in (self.makes if names is None else names) if n not in sample.unscored]
        if new:  # a new list: samples copied with dataclasses.replace may share the old one
            sample.unscored = [*sample.unscored, *new]

    def skip_reason(self, v: TurnView) -> Optional[str]:
        """Why this scorer does not apply to the turn (counted in the stage stats), None when it does."""
        return None

    def score(self, views: list[TurnView]) -> list[dict[str, float] | str]:
        """Scores per view, in order; a string instead says why this view got none (a counted fallback)."""
        raise NotImplementedError

    def process(self, batch: WorkBatch) -> WorkBatch:
        stats = batch.stage(self.name)
        own_provenance(batch.samples)
        todo = []
        for s in batch.samples:
            v = view(s)
            why = self.skip_reason(v)
            if why:
                stats.skip(f"not scored: {why}")
            else:
                todo.append(v)
        self.partition_memo = {}
        try:
            self._score_chunks(batch, todo)
        finally:
            self.partition_memo = None
        return batch

    def _score_chunks(self, batch: WorkBatch, todo: list[TurnView]) -> None:
        stats = batch.stage(self.name)
        step = max(1, self.resources().batch_size)
        for start in range(0, len(todo), step):
            runs, failed = isolate(
                self._score_checked,
                todo[start : start + step],
                stage=self.name,
                code=SCORE_ERROR,
                uri=lambda v: sample_uri(v.sample),
                label=lambda v: f"sample {v.sample.key}",
                where=f"partition {batch.partition}: ",
            )
            for f in failed:  # a sample is never lost to a scorer: it stays, unscored, and the reason is counted
                stats.skip(f.reason)
                log.warning("%s left unscored (%s)", f.uri, f.detail)
                self.unscored(f.item.sample)
            for chunk, results in runs:
                for v, scores in zip(chunk, results):
                    if isinstance(scores, str):
                        stats.skip(f"fallback: {scores}")
                        self.unscored(v.sample)
                    else:
                        self.record(v.sample, scores)

    def _score_checked(self, views: list[TurnView]) -> list[dict[str, float] | str]:
        results = self.score(views)
        if len(results) != len(views):
            raise RuntimeError(f"{self.name} returned {len(results)} results for {len(views)} samples")
        return results

    def record(self, sample: Sample, scores: dict[str, float]) -> None:
        for k, value in scores.items():
            if k not in schema.SCORES:
                raise ValueError(f"{self.name} made score {k!r}, which datagen.schema.SCORES does not define")
            value = float(value)
            if math.isfinite(value):
                sample.provenance.scores[k] = round(value, 6)
            else:
                self.unscored(sample, [k])
