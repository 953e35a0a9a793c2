"""How a pipeline module turns the recipe into operator instances: an operator runs when the recipe lists it under
`operators:` with `enabled: true`. Whether it can run is asked later, where it runs (datagen.probe): one that cannot
fails the run, or is skipped and counted when the recipe marks it `optional: true`."""

from __future__ import annotations

import logging
from typing import Any, Optional

from datagen.config import Recipe
from datagen.operator import Operator

log = logging.getLogger(__name__)


def configured(recipe: Recipe, cls: type[Operator], **context: Any) -> Optional[Operator]:
    """An instance of `cls` with the recipe's config for it (and recipe-level `context` beside the seed), or None when
    the recipe leaves it out or off."""
    cfg = recipe.operators.get(cls.name)
    if cfg is None or not cfg.enabled:
        return None
    return cls(cfg, seed=recipe.seed, **context)


def present(*ops: Optional[Operator]) -> list[Operator]:
    """The stage list without the operators that are off."""
    return [op for op in ops if op is not None]
