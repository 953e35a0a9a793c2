"""Checkpoints under OUTPUT/checkpoints/step-NNNNNN/: model and EMA weights (safetensors, full fp32), optimiser
state, and state.json (step, recipe, every data stream's position). A checkpoint is written under a temporary
name and renamed; latest.json, written last, names the newest complete one."""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from datagen import paths

log = logging.getLogger(__name__)

CHECKPOINT_DIR = "checkpoints"
LATEST_FILE = "latest.json"
MODEL_FILE = "model.safetensors"
EMA_FILE = "ema.safetensors"
OPTIMIZER_FILE = "optimizer.pt"
STATE_FILE = "state.json"


def step_name(step: int) -> str:
    return f"step-{step:06d}"


def checkpoint_root(out: Path) -> Path:
    return out / CHECKPOINT_DIR


def latest_checkpoint(out: Path) -> Path | None:
    p = checkpoint_root(out) / LATEST_FILE
    if not p.exists():
        return None
    d = checkpoint_root(out) / json.loads(p.read_text())["dir"]
    if not (d / STATE_FILE).exists():
        raise FileNotFoundError(f"{p} names {d}, which is not a complete checkpoint")
    return d


def _is_fsdp(model: torch.nn.Module) -> bool:
    return any(hasattr(p, "device_mesh") for p in model.parameters())


def full_model_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Full fp32 CPU tensors (a collective under FSDP)."""
    if _is_fsdp(model):
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

        sd = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    else:
        sd = model.state_dict()
    return {k: v.detach().float().cpu().contiguous() for k, v in sd.items()}


def full_optimizer_state(model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    if _is_fsdp(model):
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

        return get_optimizer_state_dict(
            model, optimizer, options=StateDictOptions(full_state_dict=True, cpu_offload=True)
        )
    return optimizer.state_dict()


def load_optimizer_state(model: torch.nn.Module, optimizer: torch.optim.Optimizer, state: dict[str, Any]) -> None:
    if _is_fsdp(model):
        from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

        set_optimizer_state_dict(model, optimizer, state, options=StateDictOptions(full_state_dict=True))
    else:
        optimizer.load_state_dict(state)


def save_checkpoint(
    out: Path,
    step: int,
    model_state: dict[str, torch.Tensor],
    ema_state: dict[str, torch.Tensor],
    optimizer_state: dict[str, Any],
    state: dict[str, Any],
    keep: int,
) -> Path:
    """Write (rank 0 only) and prune older checkpoints beyond `keep`."""
    root = checkpoint_root(out)
    final = root / step_name(step)
    tmp = root / f"{step_name(step)}{paths.TMP_MARK}{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    save_file(model_state, str(tmp / MODEL_FILE))
    save_file(ema_state, str(tmp / EMA_FILE))
    torch.save(optimizer_state, tmp / OPTIMIZER_FILE)
    paths.atomic_write_json(tmp / STATE_FILE, {**state, "step": step})
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    paths.atomic_write_json(root / LATEST_FILE, {"dir": final.name, "step": step})
    done = sorted(d for d in root.glob("step-*") if d.is_dir() and paths.TMP_MARK not in d.name)
    for old in done[:-keep]:
        shutil.rmtree(old)
    for stale in root.glob(f"step-*{paths.TMP_MARK}*"):
        shutil.rmtree(stale, ignore_errors=True)
    log.info("checkpoint %s", final)
    return final


def load_checkpoint(d: Path) -> tuple[dict[str, Any], dict[str, torch.Tensor], dict[str, torch.Tensor], dict[str, Any]]:
    """(state, model weights, EMA weights, optimiser state). The optimiser file holds only tensors and plain
    containers, so it loads with weights_only=True (no arbitrary unpickling)."""
    state = json.loads((d / STATE_FILE).read_text())
    model = load_file(str(d / MODEL_FILE))
    ema = load_file(str(d / EMA_FILE))
    opt = torch.load(d / OPTIMIZER_FILE, map_location="cpu", weights_only=True)
    return state, model, ema, opt
