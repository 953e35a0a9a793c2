"""The features job (pairing, step 1): read every source image once and store its pairing features (the encoder's
embedding, ORB keypoints, faces when the face route is on, a dHash) in OUT/features/feat-NNNNN.parquet. Runs before
the pairs job, which plans from these files. Off unless the recipe's `pairing.enabled` is true."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Optional

from datagen.batch import ENTRIES
from datagen.config import Recipe
from datagen.ingest.listing import list_entries, plan_partitions
from datagen.ingest.read import ReadImages
from datagen.jobs import JobSpec
from datagen.operator import Operator
from datagen.pairing.config import SCORE_FACE, SCORE_OBJECT, PairingConfig, RouteConfig
from datagen.pairing.features import WriteFeatures
from operators.features.dhash import ImageDHash
from operators.features.faces import FaceFeatures
from operators.features.object_keypoints import ObjectKeypoints
from pipelines.catalog import ENCODERS

log = logging.getLogger(__name__)

PREFIX = "feat"


def plan(recipe: Recipe, out_dir: Path) -> list[dict[str, Any]]:
    size = recipe.section("pairing").features_per_partition or recipe.input.images_per_partition
    return plan_partitions(list_entries(recipe.input), size, PREFIX)


def encoder(recipe: Recipe) -> Optional[Operator]:
    """The recipe's pairing encoder, or None (said plainly in the log) when pairing cannot run."""
    cfg: PairingConfig = recipe.section("pairing")
    if not cfg.enabled:
        return None
    cls = ENCODERS[cfg.encoder]
    op = cls(recipe.operators.get(cfg.encoder), seed=recipe.seed)
    why = op.unavailable_reason() or (None if op.config.enabled else f"operators.{cfg.encoder}.enabled is false")
    if why:
        log.warning("pairing is OFF: encoder %s: %s", cfg.encoder, why)
        return None
    return op


def active_routes(recipe: Recipe) -> list[tuple[str, RouteConfig]]:
    """Enabled routes whose task score can be computed with this recipe (the face route needs a face model pack)."""
    cfg: PairingConfig = recipe.section("pairing")
    out = []
    for name, route in cfg.routes.items():
        if not route.enabled:
            continue
        if route.score == SCORE_FACE:
            why = FaceFeatures(recipe.operators.get(FaceFeatures.name)).unavailable_reason()
            if why:
                log.warning("pairing route %s is OFF: %s", name, why)
                continue
        out.append((name, route))
    return out


def stages(recipe: Recipe) -> list[Operator]:
    enc = encoder(recipe)
    if enc is None:
        return []
    scores = {route.score for _, route in active_routes(recipe)}

    def feature(cls: type[Operator]) -> Operator:
        return cls(recipe.operators.get(cls.name), seed=recipe.seed)

    # CPU features first: they fuse with the read into one task, and the model stages after them keep their GPUs busy
    return [
        ReadImages(recipe.input),
        feature(ImageDHash),  # near-duplicate cleaning of the sets
        *([feature(ObjectKeypoints)] if SCORE_OBJECT in scores else []),  # ORB, for pass 2 of the object routes
        *([feature(FaceFeatures)] if SCORE_FACE in scores else []),  # faces, for pass 2 of the face route
        enc,  # the image embedding that K-means and pass 1 use
        WriteFeatures(recipe.output.dir),
    ]


JOB = JobSpec(name="features", plan=plan, stages=stages, given=(ENTRIES,))
