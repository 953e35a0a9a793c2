"""Training objectives: ACE++'s flow matching (x_t = (1-t)*x_0 + t*noise, target noise - x_0, shifted
logit-normal t) and ACE's DDPM eps-prediction, plus the one training step that turns a Batch into a loss."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from datagen.trainer.config import LossConfig
from datagen.trainer.encoders import LatentCodec, TextEncoder
from datagen.trainer.examples import Batch


def shift_time(t: torch.Tensor, shift: float) -> torch.Tensor:
    """SD3's resolution shift: t' = s*t / (1 + (s-1)*t); s > 1 moves time towards the noise end."""
    if shift == 1.0:
        return t
    return shift * t / (1 + (shift - 1) * t)


class FlowMatching:
    """Rectified flow: x_t = (1-t)*x_0 + t*noise, velocity target noise - x_0; t ~ shift(sigmoid(N(m, s)))."""

    name = "flow"

    def __init__(self, cfg: LossConfig):
        self.cfg = cfg

    def sample_t(self, n: int, generator: torch.Generator, device: torch.device) -> torch.Tensor:
        u = torch.randn(n, generator=generator, device="cpu") * self.cfg.logit_std + self.cfg.logit_mean
        return shift_time(torch.sigmoid(u), self.cfg.shift).to(device)

    def noisy(self, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(x_t, regression target) with t broadcast per frame [N]."""
        tt = t.view(-1, 1, 1, 1)
        return (1 - tt) * x0 + tt * noise, noise - x0

    def model_time(self, t: torch.Tensor) -> torch.Tensor:
        return t


class EpsPrediction:
    """DDPM as ACE trains it: discrete steps, linear betas 1e-4..0.02, x_t = sqrt(a)*x_0 + sqrt(1-a)*eps, target eps."""

    name = "eps"

    def __init__(self, cfg: LossConfig):
        self.cfg = cfg
        betas = torch.linspace(1e-4, 0.02, cfg.eps_train_steps, dtype=torch.float64)
        self.alphas_cumprod = torch.cumprod(1 - betas, 0).float()

    def sample_t(self, n: int, generator: torch.Generator, device: torch.device) -> torch.Tensor:
        """Integer step indices as floats, uniform over the schedule."""
        return torch.randint(0, self.cfg.eps_train_steps, (n,), generator=generator).float().to(device)

    def alpha_bar(self, t: torch.Tensor) -> torch.Tensor:
        return self.alphas_cumprod.to(t.device)[t.long()]

    def noisy(self, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        a = self.alpha_bar(t).view(-1, 1, 1, 1)
        return a.sqrt() * x0 + (1 - a).sqrt() * noise, noise

    def model_time(self, t: torch.Tensor) -> torch.Tensor:
        return t / self.cfg.eps_train_steps


def make_objective(cfg: LossConfig) -> FlowMatching | EpsPrediction:
    return FlowMatching(cfg) if cfg.objective == "flow" else EpsPrediction(cfg)


def mask_to_latent(masks: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """[N, 1, H, W] masks in {0, 1} -> latent grid, averaging so a partly edited cell reads as a fraction."""
    return F.interpolate(masks, size=size, mode="area")


def model_inputs(x_t: torch.Tensor, x0: torch.Tensor, masks_lat: torch.Tensor, is_target: torch.Tensor) -> torch.Tensor:
    """[x_t ; clean condition latent (zeros for the target, which the model must make) ; mask] per frame."""
    cond = x0 * (~is_target).view(-1, 1, 1, 1).to(x0.dtype)
    return torch.cat([x_t, cond, masks_lat.to(x_t.dtype)], dim=1)


def drop_text(
    states: torch.Tensor, indicator: torch.Tensor, text_sample: torch.Tensor, dropped: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Zero the T5 states (and text indicator ids) of the texts of dropped samples: the unconditional input
    that classifier-free guidance contrasts with."""
    keep = (~dropped)[text_sample]
    return states * keep.view(-1, 1, 1).to(states.dtype), indicator * keep.view(-1, 1).long()


@dataclass
class StepOutput:
    loss: torch.Tensor
    n_samples: int
    n_tokens: int  # image tokens the model saw (all frames)


def training_loss(
    model: torch.nn.Module,
    objective: FlowMatching | EpsPrediction,
    codec: LatentCodec,
    text_encoder: TextEncoder,
    batch: Batch,
    cfg: LossConfig,
    generator: torch.Generator,
    patch: int,
    autocast: bool,
) -> StepOutput:
    device = codec.device
    if batch.precomputed:  # the latents job's: the same posterior mean and mask averages, made once
        x0 = codec.normalize(batch.latents)
        masks_lat = batch.mask_latents.to(device)
    else:
        x0 = codec.encode(batch.pixels, generator=None)  # the posterior mean: deterministic targets
        masks_lat = mask_to_latent(batch.masks.to(device), x0.shape[-2:])
    is_target = batch.is_target
    B = batch.n_samples
    t = objective.sample_t(B, generator, device)
    t_frames = t[batch.layout.frame_sample]
    noise = torch.randn(x0.shape, generator=generator).to(device)
    x_t, target = objective.noisy(x0, noise, t_frames)
    if cfg.frames == "target":
        # ACE: inputs are clean conditions and carry no loss
        x_t = torch.where(is_target.view(-1, 1, 1, 1), x_t, x0)
    if batch.text_states is not None:
        text = batch.text_states.to(device).float()
    else:
        text = text_encoder.encode(batch.text_ids, batch.text_valid)
    dropped = torch.rand(B, generator=generator) < cfg.text_dropout
    text, text_ind = drop_text(text, batch.text_indicator, batch.layout.text_sample, dropped.to(device))
    inp = model_inputs(x_t, x0, masks_lat, is_target)
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
        pred = model(inp, objective.model_time(t), text, batch.text_valid, text_ind, batch.layout)
    # plain mean squared error over latent elements, then frames (no SNR weighting), as in ACE++
    err = (pred.float() - target).pow(2).mean(dim=(1, 2, 3))
    if cfg.frames == "target":
        w = is_target.to(err.dtype)  # a weighted mean, not err[is_target]: boolean indexing waits for the GPU
        loss = (err * w).sum() / w.sum()
    else:
        loss = err.mean()
    h, w = x0.shape[-2:]
    return StepOutput(loss, B, x0.shape[0] * (h // patch) * (w // patch))
