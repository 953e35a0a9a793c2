"""The instruction captioner, ACE's third method: a fine-tuned InternVL sees the input image(s) and the result
and predicts the instruction directly, for any pair. Served by vLLM on clusters; any backend works."""

from __future__ import annotations

from typing import ClassVar

from datagen.batch import WorkBatch
from datagen.schema import METHOD_CAPTIONER
from operators.instructions.base import Job, ModelInstructionStage
from operators.instructions.config import CaptionerConfig
from operators.instructions.prompts import captioner_request_parts
from operators.models.backends.base import ChatRequest


class CaptionerInstructions(ModelInstructionStage):
    name = "captioner_instructions"
    version = "1"
    method = METHOD_CAPTIONER
    config_key = "instructions.captioner"
    Config: ClassVar[type[CaptionerConfig]] = CaptionerConfig

    def describe(self) -> str:
        return f"captioner_instructions: instruction captioner {self.backend.describe()} on tasks {self.config.tasks}"

    def run_chunk(self, batch: WorkBatch, chunk: list[Job]) -> None:
        reqs = []
        for s, i in chunk:
            turn = s.turns[i]
            reqs.append(
                ChatRequest(
                    captioner_request_parts([f.image for f in turn.inputs], turn.target.image),
                    seed=self.seed(batch, (s, i)),
                )
            )
        for job, res in zip(chunk, self.ask(reqs)):
            if not res.ok:
                self.fallback(batch, job, res.error)
            else:
                self.finish_answer(batch, job, res.text)
