"""The quality filter: drops samples whose scores fall outside the recipe's per-task thresholds, counting each
failed threshold as a reason, or with keep_below_threshold marks them (score failed_thresholds, and which ones in
Sample.threshold_failures) so that thresholds can be studied before they are enforced. A score a threshold names
that the sample lacks because its scorer failed on it (Sample.unscored) drops it as score_missing unless
`missing: keep`; a score that does not apply to the turn (no input in text-to-image) or whose scorer the recipe
does not run is not judged."""

from __future__ import annotations

from typing import ClassVar, Literal, Optional

from pydantic import Field, field_validator, model_validator

from datagen import schema
from datagen.batch import SAMPLE_SCORES, SAMPLE_THRESHOLD_FAILURES, SAMPLES, WorkBatch
from datagen.config import Section
from datagen.operator import Operator, OperatorConfig, Role
from datagen.schema import Sample
from operators.scoring.base import own_provenance


class Bound(Section):
    min: Optional[float] = Field(None, description="the sample fails when its score is below this")
    max: Optional[float] = Field(None, description="the sample fails when its score is above this")

    @model_validator(mode="after")
    def _check(self):
        if self.min is None and self.max is None:
            raise ValueError("a threshold needs min, max or both")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min} is above max {self.max}")
        return self


Thresholds = dict[str, dict[str, Bound]]

_IP2P = {"clip_text": Bound(min=0.2), "clip_direction": Bound(min=0.2), "clip_image": Bound(min=0.7)}
# Defaults from the peers (CLIP ViT-L/14 cosines; SigLIP's run lower: set your own when clip_scores uses SigLIP).
# Keys: '*' (every task), an ACE task group, or a task name; the more specific key wins per score.
DEFAULT_THRESHOLDS: Thresholds = {
    # open_nsfw's README: above 0.8 very likely NSFW. AnyEdit's pre-filter: aesthetic above 2. datagen's own: a target
    # identical to its input teaches nothing (grayscale of a photo that already is gray; AnyEdit's tone edits ask L1 >
    # 0.2)
    "*": {"nsfw": Bound(max=0.8), "aesthetic": Bound(min=2.0), "pixel_l1": Bound(min=0.001)},
    # InstructPix2Pix: CLIP image-caption >= 0.2, directional >= 0.2, image-image >= 0.7
    "element_editing": dict(_IP2P),
    "semantic_editing": dict(_IP2P),
    # UltraEdit adds DINOv2 image-image >= 0.3 on free-form edits
    "General Editing": {**_IP2P, "dino_image": Bound(min=0.3)},
    # AnyEdit's per-task table: add CLIP > 0.2, remove CLIP > 0.15 (the object detectors are not datagen's)
    "Add Object": {**_IP2P, "clip_text": Bound(min=0.2)},
    "Remove Object": {**_IP2P, "clip_text": Bound(min=0.15)},
    # UltraEdit's region edits: the mask covers between 1% and 90% of the image
    "Inpainting": {"mask_area": Bound(min=0.01, max=0.9)},
}


def _check_keys(v: Thresholds, key: str) -> Thresholds:
    allowed = {"*"} | set(schema.TASK_GROUPS) | set(schema.TASKS)
    for k, scores in v.items():
        if k not in allowed:
            raise ValueError(
                f"{key}: unknown key {k!r}; allowed: '*', task groups {list(schema.TASK_GROUPS)} or task names "
                f"{sorted(schema.TASKS)}"
            )
        bad = sorted(set(scores) - set(schema.SCORES))
        if bad:
            raise ValueError(f"{key}.{k}: unknown score(s) {bad}; allowed: {sorted(schema.SCORES)}")
    return v


