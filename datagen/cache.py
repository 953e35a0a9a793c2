"""datagen's cache folder: derived files that are costly to make and safe to remake (ONNX exports of shipped
checkpoints, digests of large files). DATAGEN_CACHE_DIR, else XDG_CACHE_HOME/datagen, else ~/.cache/datagen."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def cache_root() -> Path:
    env = os.environ.get("DATAGEN_CACHE_DIR")
    if env:
        return Path(env)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "datagen"


@contextmanager
def locked(folder: Path) -> Iterator[Path]:
    """`folder`, created, held under an exclusive lock: concurrent workers that would make the same file wait for
    the first one instead of making it again."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield folder
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
