"""The pairs job (pairing, step 2): its plan is the global step (K-means, two-pass union-find per group of
clusters, cleaned and capped pairs in OUT/pairs.parquet); each partition (pair-NNNNN, one row group of pairs.parquet)
then reads both images of its pairs, makes one CU per pair, writes instructions and commits shards."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from datagen.config import Recipe
from datagen.jobs import JobSpec, register_job
from datagen.operator import Operator
from datagen.pairing.config import PairingConfig
from datagen.pairing.plan import encoder_defaults, plan_pairs
from operators.instructions.stages import build_instruction_stages
from operators.pair_samples import PairSamples
from operators.read_pairs import ReadPairs
from pipelines.features import encoder

JOB = "pairs"


def plan(recipe: Recipe, out_dir: Path) -> list[dict[str, Any]]:
    return plan_pairs(recipe, out_dir)


def stages(recipe: Recipe) -> list[Operator]:
    if encoder(recipe) is None:
        return []
    cfg: PairingConfig = recipe.section("pairing")
    band, centered = encoder_defaults(cfg)
    params = {"encoder": cfg.encoder, "pass1_band": band.describe(), "centered": centered}
    return [ReadPairs(recipe.input, recipe.output.dir), PairSamples(params, seed=recipe.seed), *build_instruction_stages(recipe)]


register_job(JobSpec(name=JOB, order=20, plan=plan, stages=stages))
