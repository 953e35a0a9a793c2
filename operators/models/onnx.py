"""ONNX Runtime for every family: which execution provider a device gets, one way to build a session (logging the
provider onnxruntime actually chose), and the cached export of a torch model to ONNX that workers load without torch."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Callable, Optional

from datagen.devices import resolve_device

log = logging.getLogger(__name__)

CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"


def providers(device: str) -> list[str]:
    """Execution providers, best first: CUDA only where Ray assigned a GPU (datagen.devices) and onnxruntime has
    the CUDA provider (onnxruntime-gpu); the CPU always."""
    from datagen.optional import require

    ort = require("onnxruntime")
    if resolve_device(device).startswith("cuda") and CUDA in ort.get_available_providers():
        return [CUDA, CPU]
    return [CPU]


def onnx_device(device: str) -> str:
    """The device string for libraries that take one (rtmlib): the resolved device, but cpu for CUDA where
    onnxruntime has no CUDA provider."""
    device = resolve_device(device)
    return "cpu" if device.startswith("cuda") and providers(device)[0] != CUDA else device


def session_provider(session: Any) -> str:
    """The provider a session runs on: onnxruntime falls back to the CPU when CUDA fails to initialise."""
    return session.get_providers()[0]


def onnx_session(path: str | Path, device: str = "cpu", threads: int = 1, name: str = "onnx") -> Any:
    """An InferenceSession of the file at `path` on `device` (see providers) with `threads` intra-op threads and one
    inter-op thread (the graph runs sequentially); logs the provider it actually runs on (session_provider)."""
    from datagen.optional import require

    ort = require("onnxruntime")
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = max(1, threads)
    opts.inter_op_num_threads = 1
    session = ort.InferenceSession(str(path), sess_options=opts, providers=providers(device))
    log.info("%s: %s on %s", name, path, session_provider(session))
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
