"""The typed train recipe: one Section per concern (data, model, encoders, loss, optimiser, loop, previews).
Recipes only override these defaults; a bad key or value fails before any work, naming the key."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal, Optional, Union

from pydantic import Field

from datagen.config import ConfigError, Section, apply_overrides, load_yaml, validate_section

# The text encoder and VAE paths that build a randomly initialised tiny model instead of loading a checkpoint.
TINY_RANDOM = "tiny:random"


class DataConfig(Section):
    path: str = Field("out/demo", description="shard folder: local path or fsspec URI (s3://..., gs://..., file://...)")
    batch_size: int = Field(4, ge=1, description="samples per batch on each rank (before gradient accumulation)")
    num_workers: int = Field(2, ge=0, description="DataLoader workers per rank; 0 decodes in the training process")
    shuffle_buffer: int = Field(256, ge=1, description="samples held for within-stream shuffling")
    max_tokens: int = Field(
        1024, ge=1, description="per-frame budget of 16x16 px cells: (H/16)*(W/16) <= this (ACE: 1024 at 512px)"
    )
    side_multiple: int = Field(16, ge=1, description="bucket sides are multiples of this (VAE factor x patch size)")
    max_aspect: float = Field(4.0, ge=1.0, description="largest long/short side ratio of a bucket (ACE: 4)")
    max_text_tokens: int = Field(120, ge=4, description="T5 tokens per CU instruction, EOS included")
    max_inputs: int = Field(
        9,
        ge=1,
        le=9,
        description="input frames per sample ({image1}..{image9}); larger samples are counted and skipped",
    )
    holdout: int = Field(4, ge=0, description="CUs held out of training and used for the sampler's previews")
    latents: bool = Field(
        True,
        description="train from the latents job's VAE latents and text states where a shard has them, made with "
        "this recipe's encoders and sizes (`datagen latents`), and encode online elsewhere; false: always online",
    )


class ModelConfig(Section):
    size: str = Field("tiny", description="a row of datagen.trainer.models.SIZES (tiny, S, B, L, ACE-0.6B)")
    hidden: Optional[int] = Field(None, ge=8, description="override the size table's hidden width")
    depth: Optional[int] = Field(None, ge=1)
    heads: Optional[int] = Field(None, ge=1)
    patch: Optional[int] = Field(None, ge=1)
    mlp_ratio: float = Field(4.0, gt=0)
    grad_checkpointing: bool = Field(
        False, description="recompute block activations in the backward pass (saves memory)"
    )


class VaeConfig(Section):
    path: str = Field(
        TINY_RANDOM,
        description="local diffusers AutoencoderKL folder (or hub id where reachable); tiny:random for pipeline tests",
    )
    subfolder: Optional[str] = Field(None, description="e.g. 'vae' inside a full diffusers pipeline folder")
    dtype: Literal["auto", "fp32", "bf16"] = "auto"


class TextEncoderConfig(Section):
    path: str = Field(
        TINY_RANDOM,
        description="local transformers T5 folder (encoder weights + tokenizer); tiny:random for pipeline tests",
    )
    tokenizer_path: Optional[str] = Field(None, description="tokenizer folder when it differs from path")
    dtype: Literal["auto", "fp32", "bf16"] = "auto"


class LossConfig(Section):
    objective: Literal["flow", "eps"] = Field(
        "flow", description="flow: ACE++ flow matching (velocity); eps: ACE's DDPM noise prediction"
    )
    frames: Literal["all", "target"] = Field(
        "all", description="all: loss on input and target frames alike (ACE++); target: target only (ACE)"
    )
    logit_mean: float = 0.0
    logit_std: float = Field(1.0, gt=0)
    shift: float = Field(
        1.0, gt=0, description="timestep shift s: t' = s*t / (1 + (s-1)*t); >1 spends more steps at high noise"
    )
    text_dropout: float = Field(
        0.1, ge=0, le=1, description="probability of dropping a sample's text (for classifier-free guidance)"
    )
    eps_train_steps: int = Field(1000, ge=10, description="discrete DDPM steps of the eps objective")


class OptimConfig(Section):
    lr: float = Field(1e-4, gt=0)
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = Field(0.0, ge=0)
    warmup_steps: int = Field(0, ge=0)
    grad_clip: float = Field(1.0, ge=0, description="max global grad norm; 0 turns clipping off")
    fused: Union[bool, Literal["auto"]] = Field(
        "auto", description="fused AdamW kernel; auto: on with CUDA (DDP and FSDP alike), off on CPU"
    )


class TrainerConfig(Section):
    max_steps: int = Field(1000, ge=1, description="optimiser steps; a resumed run continues up to this")
    grad_accum: int = Field(1, ge=1, description="micro-batches per optimiser step")
    precision: Literal["auto", "bf16", "fp32"] = Field("auto", description="auto: bf16 autocast on GPU, fp32 on CPU")
    strategy: Literal["auto", "ddp", "fsdp"] = Field(
        "auto", description="auto: DDP when launched by torchrun with >1 process"
    )
    ema_decay: float = Field(0.9999, ge=0, lt=1)
    log_every: int = Field(10, ge=1)
    ckpt_every: int = Field(500, ge=1)
    keep_checkpoints: int = Field(2, ge=1)
    preview_every: int = Field(0, ge=0, description="0: previews only at the end of the run")
    compile: Union[bool, Literal["auto"]] = Field(
        "auto",
        description="torch.compile the DiT's blocks; auto: on with CUDA, off on CPU (compiling costs more there)",
    )
    attention: Literal["auto", "sdpa", "flex"] = Field(
        "auto",
        description="kernel for batches that need an attention mask (padded texts, samples with fewer frames; others "
        "take the unmasked flash path): sdpa (boolean mask), flex (block mask, fused when compiled); auto: flex when "
        "compiling on CUDA, else sdpa",
    )
    cpu_threads: Optional[int] = Field(
        None,
        ge=1,
        description="torch threads per process on CPU; None: OMP_NUM_THREADS, else the cores left per process after "
        "data workers",
    )
    record_keys: bool = Field(
        False, description="write OUTPUT/keys/rank-R.jsonl: the sample keys of every step (data audits)"
    )
    seed: Optional[int] = Field(None, description="defaults to the recipe seed")


class PreviewConfig(Section):
    steps: int = Field(20, ge=1, description="sampler steps (flow-Euler, or DDIM for the eps objective)")
    guidance: float = Field(1.0, ge=0, description="classifier-free guidance scale; 1 = off")
    use_ema: bool = True


class TrainOutputConfig(Section):
    dir: str = "out/train"


class TrainRecipe(Section):
    name: str = "train"
    seed: int = 0
    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    vae: VaeConfig = VaeConfig()
    text_encoder: TextEncoderConfig = TextEncoderConfig()
    loss: LossConfig = LossConfig()
    optim: OptimConfig = OptimConfig()
    trainer: TrainerConfig = TrainerConfig()
    preview: PreviewConfig = PreviewConfig()
    output: TrainOutputConfig = TrainOutputConfig()

    @property
    def train_seed(self) -> int:
        return self.seed if self.trainer.seed is None else self.trainer.seed

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


# What must stay the same for a checkpoint to be resumed: the network and what feeds it.
RESUME_LOCKED = ("model", "vae", "text_encoder", "loss.objective")


def load_train_recipe(path: str | Path | None, overrides: list[str] | None = None) -> TrainRecipe:
    raw: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"train recipe {str(p)!r} does not exist")
        raw = load_yaml(p.read_text(), str(p)) or {}
        if not isinstance(raw, dict):
            raise ConfigError(f"{p}: a train recipe is a mapping of sections")
    raw = apply_overrides(raw, overrides or [])
    return validate_section(TrainRecipe, raw, "")


def locked_differences(saved: dict[str, Any], recipe: TrainRecipe) -> list[str]:
    """Keys of RESUME_LOCKED whose values differ between a checkpoint's recipe and this one."""
    now = recipe.to_json()
    diffs = []
    for dotted in RESUME_LOCKED:
        a: Any = saved
        b: Any = now
        for part in dotted.split("."):
            a = a.get(part) if isinstance(a, dict) else None
            b = b.get(part) if isinstance(b, dict) else None
        if isinstance(a, dict) and isinstance(b, dict):
            for k in sorted(set(a) | set(b)):
                if json.dumps(a.get(k)) != json.dumps(b.get(k)):
                    diffs.append(f"{dotted}.{k}: checkpoint {a.get(k)!r}, now {b.get(k)!r}")
        elif json.dumps(a) != json.dumps(b):
            diffs.append(f"{dotted}: checkpoint {a!r}, now {b!r}")
    return diffs
