"""ONNX Runtime for every family: which execution provider a device gets, one way to build a session (checking the
provider onnxruntime actually chose), and the cached export of a torch model to ONNX that workers load without torch.
A GPU-placed session that lands on the CPU provider is a CPU fallback (datagen.devices.cpu_fallback): an error
unless the recipe allows it."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Callable, Optional

from datagen.devices import cpu_fallback, resolve_device

log = logging.getLogger(__name__)

CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"


def providers(device: str) -> list[str]:
    """Execution providers, best first: CUDA only where Ray assigned a GPU (datagen.devices) and onnxruntime has
    the CUDA provider (onnxruntime-gpu); the CPU always."""
    from datagen.optional import require

    ort = require("onnxruntime")
    if resolve_device(device).startswith("cuda"):
        if CUDA in ort.get_available_providers():
            return [CUDA, CPU]
        cpu_fallback(f"onnxruntime has no {CUDA} (install onnxruntime-gpu on the GPU workers)")
    return [CPU]


def onnx_device(device: str) -> str:
    """The device string for libraries that take one (rtmlib): the resolved device, but cpu for CUDA where
    onnxruntime has no CUDA provider."""
    device = resolve_device(device)
    return "cpu" if device.startswith("cuda") and providers(device)[0] != CUDA else device


def session_provider(session: Any) -> str:
    """The provider a session runs on: onnxruntime falls back to the CPU when CUDA fails to initialise."""
    return session.get_providers()[0]


def check_provider(session: Any, asked: list[str], name: str) -> str:
    """The provider `session` runs on; a session that asked for CUDA and got the CPU (onnxruntime only prints it)
    is a CPU fallback."""
    used = session_provider(session)
    if asked and asked[0] == CUDA and used != CUDA:
        cpu_fallback(f"{name}: onnxruntime asked for {CUDA} but the session runs on {used}")
    return used


def onnx_session(path: str | Path, device: str = "cpu", threads: int = 1, name: str = "onnx") -> Any:
    """An InferenceSession of the file at `path` on `device` (see providers) with `threads` intra-op threads and one
    inter-op thread (the graph runs sequentially); logs the provider it actually runs on (session_provider)."""
    from datagen.optional import require

    ort = require("onnxruntime")
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = max(1, threads)
    opts.inter_op_num_threads = 1
    asked = providers(device)
    session = ort.InferenceSession(str(path), sess_options=opts, providers=asked)
    log.info("%s: %s on %s", name, path, check_provider(session, asked, name))
    return session


def cached_export(
    folder: Path,
    export: Callable[[Path], None],
    check: Optional[Callable[[Path], None]] = None,
    what: str = "model",
    name: str = "model.onnx",
) -> Path:
    """`folder/name`, made on first use: `export(tmp)` writes the graph, `check(tmp)` raises if it computes something
    else than the source model. Concurrent workers wait on the folder's lock (datagen.cache.locked) and the file
    appears under its final name only when complete and checked. `folder` is keyed by the weights' hash, so new
    weights get a new export."""
    from datagen.cache import locked

    final = folder / name
    if final.exists():
        return final
    with locked(folder):
        if not final.exists():
            tmp = folder / f"{name}.tmp"
            log.info("exporting %s to ONNX (once; cached in %s)", what, folder)
            export(tmp)
            if check is not None:
                check(tmp)
            os.replace(tmp, final)
    return final
