"""ACE's method for natural pairs: an MLLM states the commonalities and differences of the input and the
result, then an LLM (the same backend unless `writer` is set) writes one instruction around the semantic
difference, with an Emu Edit-style record (edit, edited object, original object, output caption)."""

from __future__ import annotations

import json
import re
from typing import Any, ClassVar

from datagen.batch import WorkBatch
from datagen.schema import METHOD_MLLM_DIFFERENCE, Sample, Turn
from operators.instructions.base import Job, ModelInstructionStage
from operators.instructions.config import DifferenceConfig
from operators.instructions.prompts import difference_prompt, writer_prompt
from operators.instructions.records import emu_record
from operators.instructions.text import clean_caption
from operators.models.backends.base import ChatRequest, image_parts, make_backend

_JSON_RE = re.compile(r"\{.*\}", re.DOTALL)
MAX_DESCRIPTION = 1200


def parse_writer_answer(text: str) -> tuple[str, dict[str, Any]]:
    """(instruction, Emu Edit record) from the writer's answer: a JSON object, or failing that the plain text."""
    m = _JSON_RE.search(text or "")
    if m:
        try:
            obj = json.loads(m.group(0))
        except ValueError:
            obj = None
        if isinstance(obj, dict) and isinstance(obj.get("instruction"), str):
            return obj["instruction"], emu_record(**{k: v for k, v in obj.items() if isinstance(v, str)})
    return text or "", {}


class DifferenceInstructions(ModelInstructionStage):
    name = "difference_instructions"
    version = "1"
    method = METHOD_MLLM_DIFFERENCE
    config_key = "instructions.mllm_difference"
    Config: ClassVar[type[DifferenceConfig]] = DifferenceConfig

    def __init__(self, config=None, **context):
        super().__init__(config, **context)
        # the writer reads the MLLM's description only: text in, so a text LLM (and no multimodal engine arguments)
        self.writer = (
            make_backend(self.config.writer, images=False, key=f"{self.config_key}.writer")
            if self.config.writer is not None
            else self.backend
        )

    def unavailable_reason(self) -> str | None:
        return self.backend.unavailable_reason() or (
            self.writer.unavailable_reason() if self.writer is not self.backend else None
        )

    def setup(self) -> None:
        self.backend.setup()
        if self.writer is not self.backend:
            self.writer.setup()

    def describe(self) -> str:
        w = "the same model" if self.writer is self.backend else self.writer.describe()
        return (
            f"difference_instructions: MLLM {self.backend.describe()} states differences, {w} writes the "
            f"instruction; tasks {self.config.tasks}"
        )

    def eligible(self, sample: Sample, index: int, turn: Turn) -> bool:
        return len(turn.inputs) == 1 and super().eligible(sample, index, turn)  # a pair: one input and the result

    def run_chunk(self, batch: WorkBatch, chunk: list[Job]) -> None:
        seeds = [self.seed(batch, job) for job in chunk]
        compare = [
            ChatRequest(
                [*image_parts([s.turns[i].inputs[0].image, s.turns[i].target.image]), difference_prompt()], seed=seed
            )
            for (s, i), seed in zip(chunk, seeds)
        ]
        described = self.ask(compare)
        pending: list[tuple[Job, str]] = []
        for job, res in zip(chunk, described):
            if not res.ok:
                self.fallback(batch, job, f"compare:{res.error}")
            elif not res.text.strip():
                self.fallback(batch, job, "compare:empty_answer")
            else:
                pending.append((job, res.text.strip()[:MAX_DESCRIPTION]))
        if not pending:
            return
        write = [
            ChatRequest([writer_prompt(desc, 1, clean_caption(s.turns[i].caption))], seed=self.seed(batch, (s, i)) + 1)
            for (s, i), desc in pending
        ]
        for (job, desc), res in zip(pending, self.ask(write, self.writer)):
            if not res.ok:
                self.fallback(batch, job, f"write:{res.error}")
                continue
            instruction, emu = parse_writer_answer(res.text)
            record: dict[str, Any] = {"differences": desc}
            if emu:
                record["emu_edit"] = emu
            self.finish_answer(batch, job, instruction, record)
