"""Template instructions: the first of ACE's three instruction methods. Every sample without an instruction
gets one drawn from its task's bank, seeded by the sample key so that reruns pick the same phrasing."""
from __future__ import annotations

from datagen.batch import WorkBatch, derive_seed
from datagen.operator import Operator
from datagen.registry import register
from operators.instructions.template_bank import GENERIC, TEMPLATES

METHOD = "template"


def fill_template(task: str, direction: str, caption: str, seed: int) -> str:
    bank = TEMPLATES.get(task) or [t.replace("{task}", task.lower()) for t in GENERIC.get(direction, GENERIC["edit"])]
    usable = bank if caption else [t for t in bank if "{caption}" not in t]
    if not usable:
        usable = [t.replace("{caption}", "the scene") for t in bank]
    choice = usable[seed % len(usable)]
    return choice.replace("{caption}", caption.strip().rstrip(".")) if caption else choice


@register
class TemplateInstructions(Operator):
    name = "template_instructions"
    version = "1"
    role = "instruction"

    def describe(self) -> str:
        return "template_instructions: per-task template bank"

    def process(self, batch: WorkBatch) -> WorkBatch:
        for sample in batch.samples:
            for i, turn in enumerate(sample.turns):
                if turn.instruction:
                    continue
                seed = derive_seed(batch.seed, sample.key, i, METHOD)
                turn.instruction = fill_template(turn.task, turn.direction, turn.caption, seed)
                turn.instruction_method = METHOD
        return batch
