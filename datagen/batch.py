"""The unit of work that flows through the pipeline: one partition of source images and the samples made
from them, plus what each stage kept, dropped and why. Operators turn a WorkBatch into a WorkBatch."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np

from datagen.schema import PHOTO_FEATURES, ObjectProposal, PairRow, PhotoFeatures, RejectRecord, Sample

# What a stage reads and writes of a batch (Operator.reads / Operator.writes): the fields below, nothing else. A job
# checks before any work that each stage reads only what its plan gives or an earlier stage writes (jobs.py).
ENTRIES = "entries"  # WorkBatch.entries: the inputs to fetch
PAIRS = "pairs"  # WorkBatch.pairs
ITEMS = "items"  # WorkBatch.items: decoded photos
ITEM_FEATURES = {name: f"items.features.{name}" for name in PHOTO_FEATURES}  # SourceImage.features, per field
ITEM_PROPOSALS = "items.proposals"  # SourceImage.proposals: the objects each photo holds (object_proposals stage)
SAMPLES = "samples"  # WorkBatch.samples
SAMPLE_INSTRUCTION = "samples.instruction"  # Turn.instruction, instruction_method and instruction_record
SAMPLE_SCORES = "samples.scores"  # Provenance.scores
SAMPLE_JUDGE = "samples.judge"  # Sample.judge
SAMPLE_THRESHOLD_FAILURES = "samples.threshold_failures"  # Sample.threshold_failures
FIELDS = frozenset(
    [ENTRIES, PAIRS, ITEMS, *ITEM_FEATURES.values(), ITEM_PROPOSALS, SAMPLES, SAMPLE_INSTRUCTION, SAMPLE_SCORES]
    + [SAMPLE_JUDGE, SAMPLE_THRESHOLD_FAILURES]
)


@dataclass
class SourceImage:
    uri: str
    source_id: str  # content digest of the raw bytes
    image: np.ndarray  # HxWx3 uint8 RGB, already limited to max_side
    caption: str = ""
    meta: dict[str, Any] = field(default_factory=dict)  # what decoding found: original size, format, ...
    features: PhotoFeatures = field(default_factory=PhotoFeatures)  # pairing features, filled by feature operators
    # the objects it holds, best first, found once per photo for every edit that needs them; None: not looked for
    proposals: Optional[list[ObjectProposal]] = None


@dataclass
class StageStats:
    seconds: float = 0.0
    items_in: int = 0
    samples_out: int = 0
    skipped: dict[str, int] = field(default_factory=dict)  # reason -> count (not errors: e.g. "no person")
    # reason -> partitions: the stage ran otherwise than the recipe placed it (on the CPU although given a GPU) or
    # not at all (optional and unable to run on its workers); run.json's `fallbacks`
    fallbacks: dict[str, int] = field(default_factory=dict)

    def skip(self, reason: str, n: int = 1) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + n

    def fallback(self, reason: str, n: int = 1) -> None:
        self.fallbacks[reason] = self.fallbacks.get(reason, 0) + n

    def merge(self, other: "StageStats") -> None:
        self.seconds += other.seconds
        self.items_in += other.items_in
        self.samples_out += other.samples_out
        for k, v in other.skipped.items():
            self.skip(k, v)
        for k, v in other.fallbacks.items():
            self.fallback(k, v)

    def to_json(self) -> dict[str, Any]:
        return {
            "seconds": round(self.seconds, 4),
            "items_in": self.items_in,
            "samples_out": self.samples_out,
            "skipped": dict(self.skipped),
            **({"fallbacks": dict(self.fallbacks)} if self.fallbacks else {}),
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "StageStats":
        return cls(
            d.get("seconds", 0.0),
            d.get("items_in", 0),
            d.get("samples_out", 0),
            dict(d.get("skipped", {})),
            dict(d.get("fallbacks", {})),
        )


@dataclass
class QuarantineRow:
    uri: str
    reason: str
    stage: str
    detail: str = ""

    def to_json(self) -> dict[str, str]:
        return {"uri": self.uri, "reason": self.reason, "stage": self.stage, "detail": self.detail}


@dataclass
class WorkBatch:
    partition: str  # e.g. "PREFIX-00012" (the job names its prefix): names its shards and its done-marker
    spec: dict[str, Any]  # the rest of the partition's plan (e.g. the pairs job's row group), as the plan wrote it
    seed: int
    recipe: str  # recipe fingerprint, part of every sample key
    # the inputs to fetch and decode (uri, rel, tar member, caption, ...): from the plan, or from the pairs read
    entries: list[dict[str, Any]] = field(default_factory=list)
    pairs: list[PairRow] = field(default_factory=list)  # the pairs job's pairs, read from OUT/pairs.parquet
    items: list[SourceImage] = field(default_factory=list)
    samples: list[Sample] = field(default_factory=list)
    quarantine: list[QuarantineRow] = field(default_factory=list)
    stats: dict[str, StageStats] = field(default_factory=dict)
    # the samples the recipe's rules (FILTER and MIX stages) dropped, each with its RejectRecord: written to
    # OUT/rejects/ at the commit, and counted in the funnel
    rejects: list[Sample] = field(default_factory=list)
    # task -> samples that reached the recipe's rules (the funnel's `made`), counted when the first rule stage runs;
    # None while none has
    made: dict[str, int] | None = None

    def stage(self, name: str) -> StageStats:
        if name not in self.stats:
            self.stats[name] = StageStats()
        return self.stats[name]

    def reject(self, sample: Sample, stage: str, reasons: list[str]) -> None:
        """Drop `sample` from what ships, keeping it (with why) among the partition's rejects."""
        sample.rejected = RejectRecord(stage, list(reasons))
        self.rejects.append(sample)

    def rng(self, *parts: Any) -> np.random.Generator:
        """A generator seeded by the recipe seed and `parts` (e.g. source id and operator name): the same
        inputs and recipe give the same random choices, whatever partition or worker they land on."""
        return np.random.default_rng(derive_seed(self.seed, *parts))


def derive_seed(seed: int, *parts: Any) -> int:
    h = hashlib.sha256(repr((seed,) + parts).encode()).digest()
    return int.from_bytes(h[:8], "little")
