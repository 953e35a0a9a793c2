"""A vision-language judge on three axes, as the 2025-26 editing datasets score every pair: instruction following,
preservation (nothing outside the edit changed) and perceptual quality, each 0-10, with a one-sentence reason;
overall = sqrt(min(following, preservation) x quality) as VIEScore and EditScore combine them (text-to-image has no
preservation: sqrt(following x quality)). The question is per kind of turn (judge_prompts.py); `style: editscore`
asks EditScore's two questions in the shape its published models answer. `passes: N` asks N times (seeded apart)
and keeps the mean, and the spread of the overall as `judge_spread`. Images reach the judge as PNG at a recorded
size. Every record names the judge's model, the prompt and its hash, the decoding settings and the passes.

An answer that cannot be read, or a request the backend fails, is a counted fallback (`fallback: REASON`): no judge
score, the reason in the sample's judge record (Sample.judge), and the scores listed as unscored, so that a quality
filter naming them drops the sample (score_missing) unless `missing: keep`. A pass that fails while others answer
is counted (`pass fallback: REASON`) and left out of the mean. More failed requests than the recipe allows (backend
max_failure_rate, max_consecutive_failures) stop the job."""

from __future__ import annotations

import json
import logging
import math
import re
from collections import Counter
from typing import Any, ClassVar, Literal, Optional

import numpy as np
from pydantic import Field, field_validator

from datagen import schema
from datagen.batch import SAMPLE_JUDGE, SAMPLE_SCORES, WorkBatch, derive_seed
from datagen.operator import Resources
from datagen.schema import JudgeRecord, Sample
from operators.models.backends.base import (
    BackendConfig,
    ChatBackend,
    ChatRequest,
    FailureBudget,
    answers,
    downscale,
    image_parts,
    make_backend,
)
from operators.scoring.base import Scorer, ScorerConfig, TurnView, view
from operators.scoring.judge_prompts import (
    AXES,
    FOLLOWING,
    MARKER,
    PRESERVATION,
    QUALITY,
    JudgePrompt,
    datagen_prompt,
    editscore_prompts,
)

log = logging.getLogger(__name__)

__all__ = ["MARKER", "JudgeScores", "JudgeScoresConfig", "parse_judge_answer", "parse_editscore_answer", "combine"]

_JSON = re.compile(r"\{[^{}]*\}", re.S)
_NUMBER = r"(\d+(?:\.\d+)?)(?:\s*/\s*10)?"
_KEYS = {
    FOLLOWING: ("following", "instruction_following", "prompt_following", "editing_success", "success", "sc"),
    PRESERVATION: ("preservation", "consistency", "over_editing", "overediting", "preserved"),
    QUALITY: ("quality", "perceptual_quality", "pq", "visual_quality"),
}
_PROSE = {
    axis: re.compile(
        rf"(?:{'|'.join(k.replace('_', '[ _]') for k in keys if len(k) > 2)})[\w ]*?[\"']?\s*[:=\-]\s*[\"']?{_NUMBER}",
        re.I,
    )
    for axis, keys in _KEYS.items()
}
# the judge's scores: one per axis, VIEScore's semantic score, the overall and (passes > 1) the overall's spread
SCORE_OF = {FOLLOWING: "judge_following", PRESERVATION: "judge_preservation", QUALITY: "judge_quality"}
SEMANTICS, OVERALL, SPREAD = "judge_semantics", "judge_overall", "judge_spread"


def _number(v: Any) -> Optional[float]:
    if isinstance(v, bool):
        return None
    if isinstance(v, (int, float)):
        return float(v)
    if isinstance(v, str):
        m = re.fullmatch(r"\s*" + _NUMBER + r"\s*", v)
        return float(m.group(1)) if m else None
    return None


def _sentence(text: str) -> str:
    """The first sentence of a reason, whitespace collapsed."""
    text = re.sub(r"\s+", " ", text).strip()
    m = re.match(r"(.+?[.!?])(\s|$)", text)
    return m.group(1) if m else text


