"""The features job (pairing, step 1): read every source image once and store its pairing features (the encoder's
embedding, ORB keypoints, faces when the face route is on, a dHash) in OUT/features/feat-NNNNN.parquet. Runs before
the pairs job, which plans from these files. Off unless the recipe's `pairing.enabled` is true."""
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
from datagen.pairing.config import SCORE_FACE, SCORE_OBJECT, PairingConfig
from datagen.pairing.features import WriteFeatures
from datagen.pairing.plan import active_routes

log = logging.getLogger(__name__)

JOB = "features"
PREFIX = "feat"


def plan(recipe: Recipe, out_dir: Path) -> list[dict[str, Any]]:
    return plan_partitions(list_entries(recipe.input), recipe.input.images_per_partition, PREFIX)


def _operator(recipe: Recipe, name: str) -> Operator:
    cls = registry.get_operator(name)
    return cls(recipe.operators.get(name), seed=recipe.seed)


def encoder(recipe: Recipe) -> Operator | None:
    """The recipe's pairing encoder, or None (said plainly in the log) when pairing cannot run."""
    cfg: PairingConfig = recipe.section("pairing")
    if not cfg.enabled:
        return None
    op = _operator(recipe, cfg.encoder)
    why = op.unavailable_reason() or (None if op.config.enabled else f"operators.{cfg.encoder}.enabled is false")
    if why:
        log.warning("pairing is OFF: encoder %s: %s", cfg.encoder, why)
        return None
    return op


def stages(recipe: Recipe) -> list[Operator]:
    enc = encoder(recipe)
    if enc is None:
        return []
    routes = active_routes(recipe)
    ops: list[Operator] = [ReadImages(recipe.input), enc]
    if any(r.score == SCORE_OBJECT for _, r in routes):
        ops.append(_operator(recipe, "object_keypoints"))
    if any(r.score == SCORE_FACE for _, r in routes):
        ops.append(_operator(recipe, "face_features"))
    ops.append(_operator(recipe, "image_dhash"))
    ops.append(WriteFeatures(recipe.output.dir))
    return ops


register_job(JobSpec(name=JOB, order=15, plan=plan, stages=stages))
