"""Turn pairs of related real photos into CU samples of their route's task (General Editing, Reference Generation,
Facial Editing): input [image a] -> target image b. The instruction is left to the instruction stage; the target's
caption is passed on when known. Pairs whose images could not be read are counted, never dropped silently."""

from __future__ import annotations

import math
from typing import Any

from datagen import schema
from datagen.batch import ITEMS, PAIRS, SAMPLE_SCORES, SAMPLES, QuarantineRow, WorkBatch
from datagen.operator import Operator, Resources, Role
from datagen.schema import Frame, Provenance, Sample, Turn

IMAGE_MISSING = "pair: an image of the pair could not be read"
BAD_PAIR = "pair_error"


class PairSamples(Operator):
    name = "pair_samples"
    version = "1"
    role = Role.MAKE  # the pairs job makes its CUs here; the images job never lists it
    reads = (
        ITEMS,
        PAIRS,
    )
    writes = (
        SAMPLES,
        SAMPLE_SCORES,
    )

    def __init__(self, pairing_params: dict[str, Any] | None = None, **context: Any):
        super().__init__(None, **context)
        self.pairing_params = dict(pairing_params or {})

    def resources(self) -> Resources:
        return Resources(num_cpus=1)

    def params(self) -> dict[str, Any]:
        return dict(self.pairing_params)

    def describe(self) -> str:
        return "pair_samples: one CU per pair, input image a -> target image b"

    def process(self, batch: WorkBatch) -> WorkBatch:
        stats = batch.stage(self.name)
        by_uri = {it.uri: it for it in batch.items}
        base = self.params()
        for r in batch.pairs:
            a, b = by_uri.get(r.uri_a), by_uri.get(r.uri_b)
            if a is None or b is None:
                stats.skip(IMAGE_MISSING)
                continue
            try:
                task = schema.TASKS[r.task]
                turn = Turn(
                    task=task.name,
                    direction=task.direction,
                    inputs=[Frame(a.image)],
                    target=Frame(b.image),
                    caption=b.caption or r.caption_b or "",
                )
            except (KeyError, ValueError) as err:
                batch.quarantine.append(
                    QuarantineRow(r.uri_a, BAD_PAIR, self.name, f"pair with {r.uri_b}: {type(err).__name__}: {err}")
                )
                continue
            scores = {"pass1": float(r.score_pass1)}
            if r.score_pass2 is not None and not math.isnan(r.score_pass2):
                scores["pass2"] = float(r.score_pass2)
            prov = Provenance(
                sources=[a.uri, b.uri],
                source_ids=[a.source_id, b.source_id],
                operator=self.name,
                operator_version=self.version,
                params={
                    **base,
                    "route": r.route,
                    "set_id": r.set_id,
                    "cluster": int(r.cluster),
                    "linked": bool(r.linked),
                },
                scores=scores,
                recipe=batch.recipe,
            )
            batch.samples.append(Sample(turns=[turn], provenance=prov))
        return batch
