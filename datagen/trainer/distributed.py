"""One process per GPU through torchrun: the process group (NCCL on GPU, gloo on CPU), the device, and the
wrapping of the DiT in DDP or, for the big configs, FSDP (fully_shard per block, bf16 params, fp32 reduce)."""

from __future__ import annotations

import datetime
import logging
import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistInfo:
    rank: int
    world: int
    local_rank: int
    device: torch.device

    @property
    def main(self) -> bool:
        return self.rank == 0


def init_distributed() -> DistInfo:
    """Join the process group when launched by torchrun (WORLD_SIZE > 1); otherwise one process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    cuda = torch.cuda.is_available()
    device = torch.device("cuda", local) if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(device)
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if cuda else "gloo"
        dist.init_process_group(backend, timeout=datetime.timedelta(minutes=30), device_id=device if cuda else None)
        log.info("rank %d/%d joined the %s process group on %s", rank, world, backend, device)
    return DistInfo(rank, world, local, device)


def barrier(info: DistInfo) -> None:
    if info.world > 1:
        dist.barrier()


def all_gather_objects(info: DistInfo, obj: Any) -> list[Any]:
    if info.world == 1:
        return [obj]
    out: list[Any] = [None] * info.world
    dist.all_gather_object(out, obj)
    return out


def mean_across(info: DistInfo, value: float) -> float:
    if info.world == 1:
        return value
    t = torch.tensor([value], dtype=torch.float64, device=info.device)
    dist.all_reduce(t)
    return float(t.item()) / info.world


def sum_across(info: DistInfo, value: float) -> float:
    if info.world == 1:
        return value
    t = torch.tensor([value], dtype=torch.float64, device=info.device)
    dist.all_reduce(t)
    return float(t.item())


def resolve_strategy(choice: str, info: DistInfo) -> str:
    if choice == "auto":
        return "ddp" if info.world > 1 else "none"
    if info.world == 1:
        return "none" if choice == "ddp" else choice  # FSDP of one process still shards nothing, but runs
    return choice


def wrap_model(model: torch.nn.Module, strategy: str, info: DistInfo, bf16: bool) -> torch.nn.Module:
    if strategy == "none":
        return model
    if strategy == "ddp":
        from torch.nn.parallel import DistributedDataParallel as DDP

        ids = [info.device.index] if info.device.type == "cuda" else None
        return DDP(model, device_ids=ids)
    if strategy == "fsdp":
        if not dist.is_initialized():
            raise RuntimeError("trainer.strategy=fsdp needs torchrun (a process group)")
        from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

        mp = (
            MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32)
            if bf16
            else MixedPrecisionPolicy()
        )
        for block in model.blocks:
            fully_shard(block, mp_policy=mp)
        fully_shard(model, mp_policy=mp)
        return model
    raise ValueError(f"unknown strategy {strategy!r}")


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    return model.module if hasattr(model, "module") else model


def cleanup(info: DistInfo) -> None:
    if info.world > 1 and dist.is_initialized():
        dist.destroy_process_group()
