"""The training loop behind `datagen train`: build encoders, DiT, optimiser and the shard stream; resume from the
latest checkpoint (weights, optimiser, EMA, step, data position); train with gradient accumulation, clipping,
bf16 autocast on GPU and DDP/FSDP under torchrun; log OUTPUT/metrics.jsonl; checkpoint; write previews."""

from __future__ import annotations

import json
import logging
import math
import os
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch

from datagen import paths
from datagen.config import ConfigError
from datagen.trainer import checkpoint as ckpt
from datagen.trainer.config import TINY_RANDOM, OptimConfig, TrainerConfig, TrainRecipe, locked_differences
from datagen.trainer.distributed import (
    DistInfo,
    all_gather_objects,
    barrier,
    cleanup,
    init_distributed,
    mean_across,
    resolve_strategy,
    sum_across,
    unwrap,
    wrap_model,
)
from datagen.trainer.ema import EMA
from datagen.trainer.encoders import encoder_fingerprint, load_text_encoder, load_vae, prepare_tiny_models
from datagen.trainer.examples import Batch
from datagen.trainer.loader import (
    LoaderPosition,
    ShardStream,
    holdout_keys,
    iter_raw,
    list_shards,
    make_loader,
    read_samples,
)
from datagen.trainer.models import ACEDiT, count_params, size_spec
from datagen.trainer.objectives import make_objective, training_loss
from datagen.trainer.preview import write_previews

log = logging.getLogger(__name__)

METRICS_FILE = "metrics.jsonl"
SUMMARY_FILE = "train.json"
TINY_DIR = "tiny_models"
KEYS_DIR = "keys"


def step_generator(seed: int, step: int, rank: int, micro: int) -> torch.Generator:
    """Noise, timesteps and text dropout of one micro-batch: a function of (seed, step, rank, micro), so a
    resumed run draws what an uninterrupted one would have."""
    state = np.random.SeedSequence([seed, step, rank, micro]).generate_state(2)
    return torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))


@dataclass(frozen=True)
class Speed:
    """How the step runs on this device: compiled blocks, the attention kernel of masked batches, fused AdamW."""

    compile: bool
    attention: str
    fused: bool


def resolve_speed(tcfg: TrainerConfig, ocfg: OptimConfig, device: torch.device) -> Speed:
    """`auto` settings for this device: compile and fused AdamW on CUDA only (on CPU compiling a tiny model costs
    more than it saves); flex attention for masked batches only when compiled on CUDA, since uncompiled flex
    attention materialises the scores."""
    cuda = device.type == "cuda"
    compile_ = cuda if tcfg.compile == "auto" else bool(tcfg.compile)
    attention = tcfg.attention
    if attention == "auto":
        attention = "flex" if (cuda and compile_) else "sdpa"
    if attention == "flex" and not cuda:
        raise ConfigError("trainer.attention=flex: flex attention has no backward pass on CPU; use sdpa or auto")
    fused = cuda if ocfg.fused == "auto" else bool(ocfg.fused)
    return Speed(compile_, attention, fused)


def cpu_threads(recipe: TrainRecipe, info: DistInfo) -> int:
    """Intra-op threads on CPU. More threads than free cores make OpenMP spin against the data workers and the
    other ranks (measured: a tiny step 20x slower with 2 threads than with 1 on a busy 2-core machine)."""
    if recipe.trainer.cpu_threads:
        return recipe.trainer.cpu_threads
    if os.environ.get("OMP_NUM_THREADS"):
        return max(1, int(os.environ["OMP_NUM_THREADS"]))
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, cores // (info.world * (1 + recipe.data.num_workers)))


def _tiny_inputs(recipe: TrainRecipe, shards: list, n: int = 32) -> tuple[list[str], torch.Tensor]:
    """Instructions (the tiny tokenizer's corpus) and a few target images (the tiny VAE's scale calibration),
    read from the first shard."""
    from datagen.shards.codec import decode_sample
    from datagen.trainer.buckets import fit_to_bucket, make_buckets, nearest_bucket

    buckets = make_buckets(recipe.data.max_tokens, recipe.data.side_multiple, recipe.data.max_aspect)
    square = nearest_bucket(1, 1, buckets)  # one size, so the calibration images stack
    corpus, images = ["{image} " + " ".join("{image%d}" % i for i in range(1, 10))], []
    for raw in iter_raw(shards[0].url):
        s = decode_sample(raw)
        corpus.extend(t.instruction for t in s.turns)
        corpus.extend(t.caption for t in s.turns if t.caption)
        if len(images) < 8:
            images.append(fit_to_bucket(s.current.target.image, square))
        if len(corpus) > n * 4:
            break
    cal = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float() / 127.5 - 1 if images else None
    return corpus, cal


