"""A vision-language judge (VIEScore-style, as OmniEdit, ImgEdit and X2Edit score every pair): the model sees the
turn's input and target with the instruction and rates semantic consistency (did the edit happen, was the rest
kept) and perceptual quality, each 0-10, with a short reason. It runs through the instruction backends (vLLM,
an OpenAI-compatible endpoint, transformers). An answer that cannot be read, or a request the backend fails, is a
counted fallback: no judge score, the reason in the sample's judge record (Sample.judge), and the sample kept. More
failed requests than the recipe allows (backend max_failure_rate, max_consecutive_failures) stop the job."""

from __future__ import annotations

import json
import logging
import re
from typing import Any, ClassVar, Optional

from pydantic import Field, field_validator

from datagen import schema
from datagen.batch import SAMPLE_JUDGE, SAMPLE_SCORES, WorkBatch, derive_seed
from datagen.operator import Resources
from datagen.schema import JudgeRecord
from operators.models.backends.base import (
    BackendConfig,
    ChatBackend,
    ChatRequest,
    FailureBudget,
    answers,
    image_parts,
    make_backend,
)
from operators.scoring.base import Scorer, ScorerConfig, TurnView, view

log = logging.getLogger(__name__)

MARKER = "Rate the result"  # the judge prompts begin so (tests' local server answers them by it)
_JSON = re.compile(r"\{[^{}]*\}", re.S)
_NUMBER = r"(\d+(?:\.\d+)?)(?:\s*/\s*10)?"
_SEMANTICS = re.compile(r"semantic[\w ]*?[\"']?\s*[:=\-]\s*[\"']?" + _NUMBER, re.I)
_QUALITY = re.compile(r"quality[\w ]*?[\"']?\s*[:=\-]\s*[\"']?" + _NUMBER, re.I)
_KEYS = {
    "semantics": ("semantics", "semantic_consistency", "semantic", "sc", "instruction_following"),
    "quality": ("quality", "perceptual_quality", "pq", "visual_quality"),
}


def judge_prompt(instruction: str, has_input: bool) -> str:
    if has_input:
        task = (
            f'Image-1 is an input image and Image-2 is the result of this instruction: "{instruction}". '
            "semantics: how well Image-2 carries out the instruction while keeping everything else of Image-1 "
            "(0 = not at all or over-edited, 10 = exactly)."
        )
    else:
        task = (
            f'Image-1 was made for this request: "{instruction}". semantics: how well Image-1 matches the '
            "request (0 = not at all, 10 = exactly)."
        )
    return (
        f"{MARKER} as a strict judge of image editing data. {task} quality: how natural and free of artefacts the "
        "result looks (0 = broken, 10 = flawless). Answer with JSON only: "
        '{"semantics": <0-10>, "quality": <0-10>, "reason": "<one short sentence>"}'
    )


def _number(v: Any) -> Optional[float]:
    if isinstance(v, bool):
        return None
    if isinstance(v, (int, float)):
        return float(v)
    if isinstance(v, str):
        m = re.fullmatch(r"\s*" + _NUMBER + r"\s*", v)
        return float(m.group(1)) if m else None
    return None


def parse_judge_answer(text: Optional[str]) -> tuple[dict[str, float], str] | str:
    """({"judge_semantics": x, "judge_quality": y}, reason) from the judge's answer, or why it cannot be read:
    empty_answer, no_scores, out_of_range. Takes a JSON object anywhere in the text (key variants, "7/10" strings),
    else "semantics: 7 ... quality: 8" in prose."""
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
        low = {str(k).lower().replace(" ", "_"): v for k, v in obj.items()}
        for name, keys in _KEYS.items():
            for k in keys:
                if k in low and _number(low[k]) is not None:
                    found.setdefault(name, _number(low[k]))
                    break
        if found:
            reason = low["reason"] if isinstance(low.get("reason"), str) else ""
        if len(found) == 2:
            break
    if len(found) < 2:
        for name, rx in (("semantics", _SEMANTICS), ("quality", _QUALITY)):
            m = rx.search(text)
            if m and name not in found:
                found[name] = float(m.group(1))
    if len(found) < 2:
        return "no_scores"
    if not all(0 <= v <= 10 for v in found.values()):
        return "out_of_range"
    if reason is None:  # prose: the answer itself is the reason
        reason = re.sub(r"\s+", " ", text).strip()
    return {"judge_semantics": found["semantics"], "judge_quality": found["quality"]}, reason


