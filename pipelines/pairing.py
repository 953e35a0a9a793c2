"""The pairing jobs after the features job: kmeans, assign and unionfind (the global step, each a job of its own with
its done-markers: datagen/pairing/steps.py), then the pairs job, whose plan merges the groups' cleaned, capped pairs
into OUT/pairs.parquet; each of its partitions (pair-NNNNN, one row group of pairs.parquet) reads both images of its
pairs, makes one CU per pair, writes instructions and commits shards."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

from datagen.config import Recipe
from datagen.jobs import JobSpec
from datagen.operator import Operator
from datagen.pairing import steps
from datagen.pairing.config import Band, PairingConfig
from datagen.pairing.plan import UNIONFIND_JOB, plan_pairs
from operators.assembly.pair_samples import PairSamples
from operators.assembly.read_pairs import ReadPairs
from operators.instructions.stages import build_instruction_stages
from pipelines.catalog import ENCODERS
from pipelines.features import active_routes, encoder
from pipelines.scoring import scoring_stages


def encoder_defaults(cfg: PairingConfig) -> tuple[Band, bool]:
    """Pass-1 band and centring: the recipe's, else the encoder's own defaults."""
    cls = ENCODERS[cfg.encoder]
    band = cfg.pass1.band if cfg.pass1.band is not None else cls.default_band
    center = cfg.pass1.center if cfg.pass1.center is not None else cls.default_center
    return band, bool(center)


def settings(recipe: Recipe) -> Optional[steps.Settings]:
    """How the recipe pairs (pass 1's band and centring, the active routes), or None when pairing is off."""
    if encoder(recipe) is None:
        return None
    band, center = encoder_defaults(recipe.section("pairing"))
    return steps.Settings(band=band, center=center, routes=active_routes(recipe))


def plan(recipe: Recipe, out_dir: Path) -> list[dict[str, Any]]:
    band, center = encoder_defaults(recipe.section("pairing"))
    return plan_pairs(recipe, out_dir, band=band, center=center, routes=active_routes(recipe))


def stages(recipe: Recipe) -> list[Operator]:
    if encoder(recipe) is None:
        return []
    cfg: PairingConfig = recipe.section("pairing")
    band, centered = encoder_defaults(cfg)
    params = {"encoder": cfg.encoder, "pass1_band": band.describe(), "centered": centered}
    return [
        ReadPairs(recipe.input, recipe.output.dir),  # both images of each pair, fetched as the features job did
        PairSamples(params, seed=recipe.seed),  # one CU per pair: input image a -> target image b
        *build_instruction_stages(recipe),  # templates, then the instruction captioner / MLLM difference / rewrites
        *scoring_stages(recipe),  # scores on every pair, then the quality filter
    ]


# the global step's jobs, in running order, each after the one before (the first after the features job)
STEP_JOBS = steps.jobs(settings)
JOB = JobSpec(name="pairs", plan=plan, stages=stages, after=(UNIONFIND_JOB,))  # merges the unionfind job's groups
