"""The scoring stages every sample-making job runs after its samples are finished (images: CUs and LCUs; pairs:
paired photos): each scorer the recipe lists, in the order below, then the quality filter, then (instructions method
`outcome`) the instruction of each kept sample rewritten from its output. A scorer scores what a sample has and skips
the rest; only the filter drops, and it counts why."""

from __future__ import annotations

from datagen.config import Recipe
from datagen.operator import Operator
from operators.instructions.stages import build_outcome_stages
from operators.scoring.clip import ClipScores
from operators.scoring.dino import DinoScore
from operators.scoring.judge import JudgeScores
from operators.scoring.nsfw import NsfwScore
from operators.scoring.pixel import PixelScores
from operators.scoring.quality_filter import QualityFilter
from pipelines.build import configured, present

# cheap pixel scores first, then the models (each an actor pool of its own when it holds one)
SCORERS: tuple[type[Operator], ...] = (PixelScores, NsfwScore, ClipScores, DinoScore, JudgeScores)


def scoring_stages(recipe: Recipe) -> list[Operator]:
    # then, optionally, the instruction of each kept sample rewritten from what its output shows
    return [
        *present(*(configured(recipe, cls) for cls in SCORERS), configured(recipe, QualityFilter)),
        *build_outcome_stages(recipe),
    ]
