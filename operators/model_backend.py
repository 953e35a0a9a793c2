"""What the model-backed condition operators share: the config keys that pick a classical algorithm or a local
checkpoint, the device, the GPU share of an actor, and loading a torch state dict without unpickling code."""
from __future__ import annotations

import os
from typing import Any, Literal, Optional

from pydantic import Field, model_validator

from datagen.devices import resolve_device  # noqa: F401  (the condition operators resolve "auto" through it)
from datagen.operator import Resources
from operators.condition import ConditionConfig

# Keys that say how to run, not what to make: left out of provenance so a CPU rerun keeps the sample keys.
EXECUTION_KEYS = {"enabled", "device", "num_gpus", "batch_size"}


class ModelConditionConfig(ConditionConfig):
    """A condition with a model path and, unless the operator says otherwise, a classical default."""

    backend: Literal["classical", "model"] = Field("classical", description="classical: embedded algorithm; model: load `checkpoint`")
    checkpoint: Optional[str] = Field(None, description="local path (or hub id where the loader takes one) of the model weights")
    device: str = Field("auto", description="auto (CUDA only where Ray assigned this worker a GPU), cpu, cuda, cuda:N")
    num_gpus: float = Field(0.0, ge=0, description="GPUs per actor when the model runs (cluster recipes set e.g. 0.25)")
    batch_size: int = Field(8, ge=1, description="images per model call")

    @model_validator(mode="after")
    def _model_needs_checkpoint(self):
        if self.backend == "model" and not self.checkpoint:
            raise ValueError("backend=model needs `checkpoint` (a local path to the weights)")
        return self


class ModelOnlyConfig(ConditionConfig):
    """A condition that exists only as a model: without a checkpoint the operator is off."""

    checkpoint: Optional[str] = Field(None, description="local path or hub id of the model; unset means this condition is OFF")
    device: str = Field("auto", description="auto (CUDA only where Ray assigned this worker a GPU), cpu, cuda, cuda:N")
    num_gpus: float = Field(0.0, ge=0, description="GPUs per actor (cluster recipes set e.g. 0.25)")
    batch_size: int = Field(4, ge=1, description="images per model call")


def uses_model(config: Any) -> bool:
    return getattr(config, "backend", "model") == "model"


def model_resources(config: Any) -> Resources:
    if not uses_model(config):
        return Resources(batch_size=16)
    return Resources(num_cpus=1.0, num_gpus=float(config.num_gpus), batch_size=int(config.batch_size))


def provenance_params(config: Any) -> dict[str, Any]:
    return config.model_dump(mode="json", exclude=EXECUTION_KEYS)


def require_file(path: str, what: str) -> str:
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{what} checkpoint {path!r} does not exist (set the operator's `checkpoint` to a local file)")
    return path


def load_state_dict(path: str, what: str) -> dict[str, Any]:
    """A torch checkpoint as a plain state dict. weights_only refuses pickled code; a wrapping {'state_dict': ...}
    or {'model': ...} and DataParallel's 'module.' prefixes are unwrapped."""
    import torch

    sd = torch.load(require_file(path, what), map_location="cpu", weights_only=True)
    for key in ("state_dict", "model", "params"):
        if isinstance(sd, dict) and key in sd and isinstance(sd[key], dict):
            sd = sd[key]
    if not isinstance(sd, dict):
        raise ValueError(f"{what} checkpoint {path!r} is not a state dict")
    return {(k[len("module."):] if k.startswith("module.") else k): v for k, v in sd.items()}