class JudgeScoresConfig(ScorerConfig):
    backend: BackendConfig = Field(
        BackendConfig(max_new_tokens=96), description="an image-text model (instruction backends)"
    )
    tasks: list[str] = Field(default_factory=lambda: ["*"], description="tasks the judge scores; '*' for all")
    max_reason_chars: int = Field(200, ge=0)

    @field_validator("tasks")
    @classmethod
    def _known(cls, v: list[str]) -> list[str]:
        bad = [t for t in v if t != "*" and t not in schema.TASKS]
        if bad:
            raise ValueError(f"unknown task(s) {bad}; known: {sorted(schema.TASKS)} or '*' for all")
        return v


class JudgeScores(Scorer):
    name = "judge_scores"
    makes = ("judge_semantics", "judge_quality")
    writes = (SAMPLE_SCORES, SAMPLE_JUDGE)
    version = "1"
    stateful = True
    Config: ClassVar[type[JudgeScoresConfig]] = JudgeScoresConfig

    def __init__(self, config: JudgeScoresConfig | None = None, **context: Any):
        super().__init__(config, **context)
        self.backend: ChatBackend = make_backend(self.config.backend, images=True, key="judge_scores.backend")
        self.budget: FailureBudget | None = None  # the partition's, while process runs

    def unavailable_reason(self) -> str | None:
        return self.backend.unavailable_reason()

    def resources(self) -> Resources:
        b = self.config.backend
        step = b.batch_size * (b.concurrency if b.kind == "openai" else 1)
        return self.backend.resources(batch_size=step)

    def describe(self) -> str:
        return (
            f"judge_scores: VIEScore-style judge {self.backend.describe()} (semantics, quality 0-10); tasks "
            f"{self.config.tasks}"
        )

    def setup(self) -> None:
        self.backend.setup()
        log.info("judge_scores ready: %s", self.backend.describe())

    def skip_reason(self, v: TurnView) -> Optional[str]:
        tasks = self.config.tasks
        return None if "*" in tasks or v.sample.task in tasks else "task not judged"

    def process(self, batch: WorkBatch) -> WorkBatch:
        n = sum(1 for s in batch.samples if self.skip_reason(view(s)) is None)
        self.budget = FailureBudget(self.config.backend, n, self.name, f"partition {batch.partition}: ")
        try:
            return super().process(batch)
        finally:
            self.budget = None

    def score(self, views: list[TurnView]) -> list[dict[str, float] | str]:
        reqs = []
        for v in views:
            images = [v.input.image, v.target.image] if v.input is not None else [v.target.image]
            instruction = v.instruction or v.caption
            reqs.append(
                ChatRequest(
                    [*image_parts(images), judge_prompt(instruction, v.input is not None)],
                    seed=derive_seed(0, v.sample.key, self.name) % (1 << 31),
                )
            )
        results = answers(self.backend, reqs, self.budget, stage=self.name)
        out: list[dict[str, float] | str] = []
        model = self.config.backend.model
        for v, res in zip(views, results):
            parsed = parse_judge_answer(res.text) if res.ok else res.error or "backend_error"
            if isinstance(parsed, str):
                v.sample.judge = JudgeRecord(
                    model=model, fallback=parsed, answer=(res.text or "")[: self.config.max_reason_chars]
                )
                out.append(parsed)
            else:
                scores, reason = parsed
                v.sample.judge = JudgeRecord(model=model, reason=reason[: self.config.max_reason_chars])
                out.append(scores)
        return out
