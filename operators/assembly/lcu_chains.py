"""Long-context CUs: chain a source image's CUs into multi-turn samples (condition -> photo -> analysis -> back),
each turn's input being the previous turn's output, with up to `max_history` earlier rounds before the current one.
Runs after the instruction stage: every turn says its CU's instruction another way (a kept rewrite or the template,
one the partition has not used yet for the task where there is one) where the instruction stage made one, so an LCU
repeats no CU word for word; history turns i>0 name their input {image<i>}, as ACE's chat does."""

from __future__ import annotations

from collections import defaultdict
from typing import ClassVar

import numpy as np
from pydantic import Field

from datagen import schema
from datagen.batch import SAMPLE_INSTRUCTION, SAMPLES, WorkBatch
from datagen.operator import Operator, OperatorConfig, Role
from datagen.schema import METHOD_TEMPLATE, Provenance, Sample, Turn
from operators.instructions.records import turn_record


class LcuChainsConfig(OperatorConfig):
    max_history: int = Field(2, ge=1, le=8, description="m: earlier rounds kept before the current turn")
    min_turns: int = Field(2, ge=2, description="chains shorter than this are not emitted")
    per_image: int = Field(1, ge=1, le=8, description="chains drawn per source image")


def _copy_turn(turn: Turn, instruction: str, method: str) -> Turn:
    return Turn(
        task=turn.task,
        direction=turn.direction,
        inputs=turn.inputs,
        target=turn.target,
        instruction=instruction,
        instruction_method=method,
        caption=turn.caption,
    )


def _is_photo(image: np.ndarray, photo: np.ndarray | None) -> bool:
    return photo is not None and (image is photo or (image.shape == photo.shape and np.array_equal(image, photo)))


def alternate_instruction(cu: Sample, rng: np.random.Generator, used: set[str] = frozenset()) -> tuple[str, str] | None:
    """(instruction, method) for a CU's turn said another way: one of the rewrites its instruction stage kept, or
    the template it rewrote, preferring one not in `used`; None when the stage left no other wording."""
    turn = cu.current
    rec = turn_record(cu, len(cu.turns) - 1)
    options = [(a, turn.instruction_method) for a in rec.alternates]
    if rec.source:
        options.append((rec.source, METHOD_TEMPLATE))
    options = [(t, m) for t, m in options if t and t != turn.instruction]
    if not options:
        return None
    options = [o for o in options if o[0] not in used] or options
    return options[int(rng.integers(len(options)))]


class LcuChains(Operator):
    name = "lcu_chains"
    version = "1"
    role = Role.COMPOSE  # runs after instructions: composes finished CUs into LCUs
    reads = (
        SAMPLES,
        SAMPLE_INSTRUCTION,
    )
    writes = (SAMPLES,)
    Config: ClassVar[type[LcuChainsConfig]] = LcuChainsConfig

    def describe(self) -> str:
        c = self.config
        return f"lcu_chains: up to {c.max_history} history rounds, {c.per_image} chain(s) per image"

    def process(self, batch: WorkBatch) -> WorkBatch:
        c = self.config
        stats = batch.stage(self.name)
        by_source: dict[str, list[Sample]] = defaultdict(list)
        for s in batch.samples:
            if s.kind == schema.KIND_CU and len(s.provenance.source_ids) == 1:
                by_source[s.provenance.source_ids[0]].append(s)
        new: list[Sample] = []
        used: dict[str, set[str]] = defaultdict(set)  # per task, the wordings the partition's samples already say
        for s in batch.samples:
            for t in s.turns:
                used[t.task].add(t.instruction)
        for sid, samples in sorted(by_source.items()):
            # CUs whose target is the source photo, and analysis CUs that start from it (by operator)
            analysis = {s.provenance.operator: s for s in samples if s.direction == schema.DIRECTION_ANALYSIS}
            photo = next((s.current.inputs[0].image for s in analysis.values()), None)
            # the next turn starts from the source photo: only CUs with one input whose target is that photo (not an
            # edit synthesized from it, such as a removal or a restyle) lead into it
            to_photo = sorted(
                (
                    s
                    for s in samples
                    if s.direction != schema.DIRECTION_ANALYSIS
                    and len(s.current.inputs) == 1
                    and s.current.target.role == schema.ROLE_PHOTO
                    and _is_photo(s.current.target.image, photo)
                ),
                key=lambda s: s.key,
            )
            inverse = {s.provenance.operator: s for s in samples if s.direction == schema.DIRECTION_GENERATION}
            if not to_photo or not analysis:
                stats.skip("no chainable CUs")
                continue
            rng = batch.rng(sid, self.name)
            for variant in range(c.per_image):
                chain = [to_photo[int(rng.integers(len(to_photo)))]]
                ops = sorted(analysis)
                rng.shuffle(ops)
                for op in ops:
                    if len(chain) >= c.max_history + 1:
                        break
                    chain.append(analysis[op])  # photo -> condition
                    if len(chain) < c.max_history + 1 and op in inverse:
                        chain.append(inverse[op])  # condition -> photo again
                if len(chain) < c.min_turns:
                    stats.skip("chain too short")
                    continue
                new.append(self._compose(chain, batch, variant, used))
        batch.samples.extend(new)
        return batch

    def _compose(self, chain: list[Sample], batch: WorkBatch, variant: int, used: dict[str, set[str]]) -> Sample:
        last = len(chain) - 1
        turns = []
        current_from = "cu"
        for i, s in enumerate(chain):
            text, method = s.current.instruction, s.current.instruction_method
            # every turn says it another way than its CU does, where the CU has another way
            alt = alternate_instruction(
                s, batch.rng(s.key, self.name, variant, "current" if i == last else f"turn{i}"), used[s.task]
            )
            if alt is not None:
                text, method = alt
                used[s.task].add(text)
                if i == last:
                    current_from = "alternate"
            elif i == last:
                batch.stage(self.name).skip("current turn: no alternate instruction")
            # history turns i>0 name their input {image<i>}; the first and the current turn keep {image}
            if 0 < i < last:
                text = schema.rewrite_history_indicator(text, i)
            turns.append(_copy_turn(s.current, text, method))
        first = chain[0].provenance
        prov = Provenance(
            sources=list(first.sources),
            source_ids=list(first.source_ids),
            operator=self.name,
            operator_version=self.version,
            params={
                "turn_keys": [s.key for s in chain],
                "turn_operators": [s.provenance.operator for s in chain],
                "max_history": self.config.max_history,
                "current_instruction": current_from,
            },
            recipe=batch.recipe,
            variant=variant,
        )
        return Sample(turns=turns, provenance=prov)
