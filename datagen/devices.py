"""Which device a stage may use. The runtime records, in each Ray worker before any model loads, the GPUs Ray
assigned to it; `resolve_device("auto")` then means CUDA only where Ray gave a GPU. Outside Ray (the plain loop,
a notebook, a test) "auto" means CUDA when torch sees one. Operators ask here; they never probe Ray themselves.
A stage given a GPU that would run on the CPU is an error (CPUFallbackError) unless the recipe allows it
(runtime.allow_cpu_fallback); then it is a named fallback, counted per partition under run.json's `fallbacks`."""

from __future__ import annotations

import logging
import os
import sys
from contextlib import contextmanager
from typing import Iterator, Optional

log = logging.getLogger(__name__)

# None: not running under the runtime's Ray workers (no assignment known); otherwise the GPU ids Ray assigned.
_ASSIGNED: Optional[list[str]] = None
_ALLOW_CPU_FALLBACK = False  # runtime.allow_cpu_fallback, set by the runtime in every worker
_STAGE = ""  # the stage whose setup or process runs now: fallbacks are counted against it
_FALLBACKS: dict[str, str] = {}  # stage -> why it runs on the CPU although it was given a GPU (this process)


class CPUFallbackError(RuntimeError):
    """A stage placed on a GPU would run on the CPU, and the recipe does not allow it."""


def allow_cpu_fallback(allowed: bool) -> None:
    """Called by the runtime in every worker (and in the plain loop) with the recipe's runtime.allow_cpu_fallback."""
    global _ALLOW_CPU_FALLBACK
    _ALLOW_CPU_FALLBACK = bool(allowed)


@contextmanager
def stage(name: str) -> Iterator[None]:
    """Within it, a CPU fallback is counted against stage `name` (the runtime wraps each stage's setup and work)."""
    global _STAGE
    before, _STAGE = _STAGE, name
    try:
        yield
    finally:
        _STAGE = before


def cpu_fallback(why: str) -> None:
    """Something placed on a GPU is about to run on the CPU because of `why`: an error unless the recipe allows it,
    then said once in the log and remembered (see `fallbacks`). A stage whose device says `cpu` never gets here."""
    where = _STAGE or "a stage"
    if not _ALLOW_CPU_FALLBACK:
        raise CPUFallbackError(
            f"{where}: placed on a GPU but would run on the CPU: {why}. Fix the worker (CUDA, onnxruntime-gpu), set "
            f"the operator's device: cpu, or runtime.allow_cpu_fallback=true to allow it"
        )
    if _FALLBACKS.get(where) != why:
        log.warning("%s: placed on a GPU but runs on the CPU (runtime.allow_cpu_fallback): %s", where, why)
    _FALLBACKS[where] = why


def fallbacks() -> dict[str, str]:
    """stage -> why it runs on the CPU in this process although it was given a GPU."""
    return dict(_FALLBACKS)


def assign_gpus(gpu_ids: list) -> None:
    """Called by the runtime inside a worker before `setup`. A worker without GPUs also hides every GPU from CUDA
    (Ray leaves CUDA_VISIBLE_DEVICES alone for workers that asked for none), so no library lands on GPU 0 unreserved."""
    global _ASSIGNED
    _ASSIGNED = [str(g) for g in gpu_ids]
    if not _ASSIGNED:
        os.environ["CUDA_VISIBLE_DEVICES"] = ""


def assigned_gpus() -> Optional[list[str]]:
    """The GPU ids Ray assigned to this worker, or None when not running in a runtime worker."""
    return None if _ASSIGNED is None else list(_ASSIGNED)


# what a machine with a GPU driver has (NVIDIA, WSL, AMD ROCm); without any, torch cannot see a GPU either
_GPU_NODES = ("/proc/driver/nvidia", "/dev/nvidiactl", "/dev/dxg", "/dev/kfd")


def _cuda_visible() -> bool:
    if os.environ.get("CUDA_VISIBLE_DEVICES", None) in ("", "-1"):
        return False
    if "torch" not in sys.modules and not any(os.path.exists(p) for p in _GPU_NODES):
        return False  # no GPU driver: answered without importing torch (seconds in every fresh worker)
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def has_gpu() -> bool:
    """May this process use a GPU? Only where Ray assigned one (when running under the runtime's Ray workers) and
    CUDA really is there. A worker given GPUs it cannot use (`ray start --num-gpus N` on a CPU machine, a broken
    driver) is a CPU fallback: an error unless the recipe allows it (`cpu_fallback`)."""
    if _ASSIGNED is not None and not _ASSIGNED:
        return False
    if _cuda_visible():
        return True
    if _ASSIGNED:
        cpu_fallback(f"Ray assigned GPU {','.join(_ASSIGNED)} but CUDA is not available on this worker")
    return False


def resolve_device(requested: str = "auto") -> str:
    """ "auto" -> "cuda" or "cpu" by `has_gpu` (a GPU-placed worker without CUDA: see `cpu_fallback`); "cpu" is
    kept; asking for CUDA in a worker that Ray gave no GPU is an error (it would share a GPU nobody reserved)."""
    if requested == "auto":
        return "cuda" if has_gpu() else "cpu"
    if requested.startswith("cuda") and _ASSIGNED is not None and not _ASSIGNED:
        raise RuntimeError(
            f"device={requested!r} but Ray assigned this worker no GPU; set the operator's num_gpus (e.g. 1 or 0.25) "
            "or use device: auto"
        )
    return requested
