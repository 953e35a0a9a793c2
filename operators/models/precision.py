"""A recipe's `precision` (auto, fp32, fp16, bf16) as the torch dtype a model runs in: auto is bf16 on a GPU and
fp32 on the CPU, for every model that offers the choice."""

from __future__ import annotations

from typing import Any


def resolve_precision(precision: str, device: str) -> str:
    """auto -> bf16 on cuda, fp32 elsewhere; any other value as given."""
    if precision != "auto":
        return precision
    return "bf16" if device == "cuda" else "fp32"


def torch_dtype(precision: str, device: str) -> Any:
    """The torch dtype of `precision` (auto resolved for `device`)."""
    import torch

    return {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[resolve_precision(precision, device)]