def parse_judge_answer(text: Optional[str], axes: tuple[str, ...] = AXES) -> tuple[dict[str, float], str] | str:
    """({axis: score}, reason) from a datagen-style answer, or why it cannot be read: empty_answer, no_scores (an
    axis of `axes` missing), out_of_range. Takes a JSON object anywhere in the text (key variants, "7/10"
    strings), else "following: 7 ... quality: 8" in prose (then the answer itself is the reason)."""
    if not text or not text.strip():
        return "empty_answer"
    found: dict[str, float] = {}
    reason: Optional[str] = None
    for m in _JSON.finditer(text):
        try:
            obj = json.loads(m.group(0))
        except ValueError:
            continue
        if not isinstance(obj, dict):
            continue
        low = {str(k).lower().replace(" ", "_").replace("-", "_"): v for k, v in obj.items()}
        for axis in axes:
            for k in _KEYS[axis]:
                if k in low and _number(low[k]) is not None:
                    found.setdefault(axis, _number(low[k]))
                    break
        if found:
            said = low.get("reason", low.get("reasoning"))
            reason = said if isinstance(said, str) else ""
        if len(found) == len(axes):
            break
    for axis in axes:
        if axis not in found:
            m = _PROSE[axis].search(text)
            if m:
                found[axis] = float(m.group(1))
    if len(found) < len(axes):
        return "no_scores"
    if not all(0 <= v <= 10 for v in found.values()):
        return "out_of_range"
    if reason is None:  # prose: the answer itself is the reason
        reason = text
    return {a: found[a] for a in axes}, _sentence(reason)


_ES_SCORE = re.compile(r"[\"']?score[\"']?\s*[:=]\s*\[([^\]]*)\]", re.I)
_ES_REASON = re.compile(r"[\"']?reasoning[\"']?\s*[:=]\s*[\"'](.*?)[\"']\s*[,}]", re.I | re.S)


def parse_editscore_answer(text: Optional[str], n: int, score_range: int) -> tuple[list[float], str] | str:
    """(scores, reasoning) from an EditScore-style answer `{"reasoning": "...", "score": [a, b]}` (the JSON may be
    loose: unquoted keys, a quote inside the reasoning, between ||V^=^V|| delimiters), scaled from 0-score_range to
    0-10; or why it cannot be read: empty_answer, no_scores (fewer than `n` numbers in the score list),
    out_of_range."""
    if not text or not text.strip():
        return "empty_answer"
    m = _ES_SCORE.search(text)
    if m is None:
        return "no_scores"
    nums = re.findall(r"-?\d+(?:\.\d+)?", m.group(1))
    if len(nums) < n:
        return "no_scores"
    raw = [float(x) for x in nums[:n]]
    if not all(0 <= v <= score_range for v in raw):
        return "out_of_range"
    r = _ES_REASON.search(text)
    return [v * 10.0 / score_range for v in raw], _sentence(r.group(1)) if r else ""


def combine(passes: list[dict[str, float]]) -> tuple[dict[str, float], dict[str, float], list[float]]:
    """(scores, spread per axis and overall, each pass's overall) of the readable passes: per pass semantics =
    min(following, preservation) (following alone without preservation) and overall = sqrt(semantics x quality);
    the scores are the means over passes (the overall too: EditScore's average of the passes' overalls), spreads the
    population standard deviations."""
    rows = []
    for p in passes:
        sem = min(p[FOLLOWING], p[PRESERVATION]) if PRESERVATION in p else p[FOLLOWING]
        rows.append({**p, "semantics": sem, "overall": math.sqrt(sem * p[QUALITY])})
    keys = list(rows[0])
    mean = {k: float(np.mean([r[k] for r in rows])) for k in keys}
    spread = {k: round(float(np.std([r[k] for r in rows])), 4) for k in keys}
    scores = {SCORE_OF[a]: mean[a] for a in AXES if a in mean}
    scores[SEMANTICS] = mean["semantics"]
    scores[OVERALL] = mean["overall"]
    if len(rows) > 1:
        scores[SPREAD] = spread["overall"]
    return scores, spread, [round(r["overall"], 4) for r in rows]


