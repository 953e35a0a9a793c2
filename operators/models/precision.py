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


ATTENTION_BACKENDS = {
    "flash": ("FLASH_ATTENTION",),
    "efficient": ("EFFICIENT_ATTENTION",),
    "cudnn": ("CUDNN_ATTENTION",),
    "math": ("MATH",),
    # flash first, memory-efficient where flash cannot run (head dims flash lacks, fp32)
    "auto": ("FLASH_ATTENTION", "EFFICIENT_ATTENTION"),
}


def attention_backends(choice: str, device: str) -> list[Any]:
    """The SDPA kernels a recipe's `attention` allows on `device`: on CUDA auto is flash, then memory-efficient
    (never the math kernel, which materialises the attention matrix); on the CPU every choice is the CPU kernel."""
    from torch.nn.attention import SDPBackend

    if device != "cuda":
        return []
    return [getattr(SDPBackend, n) for n in ATTENTION_BACKENDS[choice]]


def attention_context(backends: list[Any]) -> Any:
    """A context in which scaled_dot_product_attention uses only `backends` (none: torch's own choice)."""
    import contextlib

    if not backends:
        return contextlib.nullcontext()
    from torch.nn.attention import sdpa_kernel

    return sdpa_kernel(backends)


def resolve_compile(compile: bool | None, device: str) -> bool:
    """A recipe's `compile` (None: on for CUDA, off on the CPU, where compiling costs more than it saves)."""
    return device == "cuda" if compile is None else bool(compile)


def compile_fixed_shape(module: Any, backend: str = "inductor") -> Any:
    """`module` compiled for one input shape (the caller pads its last batch to the batch size, so there is one
    graph and no recompile); `backend` "eager" traces without code generation (the CPU tests)."""
    import torch

    return torch.compile(module, dynamic=False, backend=backend)
