"""Helpers of the instruction stages around a turn's InstructionRecord (its fields and the method names live in
datagen.schema): read, replace or update the record of a turn, and count a fallback in the stage's stats."""

from __future__ import annotations

import dataclasses
from typing import Any

from datagen.batch import WorkBatch
from datagen.schema import EMU_FIELDS, METHOD_FALLBACK_TEMPLATE, InstructionRecord, Sample


def turn_record(sample: Sample, turn_index: int) -> InstructionRecord:
    return sample.turns[turn_index].instruction_record


def set_turn_record(sample: Sample, turn_index: int, record: InstructionRecord) -> None:
    """The record lives on the turn, never in provenance.params: the sample key is not recomputed, it names the
    content, and the instruction is derived from it and the recipe."""
    sample.turns[turn_index].instruction_record = record


def update_turn_record(sample: Sample, turn_index: int, **fields: Any) -> None:
    """Set the given InstructionRecord fields (None leaves a field as it is); an unknown field name is a bug."""
    record = turn_record(sample, turn_index)
    set_turn_record(
        sample, turn_index, dataclasses.replace(record, **{k: v for k, v in fields.items() if v is not None})
    )


def emu_record(**fields: Any) -> dict[str, str]:
    """The known fields of an Emu Edit record (edit, edited_object, output, original_object); empty ones left out."""
    return {k: str(fields[k]).strip() for k in EMU_FIELDS if fields.get(k) and str(fields[k]).strip()}


def count_fallback(batch: WorkBatch, stage: str, reason: str, n: int = 1) -> None:
    """Fallbacks are counted in the stage's stats (no sample is dropped: it keeps its template instruction)."""
    batch.stage(stage).skip(f"{METHOD_FALLBACK_TEMPLATE}:{reason}", n)
