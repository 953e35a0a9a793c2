"""Loading model weights from local files: a torch checkpoint as a plain state dict, never unpickling code."""

from __future__ import annotations

import os
from typing import Any


def require_file(path: str, what: str) -> str:
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"{what} checkpoint {path!r} does not exist (set the operator's `checkpoint` to a local file)"
        )
    return path


def load_state_dict(path: str, what: str) -> dict[str, Any]:
    """A torch checkpoint as a plain state dict. weights_only refuses pickled code; a wrapping {'state_dict': ...}
    or {'model': ...} and DataParallel's 'module.' prefixes are unwrapped."""
    import torch

    sd = torch.load(require_file(path, what), map_location="cpu", weights_only=True)
    for key in ("state_dict", "model", "params"):
        if isinstance(sd, dict) and key in sd and isinstance(sd[key], dict):
            sd = sd[key]
    if not isinstance(sd, dict):
        raise ValueError(f"{what} checkpoint {path!r} is not a state dict")
    return {(k[len("module.") :] if k.startswith("module.") else k): v for k, v in sd.items()}