def _truncate_metrics(path: Path, step: int) -> None:
    """A resumed run continues the log from its checkpoint: rows written after it (by a killed run) go."""
    if not path.exists():
        return
    keep = []
    for line in path.read_text().splitlines():
        if line.strip() and json.loads(line).get("step", 0) <= step:
            keep.append(line)
    paths.atomic_write_bytes(path, ("\n".join(keep) + "\n").encode() if keep else b"")


def _batches(loader: Any) -> Iterator[Batch]:
    while True:
        yield from loader


def train(recipe: TrainRecipe) -> dict[str, Any]:
    info = init_distributed()
    try:
        return _train(recipe, info)
    finally:
        cleanup(info)


def _train(recipe: TrainRecipe, info: DistInfo) -> dict[str, Any]:
    t_start = time.perf_counter()
    out = Path(recipe.output.dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    seed = recipe.train_seed
    device = info.device
    tcfg = recipe.trainer
    bf16 = tcfg.precision == "bf16" or (tcfg.precision == "auto" and device.type == "cuda")
    if device.type == "cpu":
        torch.set_num_threads(cpu_threads(recipe, info))

    shards = list_shards(recipe.data.path)
    held = holdout_keys(shards, recipe.data.holdout, seed)
    tiny_root = out / TINY_DIR
    if TINY_RANDOM in (recipe.vae.path, recipe.text_encoder.path):
        if info.main:
            corpus, cal = _tiny_inputs(recipe, shards)
            prepare_tiny_models(
                tiny_root, corpus, cal, recipe.vae.path == TINY_RANDOM, recipe.text_encoder.path == TINY_RANDOM
            )
        barrier(info)
    codec = load_vae(recipe.vae, device, tiny_root / "vae")
    text_encoder = load_text_encoder(recipe.text_encoder, device, tiny_root / "t5")
    if recipe.data.latents:
        from datagen.trainer.latents import attach_latents

        fingerprint = encoder_fingerprint(recipe.vae, recipe.text_encoder, codec, text_encoder, recipe.data)
        shards, found = attach_latents(shards, fingerprint)
        if info.main:
            log.info(
                "precomputed latents: %d of %d shards (online encoding for the rest; %d with latents of other "
                "encoders or settings, ignored)",
                found["matching"],
                len(shards),
                found["other_encoders"],
            )
    speed = resolve_speed(tcfg, recipe.optim, device)

    spec = size_spec(
        recipe.model.size,
        hidden=recipe.model.hidden,
        depth=recipe.model.depth,
        heads=recipe.model.heads,
        patch=recipe.model.patch,
    )
    if codec.factor * spec["patch"] != recipe.data.side_multiple:
        raise ConfigError(
            f"data.side_multiple={recipe.data.side_multiple} must equal the VAE factor ({codec.factor}) x model.patch "
            f"({spec['patch']}) = {codec.factor * spec['patch']}, so every bucket patchifies exactly"
        )
    torch.manual_seed(seed)
    model = ACEDiT(
        latent_channels=codec.channels,
        text_dim=text_encoder.dim,
        mlp_ratio=recipe.model.mlp_ratio,
        max_inputs=recipe.data.max_inputs,
        grad_checkpointing=recipe.model.grad_checkpointing,
        attention=speed.attention,
        **spec,
    )

    step, resume_data, saved_ema, saved_opt = 0, None, None, None
    last = ckpt.latest_checkpoint(out)
    n_params = count_params(model)
    if last is not None:
        state, weights, saved_ema, saved_opt = ckpt.load_checkpoint(last)
        diffs = locked_differences(state["recipe"], recipe)
        if diffs:
            raise ConfigError(
                f"output.dir={str(out)!r} holds a checkpoint of another model; use a new output.dir, or keep:\n  "
                + "\n  ".join(diffs)
            )
        model.load_state_dict(weights)
        step, resume_data = int(state["step"]), state["data"]
        if info.main:
            log.info(
                "resuming from %s at step %d (data position of %d streams)",
                last,
                step,
                len(resume_data.get("positions", {})),
            )
    if info.main:
        log.info(
            "DiT %s: %.2fM parameters (hidden %d, depth %d, heads %d, patch %d); objective %s, loss on %s frames; "
            "compile %s, masked attention %s, fused AdamW %s",
            recipe.model.size,
            n_params / 1e6,
            spec["hidden"],
            spec["depth"],
            spec["heads"],
            spec["patch"],
            recipe.loss.objective,
            recipe.loss.frames,
            speed.compile,
            speed.attention,
            speed.fused,
        )
        paths.atomic_write_json(out / "train_recipe.json", recipe.to_json())
    if step >= tcfg.max_steps:
        if info.main:
            log.info("checkpoint is at step %d >= trainer.max_steps=%d: nothing to do", step, tcfg.max_steps)
        return {"step": step, "resumed_from": step, "trained_steps": 0, "output": str(out)}

    model.to(device).train()
    if speed.compile:
        model.compile_blocks()
    strategy = resolve_strategy(tcfg.strategy, info)
    wrapped = wrap_model(model, strategy, info, bf16)
    ema = EMA(unwrap(wrapped), tcfg.ema_decay)
    if saved_ema is not None:
        ema.load_full_state(saved_ema)
    optimizer = torch.optim.AdamW(
        [p for p in wrapped.parameters() if p.requires_grad],
        lr=recipe.optim.lr,
        betas=recipe.optim.betas,
        weight_decay=recipe.optim.weight_decay,
        fused=speed.fused,
    )
    if saved_opt is not None:
        ckpt.load_optimizer_state(wrapped, optimizer, saved_opt)
    objective = make_objective(recipe.loss)

    stream = ShardStream(
        recipe.data,
        text_encoder.tokenizer,
        seed,
        info.rank,
        info.world,
        exclude=set(held),
        resume=resume_data,
        shards=shards,
        latent_factor=codec.factor,
    )
    loader = make_loader(stream, recipe.data.num_workers)
    position = LoaderPosition(info.rank, info.world, recipe.data.num_workers, resume_data)
    preview_samples = read_samples(shards, held) if (info.main or strategy == "fsdp") else []

    metrics_path = out / METRICS_FILE
    if info.main:
        _truncate_metrics(metrics_path, step)
    keys_file = None
    if tcfg.record_keys:
        (out / KEYS_DIR).mkdir(exist_ok=True)
        keys_file = open(out / KEYS_DIR / f"rank-{info.rank}.jsonl", "a")

    resumed_from = step

    # the step keeps loss, grad norm and a non-finite flag on the device: the host reads them at log and checkpoint
    # steps only, so it can queue the next step's kernels while the GPU runs this one
    def new_window() -> dict[str, Any]:
        zero = torch.zeros((), device=device)
        counts = {"n": 0, "samples": 0, "tokens": 0, "precomputed": 0, "batches": 0}
        return {"loss": zero, **counts, "t0": time.perf_counter()}

    window = new_window()
    nonfinite = torch.zeros((), dtype=torch.bool, device=device)
    grad_norm_t = torch.zeros((), device=device)
    last_loss = math.nan
    batches = _batches(loader)

    def save(at: int) -> None:
        model_state = ckpt.full_model_state(wrapped if strategy == "fsdp" else unwrap(wrapped))
        ema_state = ema.full_state()
        opt_state = ckpt.full_optimizer_state(wrapped, optimizer)
        data_state = LoaderPosition.merge(all_gather_objects(info, position.state()))
        if info.main:
            ckpt.save_checkpoint(
                out,
                at,
                model_state,
                ema_state,
                opt_state,
                {"recipe": recipe.to_json(), "data": data_state},
                tcfg.keep_checkpoints,
            )
        barrier(info)

    def previews(at: int) -> None:
        if not preview_samples:
            return
        with ema.swapped_in(unwrap(wrapped)) if recipe.preview.use_ema else nullcontext():
            written = write_previews(
                out, at, preview_samples, unwrap(wrapped), objective, codec, text_encoder, recipe, bf16, write=info.main
            )
        if info.main:
            log.info("step %d: %d previews in %s", at, len(written), out / "previews")

    metrics = None
    try:
        metrics = open(metrics_path, "a") if info.main else None
        while step < tcfg.max_steps:
            lr = (
                recipe.optim.lr * min(1.0, (step + 1) / recipe.optim.warmup_steps)
                if recipe.optim.warmup_steps
                else recipe.optim.lr
            )
            for g in optimizer.param_groups:
                g["lr"] = lr
            step_loss, step_keys = torch.zeros((), device=device), []
            for micro in range(tcfg.grad_accum):
                batch = next(batches)
                position.update(batch.meta)
                step_keys.append({"epoch": batch.meta["epoch"], "stream": batch.meta["stream"], "keys": batch.keys})
                batch = batch.to(device)
                sync = micro == tcfg.grad_accum - 1
                ctx = wrapped.no_sync() if (strategy == "ddp" and not sync) else nullcontext()
                if strategy == "fsdp":
                    wrapped.set_requires_gradient_sync(sync)
                with ctx:
                    res = training_loss(
                        wrapped,
                        objective,
                        codec,
                        text_encoder,
                        batch,
                        recipe.loss,
                        step_generator(seed, step, info.rank, micro),
                        spec["patch"],
                        bf16,
                    )
                    (res.loss / tcfg.grad_accum).backward()
                step_loss += res.loss.detach().float() / tcfg.grad_accum
                window["samples"] += res.n_samples
                window["tokens"] += res.n_tokens
                window["batches"] += 1
                window["precomputed"] += int(batch.precomputed)
            if recipe.optim.grad_clip > 0:
                grad_norm_t = torch.nn.utils.clip_grad_norm_(wrapped.parameters(), recipe.optim.grad_clip)
            else:
                grad_norm_t = torch.linalg.vector_norm(
                    torch.stack([p.grad.norm() for p in wrapped.parameters() if p.grad is not None])
                )
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            ema.update(unwrap(wrapped), step)
            nonfinite |= ~torch.isfinite(step_loss)
            if keys_file is not None:
                keys_file.write(json.dumps({"step": step, "batches": step_keys}) + "\n")
                keys_file.flush()
            window["loss"] = window["loss"] + step_loss
            window["n"] += 1
            log_now = step % tcfg.log_every == 0 or step == tcfg.max_steps
            save_now = step % tcfg.ckpt_every == 0 or step == tcfg.max_steps
            if (log_now or save_now) and bool(nonfinite):
                raise FloatingPointError(
                    f"the loss was not finite at a step in ({step - window['n']}, {step}]; lower optim.lr or check "
                    "the data"
                )
            if log_now:
                grad_norm = float(grad_norm_t)
                loss = mean_across(info, float(window["loss"]) / window["n"])
                samples = sum_across(info, window["samples"])
                tokens = sum_across(info, window["tokens"])
                skipped = LoaderPosition.merge(all_gather_objects(info, position.state()))["skipped"]
                dt = time.perf_counter() - window["t0"]
                last_loss = loss
                if info.main:
                    row = {
                        "step": step,
                        "loss": round(loss, 6),
                        "lr": lr,
                        "grad_norm": round(grad_norm, 4),
                        "epoch": position.epoch(),
                        "samples_per_s": round(samples / dt, 3),
                        "tokens_per_s": round(tokens / dt, 1),
                        "skipped": skipped,
                        "precomputed": round(window["precomputed"] / max(window["batches"], 1), 3),
                        "time": round(time.perf_counter() - t_start, 2),
                    }
                    metrics.write(json.dumps(row) + "\n")
                    metrics.flush()
                    log.info(
                        "step %d/%d loss %.4f grad %.3f lr %.2e %.1f samples/s",
                        step,
                        tcfg.max_steps,
                        loss,
                        grad_norm,
                        lr,
                        row["samples_per_s"],
                    )
                window = new_window()
            if save_now:
                save(step)
            if (tcfg.preview_every and step % tcfg.preview_every == 0) or step == tcfg.max_steps:
                previews(step)
    finally:
        if metrics is not None:
            metrics.close()
        if keys_file is not None:
            keys_file.close()
    summary = {
        "step": step,
        "resumed_from": resumed_from,
        "trained_steps": step - resumed_from,
        "final_loss": last_loss,
        "seconds": round(time.perf_counter() - t_start, 2),
        "world": info.world,
        "strategy": strategy,
        "parameters": n_params,
        "output": str(out),
    }
    if info.main:
        paths.atomic_write_json(out / SUMMARY_FILE, summary)
    return summary