class JudgeScoresConfig(ScorerConfig):
    backend: BackendConfig = Field(
        BackendConfig(max_new_tokens=128), description="an image-text model (instruction backends)"
    )
    style: Literal["datagen", "editscore"] = Field(
        "datagen",
        description="datagen: one question per pass, three axes and a reason as JSON (judge_prompts.py); editscore: "
        "EditScore's two questions (semantics on every image, quality on the target) answered as "
        '{"reasoning", "score": [...]}, for its published models (EditScore-7B/32B/72B, Qwen2.5-VL based)',
    )
    score_range: Optional[int] = Field(
        None, ge=1, description="the scale the judge answers on, scaled to 0-10; default 10 (datagen), 25 (editscore)"
    )
    passes: int = Field(1, ge=1, le=16, description="ask this many times (seeded apart), keep the mean and spread")
    tasks: list[str] = Field(default_factory=lambda: ["*"], description="tasks the judge scores; '*' for all")
    max_reason_chars: int = Field(200, ge=0)

    @field_validator("tasks")
    @classmethod
    def _known(cls, v: list[str]) -> list[str]:
        bad = [t for t in v if t != "*" and t not in schema.TASKS]
        if bad:
            raise ValueError(f"unknown task(s) {bad}; known: {sorted(schema.TASKS)} or '*' for all")
        return v

    @property
    def range(self) -> int:
        return self.score_range or (25 if self.style == "editscore" else 10)


def _axes_of(task: str) -> tuple[str, ...]:
    return datagen_prompt(task).axes


