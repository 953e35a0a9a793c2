"""Preview images for a few held-out CUs: for each, one strip [inputs ... | generated target | real target]
under OUTPUT/previews/step-NNNNNN/KEY.png, and index.json with the instructions, so progress can be seen."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from datagen import paths
from datagen.schema import Sample
from datagen.trainer.buckets import make_buckets, nearest_bucket
from datagen.trainer.config import TrainRecipe
from datagen.trainer.encoders import LatentCodec, TextEncoder
from datagen.trainer.examples import TooManyInputs, collate, to_example
from datagen.trainer.sampler import sample_targets

log = logging.getLogger(__name__)

PREVIEW_DIR = "previews"


def to_uint8(pixels: torch.Tensor) -> np.ndarray:
    """[3, H, W] in [-1, 1] -> HxWx3 uint8 RGB."""
    return ((pixels.float().clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).cpu().numpy()


def write_previews(
    out: Path,
    step: int,
    samples: list[Sample],
    model: torch.nn.Module,
    objective: Any,
    codec: LatentCodec,
    text_encoder: TextEncoder,
    recipe: TrainRecipe,
    autocast: bool,
    write: bool = True,
) -> list[Path]:
    """Sample every held-out CU (one at a time: each keeps its own bucket). Only `write` ranks save files."""
    buckets = make_buckets(recipe.data.max_tokens, recipe.data.side_multiple, recipe.data.max_aspect)
    folder = out / PREVIEW_DIR / f"step-{step:06d}"
    written, index = [], []
    was_training = model.training
    model.eval()
    try:
        for i, sample in enumerate(samples):
            bucket = nearest_bucket(*sample.current.target.size, buckets)
            try:
                ex = to_example(sample, bucket, recipe.data.max_inputs)
            except TooManyInputs as e:
                log.warning("preview of %s skipped: %s", sample.key, e)
                continue
            batch = collate([ex], text_encoder.tokenizer, recipe.data.max_text_tokens).to(codec.device)
            lat = sample_targets(
                model,
                objective,
                codec,
                text_encoder,
                batch,
                recipe.loss,
                recipe.preview.steps,
                recipe.preview.guidance,
                seed=recipe.train_seed + i,
                autocast=autocast,
            )
            generated = to_uint8(codec.decode(lat)[0])
            if not write:
                continue
            strip = np.concatenate([*ex.images[:-1], generated, ex.images[-1]], axis=1)
            path = paths.safe_join(folder, f"{sample.key}.png")
            path.parent.mkdir(parents=True, exist_ok=True)
            ok, buf = cv2.imencode(".png", cv2.cvtColor(strip, cv2.COLOR_RGB2BGR))
            if not ok:
                raise RuntimeError(f"could not encode the preview of {sample.key}")
            paths.atomic_write_bytes(path, buf.tobytes())
            written.append(path)
            index.append(
                {
                    "key": sample.key,
                    "task": sample.task,
                    "instructions": [t.instruction for t in sample.turns],
                    "file": path.name,
                }
            )
    finally:
        model.train(was_training)
    if write and index:
        paths.atomic_write_json(
            folder / "index.json", {"step": step, "layout": "inputs | generated | target", "previews": index}
        )
    return written
