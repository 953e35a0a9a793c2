"""Models loaded once per worker process. On the CPU a small model (an ONNX session, a MobileNet, a .tflite
interpreter) runs inside the partition's Ray task rather than in an actor pool that would hold a CPU of its own;
each task calls the operator's `setup`, and this cache makes every call after a process's first one free."""

from __future__ import annotations

from collections import OrderedDict
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


class ItemCache:
    """A bounded per-process memo, least recently used out first: what several stages compute from the same photo
    in one worker (object proposals, a foreground matte, superpixels) is computed once."""

    def __init__(self, size: int = 64):
        self.size = size
        self._d: OrderedDict[Hashable, Any] = OrderedDict()

    def __len__(self) -> int:
        return len(self._d)

    def get(self, key: Hashable, make: Callable[[], Any]) -> Any:
        if key in self._d:
            self._d.move_to_end(key)
            return self._d[key]
        value = make()
        self._d[key] = value
        if len(self._d) > self.size:
            self._d.popitem(last=False)
        return value
