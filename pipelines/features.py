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
    """The recipe's pairing encoder, or None (said plainly in the log) when the recipe turns pairing off. Whether
    it can run is asked on its workers (datagen.probe): the job cannot do without it (`essential`), so when it is
    optional and cannot run, the features job and the pairs job after it are skipped."""
    cfg: PairingConfig = recipe.section("pairing")
    if not cfg.enabled:
        return None
    cls = ENCODERS[cfg.encoder]
    op = cls(recipe.operators.get(cfg.encoder), seed=recipe.seed)
    if not op.config.enabled:
        log.warning("pairing is OFF: encoder %s: operators.%s.enabled is false", cfg.encoder, cfg.encoder)
        return None
    op.essential = True
    return op


def active_routes(recipe: Recipe) -> list[tuple[str, RouteConfig]]:
    """Enabled routes. The face route's face features are asked on their workers like every stage (datagen.probe):
    a face model pack missing there fails the run, unless face_features is optional."""
    cfg: PairingConfig = recipe.section("pairing")
    return [(name, route) for name, route in cfg.routes.items() if route.enabled]


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
