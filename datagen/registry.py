"""Operator registry: operator modules register their classes by name; recipes refer to them by that name.
Modules under `operators/` and `pipelines/` are discovered on first use, so adding an operator touches one file."""
from __future__ import annotations

import importlib
import logging
import pkgutil
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from datagen.operator import Operator

log = logging.getLogger(__name__)

_OPERATORS: dict[str, type["Operator"]] = {}
_DISCOVERED = False
DISCOVER_PACKAGES = ("operators", "pipelines")


def register(cls: type["Operator"]) -> type["Operator"]:
    """Class decorator: make an operator available to recipes under `cls.name`."""
    name = getattr(cls, "name", None)
    if not name:
        raise ValueError(f"{cls.__qualname__} needs a class attribute `name`")
    if name in _OPERATORS and _OPERATORS[name] is not cls:
        raise ValueError(f"operator name {name!r} is used by {_OPERATORS[name].__qualname__} already")
    _OPERATORS[name] = cls
    return cls


def discover() -> None:
    global _DISCOVERED
    if _DISCOVERED:
        return
    _DISCOVERED = True
    for pkg_name in DISCOVER_PACKAGES:
        pkg = importlib.import_module(pkg_name)
        for mod in pkgutil.walk_packages(pkg.__path__, prefix=pkg_name + "."):
            importlib.import_module(mod.name)


def operator_names() -> list[str]:
    discover()
    return sorted(_OPERATORS)


def get_operator(name: str) -> type["Operator"]:
    discover()
    try:
        return _OPERATORS[name]
    except KeyError:
        raise KeyError(f"unknown operator {name!r}; known: {', '.join(sorted(_OPERATORS))}") from None
