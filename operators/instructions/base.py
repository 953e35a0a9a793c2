"""Shared shape of the model-backed instruction stages (captioner, MLLM difference): pick the turns they write
for, send requests through the backend in batches, accept usable answers, and fall back to the turn's template
instruction (method fallback_template, counted in the stage's stats) for everything else. No sample is lost; a
backend that fails more requests than the recipe allows stops the job (FailureBudget, BackendBroken)."""

from __future__ import annotations

import logging
from typing import Any, ClassVar

from datagen.batch import SAMPLE_INSTRUCTION, SAMPLES, WorkBatch, derive_seed
from datagen.isolation import BACKEND_ERROR, describe_error, isolate, sample_uri
from datagen.operator import Operator, Resources, Role
from datagen.schema import METHOD_FALLBACK_TEMPLATE, METHOD_TEMPLATE, Sample, Turn
from operators.instructions.records import count_fallback, update_turn_record
from operators.instructions.text import normalize_answer, shift_indicators, unusable_reason
from operators.models.backends.base import (
    BackendConfig,
    ChatBackend,
    ChatRequest,
    ChatResult,
    FailureBudget,
    answers,
    make_backend,
)

log = logging.getLogger(__name__)

Job = tuple[Sample, int]


class ModelInstructionStage(Operator):
    role = Role.INSTRUCT
    reads = (
        SAMPLES,
        SAMPLE_INSTRUCTION,
    )
    writes = (SAMPLE_INSTRUCTION,)
    stateful = True  # the backend (a model or a connection pool) lives as long as the worker
    method: ClassVar[str] = ""
    config_key: ClassVar[str] = "instructions"  # the recipe key of this stage's section, for error messages

    def __init__(self, config=None, **context: Any):
        super().__init__(config, **context)
        # both model stages show the model the images: the backend needs an image-text model
        self.backend: ChatBackend = make_backend(self.backend_config, images=True, key=f"{self.config_key}.backend")
        self._budgets: dict[int, FailureBudget] = {}
        self._partition: tuple[int, str] | None = None  # (turns to write, "partition X: ") while process runs

    @property
    def backend_config(self) -> BackendConfig:
        return self.config.backend

    def unavailable_reason(self) -> str | None:
        return self.backend.unavailable_reason()

    def resources(self) -> Resources:
        return self.backend.resources()

    def setup(self) -> None:
        self.backend.setup()

    def eligible(self, sample: Sample, index: int, turn: Turn) -> bool:
        tasks = self.config.tasks
        return (
            bool(turn.inputs)
            and turn.instruction_method in (METHOD_TEMPLATE, "")
            and ("*" in tasks or turn.task in tasks)
        )

    def seed(self, batch: WorkBatch, job: Job) -> int:
        return derive_seed(batch.seed, job[0].key, job[1], self.name)

    def process(self, batch: WorkBatch) -> WorkBatch:
        jobs = [(s, i) for s in batch.samples for i, t in enumerate(s.turns) if self.eligible(s, i, t)]
        step = max(1, self.backend_config.batch_size) * max(
            1, self.backend_config.concurrency if self.backend_config.kind == "openai" else 1
        )
        where = f"partition {batch.partition}: "
        # per backend (the difference method may write through a second one): more failed requests than the recipe
        # allows stop the job with the engine's error instead of leaving the partition to templates
        self._budgets: dict[int, FailureBudget] = {}
        self._partition = (len(jobs), where)
        for start in range(0, len(jobs), step):
            # a request the backend fails alone costs its turn's template, counted; an error of the stage's own (a
            # chunk that raised) is retried turn by turn and a turn that fails alone counts against the budget too
            _, failed = isolate(
                lambda chunk: self.run_chunk(batch, [job for job in chunk if self.pending(job)]),
                jobs[start : start + step],
                stage=self.name,
                code=BACKEND_ERROR,
                uri=lambda job: sample_uri(job[0]),
                label=lambda job: f"sample {job[0].key} turn {job[1]}",
                where=where,
            )
            for f in failed:
                if self.pending(f.item):
                    log.warning("%s keeps its template (%s)", f.uri, f.detail)
                    self.fallback(batch, f.item, f.reason)
                    self.budget_of(self.backend).record(ChatResult(None, f.reason, detail=describe_error(f.error)))
        self._partition = None
        return batch

    @staticmethod
    def pending(job: Job) -> bool:
        """The turn still has only its template (a chunk that failed halfway may have written some turns)."""
        return job[0].turns[job[1]].instruction_method in (METHOD_TEMPLATE, "")

    def run_chunk(self, batch: WorkBatch, chunk: list[Job]) -> None:
        raise NotImplementedError

    def budget_of(self, backend: ChatBackend) -> FailureBudget | None:
        """The failure budget of `backend` in the partition being processed (None outside `process`)."""
        if self._partition is None:
            return None
        if id(backend) not in self._budgets:
            n, where = self._partition
            self._budgets[id(backend)] = FailureBudget(backend.config, n, self.name, where)
        return self._budgets[id(backend)]

    def ask(self, reqs: list[ChatRequest], backend: ChatBackend | None = None) -> list[ChatResult]:
        """One result per request; each counts against the partition's budget of that backend (see process)."""
        backend = backend or self.backend
        return answers(backend, reqs, self.budget_of(backend), stage=self.name)

    def finish_answer(self, batch: WorkBatch, job: Job, answer: str, record: dict[str, Any] | None = None) -> bool:
        """Normalise the answer; use it if it is a usable instruction for the turn, else fall back. True if used."""
        sample, i = job
        turn = sample.turns[i]
        n_before = sample.n_images_visible(i) - len(turn.inputs)
        text = normalize_answer(answer, len(turn.inputs))
        try:
            text = shift_indicators(text, n_before)
        except ValueError:
            self.fallback(batch, job, "unusable:bad_indicator", answer=answer)
            return False
        why = unusable_reason(text, sample.n_images_visible(i))
        if why:
            self.fallback(batch, job, f"unusable:{why}", answer=answer)
            return False
        source = turn.instruction
        turn.instruction = text
        turn.instruction_method = self.method
        update_turn_record(
            sample, i, method=self.method, source=source, model=self.backend_config.model, **(record or {})
        )
        return True

    def fallback(self, batch: WorkBatch, job: Job, reason: str, answer: str | None = None) -> None:
        sample, i = job
        turn = sample.turns[i]
        turn.instruction_method = METHOD_FALLBACK_TEMPLATE  # the template text written before this stage stays
        count_fallback(batch, self.name, reason)
        update_turn_record(
            sample,
            i,
            method=METHOD_FALLBACK_TEMPLATE,
            fallback=reason,
            tried=self.method,
            model=self.backend_config.model,
            answer=(answer[:200] if answer else None),
        )
