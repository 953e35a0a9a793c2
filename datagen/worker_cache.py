"""Models loaded once per worker process. On the CPU a small model (an ONNX session, a MobileNet, a .tflite
interpreter) runs inside the partition's Ray task rather than in an actor pool that would hold a CPU of its own;
each task calls the operator's `setup`, and this cache makes every call after a process's first one free."""
from __future__ import annotations

from typing import Any, Callable, Hashable

_LOADED: dict[Hashable, Any] = {}


def per_process(key: Hashable, load: Callable[[], Any]) -> Any:
    """`load()` the first time this process asks for `key`; the same object after."""
    if key not in _LOADED:
        _LOADED[key] = load()
    return _LOADED[key]


def clear() -> None:
    """Forget every loaded model (tests that count loads)."""
    _LOADED.clear()
