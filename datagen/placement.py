"""Where an operator runs and in what batches: the one config block (device, GPUs, CPUs, batch size, pool) every
operator config with a model takes, with one meaning of its defaults, and the one function that makes Resources."""

from __future__ import annotations

from typing import Literal, Optional

from pydantic import Field

from datagen.config import Section
from datagen.operator import Resources


class Batching(Section):
    """The batch size of an operator that only ever runs on the CPU (no device to choose)."""

    batch_size: int = Field(16, ge=1, description="images or samples per call inside a partition")


class EncoderSpeed(Section):
    """How a fixed-shape image encoder (SigLIP, CLIP, DINOv2) runs on a GPU: preprocessing on the device, compiled,
    which attention kernel. Execution keys: none of them changes a sample (datagen.config.EXECUTION_KEYS)."""

    preprocess_on_device: Optional[bool] = Field(
        None,
        description="resize and normalise on the model's device as tensors (None: on a GPU; on the CPU the model's "
        "own PIL transform or processor, whose pixels the tensor path matches to within one 8-bit level)",
    )
    compile: Optional[bool] = Field(
        None, description="torch.compile the image model for one batch shape (None: on CUDA, off on the CPU)"
    )
    attention: Literal["auto", "flash", "efficient", "cudnn", "math"] = Field(
        "auto", description="the SDPA kernel on CUDA (auto: flash, else memory-efficient); logged at setup"
    )


class Placement(Batching):
    """Where a model operator runs. Recipes set these keys flat in the operator's section (`operators.X.num_gpus: 1`);
    none of them is part of a sample key (datagen.config.EXECUTION_KEYS). The defaults mean:
    - device `auto`: CUDA only where Ray assigned this worker a GPU, else the CPU; `cpu` never asks for a GPU.
    - num_gpus `None`: one GPU per actor wherever the cluster has GPUs, none where it has none (the runtime decides
      from the cluster; the operator never probes). A number is the recipe's own share per actor, 0 for never.
      Until issue 21 the conditions, edits and scorers defaulted to 0 (their models ran on the CPU even on a GPU
      cluster unless the recipe set num_gpus) while the feature encoders defaulted to None; a model on a GPU
      cluster now uses a GPU unless the recipe says otherwise, and recipes still size fractional shares.
    - num_cpus 1 per worker; concurrency `None`: as many actors as the cluster holds.
    An operator whose chosen implementation cannot use a GPU (a classical backend, a CPU-only runtime) asks for none
    whatever these say."""

    device: str = Field("auto", description="auto (CUDA only where Ray assigned this worker a GPU), cpu, cuda, cuda:N")
    num_gpus: Optional[float] = Field(
        None, ge=0, description="GPUs per actor; None: one where the cluster has GPUs; 0: never"
    )
    num_cpus: float = Field(1.0, gt=0, description="CPUs per worker")
    concurrency: Optional[int] = Field(
        None, ge=1, description="most actors in the pool (None: as many as the cluster holds)"
    )

    def wants_gpu(self) -> bool:
        """Whether this placement may take a GPU on a cluster that has one."""
        return self.device != "cpu" and self.num_gpus != 0


def resources(config: Batching, uses_gpu: bool = True) -> Resources:
    """The Resources of an operator placed by `config`; `uses_gpu=False` for an implementation that cannot use one."""
    if not isinstance(config, Placement):
        return Resources(batch_size=config.batch_size)
    gpus: dict[str, float] = {"num_gpus": 0.0}
    if uses_gpu and config.wants_gpu():
        gpus = {"num_gpus": float(config.num_gpus)} if config.num_gpus is not None else {"gpus_if_available": 1.0}
    return Resources(num_cpus=config.num_cpus, batch_size=config.batch_size, concurrency=config.concurrency, **gpus)
