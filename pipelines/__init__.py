"""datagen's jobs, in the order a run executes them, and the recipe API bound to datagen's own operators:
`load_recipe` / `build_recipe` validate against pipelines.catalog, `run` runs JOBS.

    images   -> per-photo condition, repainting, synthesized-edit and LCU samples (pipelines/images.py)
    features -> per-photo pairing features                               (pipelines/features.py)
    kmeans, assign, unionfind -> K-means, assignment, two-pass union-find (datagen/pairing/steps.py)
    pairs    -> one CU per pair                                           (pipelines/pairing.py)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

from datagen import config
from datagen import run as _run
from datagen.config import Recipe
from datagen.planning import ClusterShape, WavePlan, plan_wave
from pipelines import features, images, pairing
from pipelines.catalog import CATALOG

JOBS = (images.JOB, features.JOB, *pairing.STEP_JOBS, pairing.JOB)


def load_recipe(path: str | Path | None, overrides: Optional[list[str]] = None) -> Recipe:
    return config.load_recipe(path, overrides, CATALOG)


def build_recipe(raw: dict[str, Any]) -> Recipe:
    return config.build_recipe(raw, CATALOG)


def plan_waves(recipe: Recipe, shape: ClusterShape) -> list[WavePlan]:
    """The plan of each wave of jobs (the jobs that run at once) on a cluster of this shape, as `run` would place
    them; raises PlanError when a wave cannot fit. Partitions are not planned (the pairs job's needs the features)."""
    rt = recipe.runtime
    out = []
    for wave in _run.waves(JOBS, rt.concurrent_jobs and rt.executor == "ray"):
        jobs = [(spec.name, stages, None) for spec in wave if (stages := spec.stages(recipe))]
        if jobs:
            out.append(plan_wave(jobs, rt, shape))
    return out


def run(recipe: Recipe, progress: Optional[bool] = None, release: bool = False) -> dict[str, Any]:
    return _run.run(recipe, JOBS, progress, release)
