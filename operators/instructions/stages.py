"""Which instruction stages a job runs, from the recipe's `instructions` section: templates first (every turn
gets one; it is the fallback of every other method), then the model-backed methods, then rewrites of what is
still a template. Whether a model stage can run (checkpoint, vllm installed) is asked on its workers (datagen.probe):
one that cannot fails the run unless its section says `optional: true`; then it is skipped and counted."""

from __future__ import annotations

import logging

from datagen.config import Recipe
from datagen.operator import Operator
from operators.instructions.config import InstructionsConfig

log = logging.getLogger(__name__)


def instructions_config(recipe: Recipe) -> InstructionsConfig:
    cfg = recipe.sections.get("instructions")
    return cfg if isinstance(cfg, InstructionsConfig) else InstructionsConfig()


def build_instruction_stages(recipe: Recipe) -> list[Operator]:
    from operators.instructions.captioner import CaptionerInstructions
    from operators.instructions.difference import DifferenceInstructions
    from operators.instructions.rewrites import RewriteInstructions
    from operators.instructions.templates import TemplateInstructions

    cfg = instructions_config(recipe)
    stages: list[Operator] = [TemplateInstructions(cfg.template, seed=recipe.seed)]
    wanted = [
        ("captioner", CaptionerInstructions, cfg.captioner),
        ("mllm_difference", DifferenceInstructions, cfg.mllm_difference),
        ("rewrite", RewriteInstructions, cfg.rewrite),
    ]
    for method, cls, sub in wanted:
        if method not in cfg.methods:
            continue
        stages.append(cls(sub, seed=recipe.seed))
    return stages


def build_outcome_stages(recipe: Recipe) -> list[Operator]:
    """The instruction-from-the-outcome stage, when the recipe's instruction methods name it: it runs on kept
    samples, after the quality filter (pipelines/scoring.py)."""
    from operators.instructions.outcome import OutcomeInstructions

    cfg = instructions_config(recipe)
    return [OutcomeInstructions(cfg.outcome, seed=recipe.seed)] if "outcome" in cfg.methods else []
