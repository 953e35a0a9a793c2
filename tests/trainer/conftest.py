"""Trainer fixtures: one small shard folder made by the demo recipe (real photos, every weight-free condition,
repainting masks, LCU chains), and tiny random VAE/T5 checkpoints saved to disk and loaded back."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipelines import load_recipe


@pytest.fixture(scope="session")
def shard_dir(tmp_path_factory) -> Path:
    from pipelines import run

    out = tmp_path_factory.mktemp("trainer_shards") / "demo"
    # template instructions and no photo pairing: the slow model-backed stages add nothing the trainer needs; the
    # edits synthesized from single photos are left out too, so the epoch sizes these tests step through stay put
    from pipelines.catalog import SYNTHESIZED

    synthesized_off = [f"operators.{cls.name}.enabled=false" for cls in SYNTHESIZED]
    run(
        load_recipe(
            "configs/demo.yaml",
            [
                f"output.dir={out}",
                "input.limit=6",
                "input.max_side=128",
                "runtime.executor=local",
                "runtime.progress=false",
                "pairing.enabled=false",
                "instructions.methods=[template]",
                *synthesized_off,
            ],
        )
    )
    return out


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory, shard_dir) -> Path:
    """root/vae and root/t5, built as `tiny:random` builds them and loaded through from_pretrained."""
    from datagen.shards.reader import iter_samples
    from datagen.trainer.encoders import prepare_tiny_models

    corpus = [t.instruction for s in iter_samples(shard_dir) for t in s.turns]
    root = tmp_path_factory.mktemp("tiny_models")
    prepare_tiny_models(root, corpus, None, vae=True, t5=True)
    return root