class JudgeScores(Scorer):
    name = "judge_scores"
    makes = (*SCORE_OF.values(), SEMANTICS, OVERALL, SPREAD)
    writes = (SAMPLE_SCORES, SAMPLE_JUDGE)
    version = "2"
    stateful = True
    Config: ClassVar[type[JudgeScoresConfig]] = JudgeScoresConfig

    def __init__(self, config: JudgeScoresConfig | None = None, **context: Any):
        super().__init__(config, **context)
        self.backend: ChatBackend = make_backend(self.config.backend, images=True, key="judge_scores.backend")
        self.budget: FailureBudget | None = None  # the partition's, while process runs
        self.pass_failures: Counter = Counter()  # a pass that failed while others of its sample answered

    def unavailable_reason(self) -> str | None:
        return self.backend.unavailable_reason()

    def resources(self) -> Resources:
        b = self.config.backend
        step = b.batch_size * (b.concurrency if b.kind == "openai" else 1)
        return self.backend.resources(batch_size=step)

    def describe(self) -> str:
        c = self.config
        return (
            f"judge_scores: {c.style}-style judge {self.backend.describe()} (following, preservation, quality "
            f"0-{c.range} -> 0-10, overall; {c.passes} pass(es)); tasks {c.tasks}"
        )

    def setup(self) -> None:
        self.backend.setup()
        log.info("judge_scores ready: %s", self.backend.describe())

    def skip_reason(self, v: TurnView) -> Optional[str]:
        tasks = self.config.tasks
        return None if "*" in tasks or v.sample.task in tasks else "task not judged"

    def unscored(self, sample: Sample, names: tuple[str, ...] | list[str] | None = None) -> None:
        # a turn without preservation (text-to-image) never owed it; one pass never owes a spread
        owed = {SCORE_OF[a] for a in _axes_of(sample.task)} | {SEMANTICS, OVERALL}
        if self.config.passes > 1:
            owed.add(SPREAD)
        super().unscored(sample, [n for n in (self.makes if names is None else names) if n in owed])

    def prompts(self, task: str) -> list[JudgePrompt]:
        return [datagen_prompt(task)] if self.config.style == "datagen" else list(editscore_prompts(task))

    def process(self, batch: WorkBatch) -> WorkBatch:
        views = [view(s) for s in batch.samples]
        n = sum(len(self.prompts(v.sample.task)) for v in views if self.skip_reason(v) is None) * self.config.passes
        self.budget = FailureBudget(self.config.backend, n, self.name, f"partition {batch.partition}: ")
        self.pass_failures = Counter()
        try:
            out = super().process(batch)
        finally:
            self.budget = None
        stats = batch.stage(self.name)
        for reason, count in sorted(self.pass_failures.items()):
            for _ in range(count):
                stats.skip(f"pass fallback: {reason}")
        return out

    def settings(self) -> dict[str, Any]:
        b = self.config.backend
        return {
            "style": self.config.style,
            "score_range": self.config.range,
            "temperature": b.temperature,
            "max_new_tokens": b.max_new_tokens,
            "image_max_side": b.image_max_side,
            "image_format": "png",
        }

    def _images(self, v: TurnView, prompt: JudgePrompt) -> list[np.ndarray]:
        turn = v.sample.current
        if prompt.images == "target" or not turn.inputs:
            frames = [turn.target]
        elif prompt.images == "inputs":
            frames = [*turn.inputs, turn.target]
        else:
            frames = [turn.inputs[0], turn.target]
        return [downscale(f.image, self.config.backend.image_max_side) for f in frames]

    def score(self, views: list[TurnView]) -> list[dict[str, float] | str]:
        c = self.config
        reqs: list[ChatRequest] = []
        plan: list[list[list[tuple[int, JudgePrompt]]]] = []  # per view, per pass: (request index, prompt)
        sizes: list[list[str]] = []
        for v in views:
            instruction = v.instruction or v.caption
            per_pass = []
            seen: dict[str, list[np.ndarray]] = {}
            for p in range(c.passes):
                asked = []
                for prompt in self.prompts(v.sample.task):
                    images = seen.setdefault(prompt.images, self._images(v, prompt))
                    asked.append((len(reqs), prompt))
                    reqs.append(
                        ChatRequest(
                            [*image_parts(images), prompt.render(instruction, c.range)],
                            seed=derive_seed(0, v.sample.key, self.name, p, prompt.name) % (1 << 31),
                            lossless=True,
                        )
                    )
                per_pass.append(asked)
            plan.append(per_pass)
            biggest = max(seen.values(), key=len)
            sizes.append([f"{im.shape[1]}x{im.shape[0]}" for im in biggest])
        results = answers(self.backend, reqs, self.budget, stage=self.name)
        out: list[dict[str, float] | str] = []
        model = c.backend.model
        for v, per_pass, size in zip(views, plan, sizes):
            prompts = [prompt for _, prompt in per_pass[0]]
            record = dict(
                model=model,
                prompt="+".join(p.name for p in prompts),
                prompt_hash="+".join(p.hash for p in prompts),
                settings={**self.settings(), "image_sizes": size},
                passes=c.passes,
            )
            read: list[dict[str, float]] = []
            reasons: list[str] = []
            failed: list[tuple[str, str]] = []  # (why, the answer)
            for asked in per_pass:
                axes: dict[str, float] = {}
                said: list[str] = []
                why = ""
                for k, prompt in asked:
                    res = results[k]
                    parsed = self._parse(res.text, prompt) if res.ok else res.error or "backend_error"
                    if isinstance(parsed, str):
                        why = parsed
                        failed.append((parsed, res.text or ""))
                        break
                    axes.update(parsed[0])
                    if parsed[1]:
                        said.append(parsed[1])
                if not why:
                    read.append(axes)
                    reasons.append(" ".join(said))
            if not read:
                why, said = failed[0]
                v.sample.judge = JudgeRecord(**record, fallback=why, answer=said[: c.max_reason_chars])
                out.append(why)
                continue
            for why, _ in failed:
                self.pass_failures[why] += 1
            scores, spread, overalls = combine(read)
            v.sample.judge = JudgeRecord(
                **record,
                reason=reasons[0][: c.max_reason_chars],
                answered=len(read),
                spread=spread if c.passes > 1 else {},
                pass_overall=overalls if c.passes > 1 else [],
            )
            out.append(scores)
        return out

    def _parse(self, text: Optional[str], prompt: JudgePrompt) -> tuple[dict[str, float], str] | str:
        if self.config.style == "datagen":
            return parse_judge_answer(text, prompt.axes)
        if prompt.axes == (QUALITY,):  # EditScore keeps the lower of naturalness and artefacts
            got = parse_editscore_answer(text, 2, self.config.range)
            return got if isinstance(got, str) else ({QUALITY: min(got[0])}, got[1])
        got = parse_editscore_answer(text, len(prompt.axes), self.config.range)
        return got if isinstance(got, str) else (dict(zip(prompt.axes, got[0])), got[1])
