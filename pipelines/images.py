"""The per-image job: read and decode each partition of source photos, run every enabled sample-making operator
(conditions, repainting, ...), write instructions, commit shards. Partition names: img-00000, img-00001, ..."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from datagen import registry
from datagen.config import Recipe
from datagen.ingest.listing import list_entries, plan_partitions
from datagen.ingest.read import ReadImages
from datagen.jobs import JobSpec, register_job
from datagen.operator import Operator
from operators.instructions.stages import build_instruction_stages

log = logging.getLogger(__name__)

JOB = "images"
PREFIX = "img"


def plan(recipe: Recipe, out_dir: Path) -> list[dict[str, Any]]:
    entries = list_entries(recipe.input)
    return plan_partitions(entries, recipe.input.images_per_partition, PREFIX)


def enabled_operators(recipe: Recipe, role: str) -> list[Operator]:
    ops = []
    for name, cfg in recipe.operators.items():
        cls = registry.get_operator(name)
        if getattr(cls, "role", "") == role and cfg.enabled:
            op = cls(cfg, seed=recipe.seed)
            why = op.unavailable_reason()
            if why:
                log.warning("operator %s is OFF: %s", name, why)
                continue
            ops.append(op)
    return ops


def stages(recipe: Recipe) -> list[Operator]:
    makers = enabled_operators(recipe, "maker")
    if not makers:
        return []
    return [
        ReadImages(recipe.input),
        *makers,
        *enabled_operators(recipe, "filter"),
        *build_instruction_stages(recipe),
        *enabled_operators(recipe, "composer"),  # LCU chains compose finished CUs
        *enabled_operators(recipe, "mix"),  # task proportions, last
    ]


register_job(JobSpec(name=JOB, order=10, plan=plan, stages=stages))
