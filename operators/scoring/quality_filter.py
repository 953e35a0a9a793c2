"""The quality filter: drops samples whose scores fall outside the recipe's per-task thresholds or that fail the
objective edit checks (no_change, outside_change, size_changed), counting each failed rule as a reason and keeping
each dropped sample among the partition's rejects (OUT/rejects/); or, with keep_below_threshold, marks them (score
failed_thresholds, and which ones in Sample.threshold_failures) so that thresholds can be studied before they are
enforced. A score a threshold names that the sample lacks because its scorer failed on it (Sample.unscored) drops it
as score_missing unless `missing: keep`; a score that does not apply to the turn (no input in text-to-image) or whose
scorer the recipe does not run is not judged."""

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


NO_CHANGE, OUTSIDE_CHANGE, SIZE_CHANGED = "no_change", "outside_change", "size_changed"


class EditChecks(Section):
    """Objective checks on every masked edit (a turn whose first input carries an edit mask), judge or not, each
    failure named by its rule: no_change (the inside barely changed), outside_change (what the mask keeps was
    repainted), size_changed (the target is not the input's size). null turns a check off."""

    no_change: Optional[float] = Field(
        0.01,
        ge=0,
        le=1,
        description="pixel_l1_inside (mean absolute change inside the mask, 0-1) below this: no_change. 0.01 is "
        "about 2.5 grey levels on average, under a JPEG round trip's noise",
    )
    outside_l1: Optional[float] = Field(
        0.05,
        ge=0,
        le=1,
        description="pixel_l1_outside above this: outside_change (the demo's classical edits keep 0.000; a "
        "whole-photo repaint is 0.1 and more)",
    )
    outside_ssim: Optional[float] = Field(
        0.75,
        ge=-1,
        le=1,
        description="pixel_ssim_outside below this: outside_change (the SSIM window reaches across the mask's edge: "
        "the demo's inpainting keeps 0.91 and more)",
    )
    outside_dino: Optional[float] = Field(
        0.85,
        ge=-1,
        le=1,
        description="dino_outside (DINOv2 cosine of the outside regions, where dino_score runs) below this: "
        "outside_change",
    )
    same_size: bool = Field(True, description="a target of another size than its input: size_changed")
    skip: list[str] = Field(
        ["layer_editing"],
        description="task groups or task names whose masks are not edit regions and are not checked (a layer's "
        "alpha: Layer Fusion keeps the inside and fills the outside)",
    )

    @field_validator("skip")
    @classmethod
    def _known(cls, v: list[str]) -> list[str]:
        allowed = set(schema.TASK_GROUPS) | set(schema.TASKS)
        bad = sorted(set(v) - allowed)
        if bad:
            raise ValueError(
                f"quality_filter.edit_checks.skip: unknown {bad}; allowed: task groups {list(schema.TASK_GROUPS)} or "
                f"task names {sorted(schema.TASKS)}"
            )
        return v


def edit_failures(sample: Sample, checks: EditChecks) -> list[str]:
    """The edit checks a masked edit fails, as 'RULE: detail'; [] for a turn that is not a masked edit."""
    turn = sample.current
    if not turn.inputs or turn.inputs[0].mask is None:
        return []
    if turn.task in checks.skip or schema.TASKS[turn.task].group in checks.skip:
        return []
    scores, out = sample.provenance.scores, []
    inp, target = turn.inputs[0], turn.target
    if checks.same_size and inp.size != target.size:
        out.append(f"{SIZE_CHANGED}: {inp.size[0]}x{inp.size[1]} -> {target.size[0]}x{target.size[1]}")
    v = scores.get("pixel_l1_inside")
    if checks.no_change is not None and v is not None and v < checks.no_change:
        out.append(f"{NO_CHANGE}: pixel_l1_inside<{checks.no_change:g}")
    for name, bound, below in (
        ("pixel_l1_outside", checks.outside_l1, False),
        ("pixel_ssim_outside", checks.outside_ssim, True),
        ("dino_outside", checks.outside_dino, True),
    ):
        v = scores.get(name)
        if bound is None or v is None:
            continue
        if below and v < bound:
            out.append(f"{OUTSIDE_CHANGE}: {name}<{bound:g}")
        elif not below and v > bound:
            out.append(f"{OUTSIDE_CHANGE}: {name}>{bound:g}")
    return out


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

    # exclude: out of the fingerprint, as `missing` (which samples ship is the filter's counted business)
    edit_checks: EditChecks = Field(
        default_factory=EditChecks,
        exclude=True,
        description="objective checks on every masked edit: no_change, outside_change, size_changed",
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
            # the edit checks first: the funnel counts a sample under its first reason
            failed = edit_failures(s, self.config.edit_checks) + failures(s.provenance.scores, bounds)
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
                batch.reject(s, self.name, failed)
            else:
                keep.append(s)
        batch.samples = keep
        return batch
