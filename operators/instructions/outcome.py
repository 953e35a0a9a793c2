"""Instruction from the outcome (optional, GPT-Image-Edit-1.5M's step): after the quality filter, a VLM looks at a
kept sample's input(s) and output and rewrites the current turn's instruction to say what the output actually shows;
the instruction it replaces stays in the turn's record as `instruction_original`. The new text must pass the checks
every instruction passes (indicators that fit the turn, the task's key terms, not a repeat of another instruction of
the task in the partition); one that fails, or a failed request, keeps the original, counted
(`kept_original:REASON`). Runs with the filter's role: it writes only on what ships, and drops nothing."""

from __future__ import annotations

import re
from typing import Any, ClassVar

from datagen.batch import WorkBatch
from datagen.operator import Role
from datagen.schema import METHOD_OUTCOME, Sample, Turn
from operators.instructions.base import Job, ModelInstructionStage
from operators.instructions.config import OutcomeConfig
from operators.instructions.records import update_turn_record
from operators.instructions.template_bank import TASK_TERMS
from operators.instructions.text import normalize_answer, shift_indicators, unusable_reason
from operators.models.backends.base import ChatRequest, image_parts

MARKER = "Say what the output shows"  # the outcome prompt begins so (the tests' local server answers it by it)


def outcome_prompt(instruction: str, n_inputs: int) -> str:
    last = f"Image-{n_inputs + 1}"
    inputs = "Image-1" if n_inputs == 1 else f"Image-1 to Image-{n_inputs}"
    return (
        f"{MARKER}: {inputs} went into an image edit and {last} is its output. The edit was asked with this "
        f'instruction: "{instruction}". Write one instruction that, applied to {inputs}, gives exactly {last}: name '
        "what the output really shows (what changed, to what), not what was asked. Call the input(s) Image-1 "
        "(Image-2, ...). Answer with the instruction only, one sentence."
    )


class OutcomeInstructions(ModelInstructionStage):
    name = "outcome_instructions"
    version = "1"
    role = Role.FILTER  # on kept samples: after the quality filter, before the task mix
    method = METHOD_OUTCOME
    config_key = "instructions.outcome"
    Config: ClassVar[type[OutcomeConfig]] = OutcomeConfig

    def describe(self) -> str:
        return (
            f"outcome_instructions: {self.backend.describe()} says what each kept output shows; tasks "
            f"{self.config.tasks}"
        )

    def eligible(self, sample: Sample, index: int, turn: Turn) -> bool:
        tasks = self.config.tasks
        return index == len(sample.turns) - 1 and bool(turn.inputs) and ("*" in tasks or turn.task in tasks)

    @staticmethod
    def pending(job: Job) -> bool:
        return job[0].turns[job[1]].instruction_method != METHOD_OUTCOME

    def process(self, batch: WorkBatch) -> WorkBatch:
        # what the partition's instructions already say, per task: a rewrite that repeats one is not distinct
        self.said: dict[str, set[str]] = {}
        for s in batch.samples:
            for t in s.turns:
                self.said.setdefault(t.task, set()).add(_norm(t.instruction))
        return super().process(batch)

    def run_chunk(self, batch: WorkBatch, chunk: list[Job]) -> None:
        reqs = []
        for s, i in chunk:
            turn = s.turns[i]
            images = [f.image for f in turn.inputs] + [turn.target.image]
            n_before = s.n_images_visible(i) - len(turn.inputs)
            asked = turn.instruction
            if n_before:  # the turn's own numbering, as the model sees its images
                asked = re.sub(r"\{image(\d)\}", lambda m: f"{{image{int(m.group(1)) - n_before}}}", asked)
            reqs.append(
                ChatRequest(
                    [*image_parts(images), outcome_prompt(asked, len(turn.inputs))], seed=self.seed(batch, (s, i))
                )
            )
        for job, res in zip(chunk, self.ask(reqs)):
            if not res.ok:
                self.fallback(batch, job, res.error or "backend_error")
            else:
                self.finish_answer(batch, job, res.text)

    def finish_answer(self, batch: WorkBatch, job: Job, answer: str, record: dict[str, Any] | None = None) -> bool:
        sample, i = job
        turn = sample.turns[i]
        n_before = sample.n_images_visible(i) - len(turn.inputs)
        try:
            text = shift_indicators(normalize_answer(answer, len(turn.inputs)), n_before)
        except ValueError:
            return self._keep(batch, job, "bad_indicator", answer)
        why = unusable_reason(text, sample.n_images_visible(i))
        terms = TASK_TERMS.get(turn.task)
        if why is None and terms and not re.search(terms, text, re.I):
            why = "lost_task"
        if why is None and _norm(text) in self.said.get(turn.task, set()):
            why = "not_distinct"
        if why:
            return self._keep(batch, job, why, answer)
        self.said.setdefault(turn.task, set()).add(_norm(text))
        original = turn.instruction
        turn.instruction = text
        turn.instruction_method = METHOD_OUTCOME
        update_turn_record(
            sample, i, method=METHOD_OUTCOME, source=original, instruction_original=original,
            model=self.backend_config.model,
        )  # fmt: skip
        return True

    def fallback(self, batch: WorkBatch, job: Job, reason: str, answer: str | None = None) -> None:
        self._keep(batch, job, reason, answer)

    def _keep(self, batch: WorkBatch, job: Job, reason: str, answer: str | None) -> bool:
        """The turn keeps its instruction and method; why is counted and recorded."""
        sample, i = job
        batch.stage(self.name).skip(f"kept_original:{reason}")
        update_turn_record(
            sample, i, tried=METHOD_OUTCOME, fallback=reason, answer=(answer[:200] if answer else None),
            model=self.backend_config.model,
        )  # fmt: skip
        return False


def _norm(text: str) -> str:
    return " ".join(re.sub(r"[^\w{}]+", " ", text.lower()).split())
