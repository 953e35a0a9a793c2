"""Exponential moving average of the DiT's weights, kept in fp32 beside the trained ones (sharded alike under
FSDP). Previews sample with it; checkpoints save it whole."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch


class EMA:
    def __init__(self, model: torch.nn.Module, decay: float):
        self.decay = decay
        self.names = [n for n, p in model.named_parameters() if p.requires_grad]
        self.shadow = [p.detach().float().clone() for n, p in model.named_parameters() if p.requires_grad]

    def _params(self, model: torch.nn.Module) -> list[torch.Tensor]:
        named = dict(model.named_parameters())
        return [named[n] for n in self.names]

    @torch.no_grad()
    def update(self, model: torch.nn.Module, step: int) -> None:
        # warm-up as in DiT implementations: early steps follow the weights closely
        d = min(self.decay, (1 + step) / (10 + step))
        params = [p.detach().float() for p in self._params(model)]
        torch._foreach_lerp_(self.shadow, params, 1.0 - d)

    @contextmanager
    @torch.no_grad()
    def swapped_in(self, model: torch.nn.Module) -> Iterator[None]:
        """Run the model with EMA weights inside the block; the trained weights come back after."""
        params = self._params(model)
        saved = [p.detach().clone() for p in params]
        for p, s in zip(params, self.shadow):
            p.copy_(s.to(p.dtype))
        try:
            yield
        finally:
            for p, s in zip(params, saved):
                p.copy_(s)

    def full_state(self) -> dict[str, torch.Tensor]:
        """name -> full fp32 tensor (a collective under FSDP: every rank must call it)."""
        out = {}
        for n, s in zip(self.names, self.shadow):
            full = s.full_tensor() if hasattr(s, "full_tensor") else s
            out[n] = full.detach().cpu()
        return out

    @torch.no_grad()
    def load_full_state(self, state: dict[str, torch.Tensor]) -> None:
        missing = [n for n in self.names if n not in state]
        if missing:
            raise KeyError(f"EMA state lacks {len(missing)} parameters, e.g. {missing[:3]}")
        for i, (n, s) in enumerate(zip(self.names, self.shadow)):
            full = state[n].float()
            if hasattr(s, "device_mesh"):
                from torch.distributed.tensor import distribute_tensor

                self.shadow[i] = distribute_tensor(full.to(s.device), s.device_mesh, s.placements)
            else:
                s.copy_(full.to(s.device))