class QualityFilterConfig(OperatorConfig):
    thresholds: Thresholds = Field(
        default_factory=dict, description="'*', task group or task name -> score -> {min, max}"
    )
    use_defaults: bool = Field(
        True,
        description="start from DEFAULT_THRESHOLDS (InstructPix2Pix, UltraEdit, AnyEdit, "
        "open_nsfw); the recipe's thresholds override them per score",
    )
    keep_below_threshold: bool = Field(
        False, description="keep failing samples and only mark them (score failed_thresholds)"
    )
    # exclude: left out of the recipe fingerprint (part of every sample key), like placement; which samples ship
    # is the filter's counted business, and a recipe that never set it keeps its keys
    missing: Literal["drop", "keep"] = Field(
        "drop",
        exclude=True,
        description="a sample lacking a score that a threshold in effect names, because the scorer that applies to "
        "its turn failed on it: drop (counted as score_missing) or keep it unjudged on that score (counted)",
    )

    @field_validator("thresholds")
    @classmethod
    def _known(cls, v: Thresholds) -> Thresholds:
        return _check_keys(v, "quality_filter.thresholds")


def thresholds_for(task: str, tables: list[Thresholds]) -> dict[str, Bound]:
    """The bounds that apply to a task: '*' then its group then its name, in each table in order; later wins."""
    group = schema.TASKS[task].group
    out: dict[str, Bound] = {}
    for table in tables:
        for key in ("*", group, task):
            out.update(table.get(key, {}))
    return out


SCORE_MISSING = "score_missing"


def missing_scores(sample: Sample, bounds: dict[str, Bound]) -> list[str]:
    """The scores a threshold names that the sample lacks although a scorer applied to its turn (Sample.unscored)."""
    return sorted(n for n in bounds if n not in sample.provenance.scores and n in sample.unscored)


def failures(scores: dict[str, float], bounds: dict[str, Bound]) -> list[str]:
    """Each failed threshold as 'NAME<MIN' or 'NAME>MAX'; scores the sample lacks are not judged."""
    out = []
    for name, b in sorted(bounds.items()):
        v = scores.get(name)
        if v is None:
            continue
        if b.min is not None and v < b.min:
            out.append(f"{name}<{b.min:g}")
        if b.max is not None and v > b.max:
            out.append(f"{name}>{b.max:g}")
    return out


class QualityFilter(Operator):
    name = "quality_filter"
    version = "1"
    role = Role.FILTER
    reads = (SAMPLES,)
    writes = (
        SAMPLES,
        SAMPLE_SCORES,
        SAMPLE_THRESHOLD_FAILURES,
    )
    Config: ClassVar[type[QualityFilterConfig]] = QualityFilterConfig

    def tables(self) -> list[Thresholds]:
        return ([DEFAULT_THRESHOLDS] if self.config.use_defaults else []) + [self.config.thresholds]

    def describe(self) -> str:
        mode = "keeps and marks" if self.config.keep_below_threshold else "drops"
        return (
            f"quality_filter: {mode} samples outside the thresholds (defaults "
            f"{'on' if self.config.use_defaults else 'off'}, recipe {self.config.thresholds})"
        )

    def process(self, batch: WorkBatch) -> WorkBatch:
        stats = batch.stage(self.name)
        keep: list[Sample] = []
        tables = self.tables()
        own_provenance(batch.samples)
        for s in batch.samples:
            bounds = thresholds_for(s.task, tables)
            failed = failures(s.provenance.scores, bounds)
            missing = missing_scores(s, bounds)
            if missing and self.config.missing == "keep":
                for name in missing:
                    stats.skip(f"kept: {SCORE_MISSING}: {name}")
            elif missing:
                failed += [f"{SCORE_MISSING}: {name}" for name in missing]
                if not self.config.keep_below_threshold:
                    stats.skip(SCORE_MISSING)
            if self.config.keep_below_threshold:
                s.provenance.scores["failed_thresholds"] = float(len(failed))
                if failed:
                    s.threshold_failures = list(failed)
                    for r in failed:
                        stats.skip(f"marked: {r}")
                keep.append(s)
            elif failed:
                stats.skip("dropped samples")
                for r in failed:
                    stats.skip(f"dropped: {r}")
            else:
                keep.append(s)
        batch.samples = keep
        return batch
