"""Which instruction stages a job runs, from the recipe's `instructions` section."""
from __future__ import annotations

from datagen.config import Recipe
from datagen.operator import Operator


def build_instruction_stages(recipe: Recipe) -> list[Operator]:
    from operators.instructions.templates import TemplateInstructions

    return [TemplateInstructions(seed=recipe.seed)]
