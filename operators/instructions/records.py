"""How an instruction was made, recorded with the sample: the method names written to `Turn.instruction_method`,
and per-turn details (template id, rewrite alternates, Emu Edit-style record, fallback reason) in provenance params."""

from __future__ import annotations

import dataclasses
from typing import Any

from datagen.batch import WorkBatch
from datagen.schema import Sample

# values of Turn.instruction_method (see the comment on datagen.schema.Turn)
TEMPLATE = "template"
RULE_REWRITE = "rule_rewrite"  # the classical paraphraser, never reported as an LLM
LLM_REWRITE = "llm_rewrite"
CAPTIONER = "captioner"
MLLM_DIFFERENCE = "mllm_difference"
FALLBACK_TEMPLATE = "fallback_template"

# provenance params key: {"<turn index>": {...}} for every turn an instruction stage touched
PARAMS_KEY = "instructions"
# Emu Edit's instruction record, kept where a stage knows it
EMU_FIELDS = ("edit", "edited_object", "output", "original_object")
# provenance params keys of a synthesized edit (operators/edits/base.py): the maker's Emu Edit record, and the words
# its instruction must name ({object}, {new_object}, {style}, {background}, {layer} slots of the template bank)
SYNTH_EMU_KEY = "emu_edit"
SLOTS_KEY = "slots"


def turn_record(sample: Sample, turn_index: int) -> dict[str, Any]:
    return dict(sample.provenance.params.get(PARAMS_KEY, {}).get(str(turn_index), {}))


def set_turn_record(sample: Sample, turn_index: int, record: dict[str, Any]) -> None:
    """Copy-on-write: makers share one Provenance between the samples of one source (both directions of a
    condition), so each sample gets its own params before its instruction details go in. The key is not
    recomputed: it names the content, and the instruction is derived from it and the recipe."""
    params = dict(sample.provenance.params)
    per_turn = dict(params.get(PARAMS_KEY, {}))
    per_turn[str(turn_index)] = record
    params[PARAMS_KEY] = per_turn
    sample.provenance = dataclasses.replace(sample.provenance, params=params)


def update_turn_record(sample: Sample, turn_index: int, **fields: Any) -> None:
    record = turn_record(sample, turn_index)
    record.update({k: v for k, v in fields.items() if v is not None})
    set_turn_record(sample, turn_index, record)


def emu_record(**fields: Any) -> dict[str, str]:
    """The known fields of an Emu Edit record (edit, edited_object, output, original_object); empty ones left out."""
    return {k: str(fields[k]).strip() for k in EMU_FIELDS if fields.get(k) and str(fields[k]).strip()}


def count_fallback(batch: WorkBatch, stage: str, reason: str, n: int = 1) -> None:
    """Fallbacks are counted in the stage's stats (no sample is dropped: it keeps its template instruction)."""
    batch.stage(stage).skip(f"{FALLBACK_TEMPLATE}:{reason}", n)
