"""Template instructions, the first of ACE's three methods and every sample's fallback: a phrasing drawn from
the task's bank (seeded by the sample key, so reruns pick the same one), filled with the caption when known."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from datagen import schema
from datagen.batch import SAMPLE_INSTRUCTION, SAMPLES, WorkBatch, derive_seed
from datagen.operator import Operator, Role
from datagen.schema import (
    METHOD_TEMPLATE,
    PARAM_EMU_EDIT,
    PARAM_SLOTS,
    InstructionRecord,
    indicator_problems,
    indicators,
)
from operators.instructions.config import TemplateConfig
from operators.instructions.grammar import compile_pattern
from operators.instructions.records import emu_record, set_turn_record
from operators.instructions.template_bank import EMU_EDIT_KIND, TEMPLATES
from operators.instructions.text import clean_caption, sentence_case, shift_indicators

# Used for a task without a bank (one added later): generic but correct phrasing, with the indicator placed.
GENERIC: dict[str, list[str]] = {
    schema.DIRECTION_ANALYSIS: [
        "[Produce|Compute|Give me] the {task} [result|output] [for|of] {image}.",
        "[Apply|Run|Perform] {task} [on|to] {image}.",
    ],
    schema.DIRECTION_GENERATION: [
        "[Generate|Create|Render] [an image|a photo] from {image} ({task}).",
        "[Use|Take] {image} as the condition for {task} and [generate|render] [an image|a photo].",
    ],
    schema.DIRECTION_EDIT: ["[Edit|Change] {image}: {task}.", "[Apply|Perform] {task} [on|to] {image}."],
    schema.DIRECTION_REFERENCE: [
        "[Using|With] {image1} as [a|the] reference, [create|generate] a related image ({task})."
    ],
    schema.DIRECTION_TEXT: ["[Generate|Create] an image of {caption}.", "[Generate|Create|Render] an image."],
}


# Words a synthesized edit's maker names (provenance params "slots"): what the instruction must say it changes.
SLOT_RE = re.compile(r"\{(object|new_object|style|background|layer)\}")


def slot_names(line: str) -> set[str]:
    return set(SLOT_RE.findall(line))


@dataclass(frozen=True)
class Filled:
    text: str
    template_id: str  # "TASK#line.phrasing"
    used_caption: bool


def bank(task: str, direction: str) -> list[str]:
    lines = TEMPLATES.get(task)
    if lines:
        return lines
    return [t.replace("{task}", task.lower()) for t in GENERIC.get(direction, GENERIC[schema.DIRECTION_EDIT])]


def _fits(line: str, n_inputs: int) -> bool:
    refs = indicators(line)
    if n_inputs == 0:
        return not refs
    return bool(refs) and not indicator_problems(line, n_inputs)


def usable_lines(
    task: str, direction: str, n_inputs: int, has_caption: bool, slots: frozenset[str] = frozenset()
) -> tuple[list[int], list[int]]:
    """(line indices without a caption slot, with one) whose indicators fit a turn with n_inputs inputs. With
    several inputs, lines that name the most inputs win, so no input goes unmentioned when a line can name it.
    Lines with word slots ({object}, {style}, ...) need those slots; when a maker gave slots, lines that use them
    win."""
    lines = bank(task, direction)
    named = [i for i, ln in enumerate(lines) if slot_names(ln) and slot_names(ln) <= slots]
    plain_lines = [i for i, ln in enumerate(lines) if not slot_names(ln)]
    fit = [i for i in named if _fits(lines[i], n_inputs)] or [i for i in plain_lines if _fits(lines[i], n_inputs)]
    if not fit:
        # a bank written for another input count: take every line and let the indicator check below decide
        fit = named or plain_lines
    if n_inputs >= 2:
        span = {i: len(set(indicators(lines[i]))) for i in fit}
        best = max(span.values())
        fit = [i for i in fit if span[i] == best]
    plain = [i for i in fit if "{caption}" not in lines[i]]
    captioned = [i for i in fit if "{caption}" in lines[i]] if has_caption else []
    return plain, captioned


def fill_template(
    task: str,
    direction: str,
    caption: str,
    seed: int,
    n_inputs: int = 1,
    offset: int = 0,
    prefer_caption: float = 0.6,
    max_caption_words: int = 32,
    slots: dict[str, str] | None = None,
) -> Filled:
    """One instruction for a turn: `offset` is the number of images earlier turns of a chain show before this one;
    `slots` are the words a synthesized edit names (the object removed, the style, ...)."""
    rng = np.random.default_rng(seed)
    cap = clean_caption(caption, max_caption_words)
    slots = {k: clean_caption(v, max_caption_words) for k, v in (slots or {}).items() if v and clean_caption(v)}
    plain, captioned = usable_lines(task, direction, n_inputs, bool(cap), frozenset(slots))
    # without an input image the caption is the whole content: always use it when there is one
    if captioned and (not plain or n_inputs == 0 or rng.random() < prefer_caption):
        pool = captioned
    elif plain:
        pool = plain
    else:
        # only caption lines and no caption (e.g. Text-to-Image without alt text): say "a scene" rather than nothing
        pool, cap = [i for i in range(len(bank(task, direction))) if "{caption}" in bank(task, direction)[i]], "a scene"
    # lines weigh by the square root of their phrasing count: every frame shows up, small lines do not repeat
    weights = np.sqrt([compile_pattern(bank(task, direction)[i]).size for i in pool])
    line_index = int(pool[int(rng.choice(len(pool), p=weights / weights.sum()))])
    pattern = compile_pattern(bank(task, direction)[line_index])
    k = int(rng.integers(pattern.size))
    text = pattern.phrasing(k)
    used_caption = "{caption}" in text
    if used_caption:
        text = text.replace("{caption}", cap)
    text = SLOT_RE.sub(lambda m: slots[m.group(1)], text)
    text = shift_indicators(sentence_case(text), offset)
    return Filled(text, f"{task}#{line_index}.{k}", used_caption)


class TemplateInstructions(Operator):
    name = "template_instructions"
    version = "2"
    role = Role.INSTRUCT
    reads = (SAMPLES,)
    writes = (SAMPLE_INSTRUCTION,)
    Config: ClassVar[type[TemplateConfig]] = TemplateConfig

    def describe(self) -> str:
        n = sum(compile_pattern(ln).size for lines in TEMPLATES.values() for ln in lines)
        return (
            f"template_instructions: per-task template bank ({len(TEMPLATES)} tasks, {n} phrasings), filled with "
            f"captions"
        )

    def process(self, batch: WorkBatch) -> WorkBatch:
        c = self.config
        for sample in batch.samples:
            for i, turn in enumerate(sample.turns):
                if turn.instruction:
                    continue
                n_before = sample.n_images_visible(i) - len(turn.inputs)
                # a synthesized edit's maker names what it changed; a chain's provenance is the chain's own
                slots = dict(sample.provenance.params.get(PARAM_SLOTS, {})) if len(sample.turns) == 1 else {}
                filled = fill_template(
                    turn.task,
                    turn.direction,
                    turn.caption,
                    derive_seed(batch.seed, sample.key, i, METHOD_TEMPLATE),
                    n_inputs=len(turn.inputs),
                    offset=n_before,
                    prefer_caption=c.prefer_caption,
                    max_caption_words=c.max_caption_words,
                    slots=slots,
                )
                text = filled.text
                if 0 < i < len(sample.turns) - 1:
                    # a history turn of a chain composed before this stage: ACE's chat convention, as lcu_chains does
                    text = schema.rewrite_history_indicator(text, i)
                turn.instruction = text
                turn.instruction_method = METHOD_TEMPLATE
                record = InstructionRecord(method=METHOD_TEMPLATE, template=filled.template_id)
                if slots:
                    record.slots = slots
                if len(sample.turns) == 1 and PARAM_EMU_EDIT in sample.provenance.params:
                    record.emu_edit = dict(sample.provenance.params[PARAM_EMU_EDIT])
                elif turn.task in EMU_EDIT_KIND:
                    emu = emu_record(
                        edit=EMU_EDIT_KIND[turn.task],
                        output=clean_caption(turn.caption) if turn.direction != schema.DIRECTION_ANALYSIS else "",
                    )
                    if emu:
                        record.emu_edit = emu
                set_turn_record(sample, i, record)
        return batch
