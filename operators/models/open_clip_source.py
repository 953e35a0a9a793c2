"""Where open_clip weights come from: a recipe's `pretrained` is a hub id (hf-hub:ORG/REPO), a local folder
(local-dir:PATH), a checkpoint file or an open_clip tag; SigLIP features and CLIP scores read it the same way."""

from __future__ import annotations

import os
from typing import Optional

LOCAL_DIR = "local-dir:"
SCHEMAS = ("hf-hub:", LOCAL_DIR)  # open_clip reads the architecture from these, so the model name is not passed


def resolve_source(
    model: str, pretrained: str, file_preprocess: Optional[dict] = None
) -> tuple[str, Optional[str], Optional[dict]]:
    """(open_clip model_name, pretrained argument, forced preprocessing) for create_model. A checkpoint file carries
    no preprocessing: it gets `file_preprocess` where the caller knows the family's (None: open_clip's default for
    `model`)."""
    if pretrained.startswith(SCHEMAS):
        return pretrained, None, None
    if file_preprocess is not None and os.path.isfile(pretrained):
        return model, pretrained, dict(file_preprocess)
    return model, pretrained, None  # a checkpoint file, or an open_clip tag (resolved through its hub cache)


def missing_local_dir(key: str, pretrained: str) -> Optional[str]:
    """Why a local-dir: source cannot load (its folder is missing), for unavailable_reason; None otherwise."""
    if pretrained.startswith(LOCAL_DIR) and not os.path.isdir(pretrained[len(LOCAL_DIR) :]):
        return f"{key}={pretrained!r}: no such folder"
    return None
