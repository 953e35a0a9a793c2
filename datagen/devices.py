"""Which device a stage may use. The runtime records, in each Ray worker before any model loads, the GPUs Ray
assigned to it; `resolve_device("auto")` then means CUDA only where Ray gave a GPU. Outside Ray (the plain loop,
a notebook, a test) "auto" means CUDA when torch sees one. Operators ask here; they never probe Ray themselves."""

from __future__ import annotations

import logging
import os
import sys
from typing import Optional

log = logging.getLogger(__name__)

# None: not running under the runtime's Ray workers (no assignment known); otherwise the GPU ids Ray assigned.
_ASSIGNED: Optional[list[str]] = None
_WARNED = False  # the "declared but absent" warning is said once per worker


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
    CUDA really is there: a cluster that declares GPUs it does not have (`ray start --num-gpus N` on a CPU machine)
    gets CPU, said once in the log."""
    if _ASSIGNED is not None and not _ASSIGNED:
        return False
    if _cuda_visible():
        return True
    global _WARNED
    if _ASSIGNED and not _WARNED:
        _WARNED = True
        log.warning(
            "Ray assigned GPU %s to this worker but CUDA is not available here; running on CPU", ",".join(_ASSIGNED)
        )
    return False


def resolve_device(requested: str = "auto") -> str:
    """ "auto" -> "cuda" or "cpu" by `has_gpu`; an explicit device is kept, but asking for CUDA in a worker that
    Ray gave no GPU is an error (it would share a GPU nobody reserved)."""
    if requested == "auto":
        return "cuda" if has_gpu() else "cpu"
    if requested.startswith("cuda") and _ASSIGNED is not None and not _ASSIGNED:
        raise RuntimeError(
            f"device={requested!r} but Ray assigned this worker no GPU; set the operator's num_gpus (e.g. 1 or 0.25) "
            "or use device: auto"
        )
    return requested
