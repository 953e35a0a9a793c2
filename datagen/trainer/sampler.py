"""Generate target frames for a Batch of CUs: a flow-Euler sampler for the flow objective (DDIM for ACE's eps
objective), with optional classifier-free guidance. Input frames stay on their known path from the clean
condition, exactly as training showed them; only the target is integrated from noise."""

from __future__ import annotations

import torch

from datagen.trainer.config import LossConfig
from datagen.trainer.encoders import LatentCodec, TextEncoder
from datagen.trainer.examples import Batch
from datagen.trainer.objectives import EpsPrediction, FlowMatching, drop_text, mask_to_latent, model_inputs, shift_time


@torch.no_grad()
def sample_targets(
    model: torch.nn.Module,
    objective: FlowMatching | EpsPrediction,
    codec: LatentCodec,
    text_encoder: TextEncoder,
    batch: Batch,
    loss_cfg: LossConfig,
    steps: int,
    guidance: float = 1.0,
    seed: int = 0,
    autocast: bool = False,
) -> torch.Tensor:
    """Latents of the generated targets [B, C, h, w], in the order of the batch's samples."""
    device = codec.device
    gen = torch.Generator().manual_seed(seed)
    x0 = codec.encode(batch.pixels)
    masks_lat = mask_to_latent(batch.masks.to(device), x0.shape[-2:])
    is_t = batch.is_target.view(-1, 1, 1, 1)
    B = batch.n_samples
    text = text_encoder.encode(batch.text_ids, batch.text_valid)
    uncond_text, uncond_ind = drop_text(
        text, batch.text_indicator, batch.layout.text_sample, torch.ones(B, dtype=torch.bool, device=device)
    )
    noise = torch.randn(x0.shape, generator=gen).to(device)
    x = noise.clone()

    def predict(x_in: torch.Tensor, t_model: torch.Tensor) -> torch.Tensor:
        inp = model_inputs(x_in, x0, masks_lat, batch.is_target)
        tt = torch.full((B,), float(t_model), device=device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
            out = model(inp, tt, text, batch.text_valid, batch.text_indicator, batch.layout).float()
            if guidance != 1.0:
                un = model(inp, tt, uncond_text, batch.text_valid, uncond_ind, batch.layout).float()
                out = un + guidance * (out - un)
        return out

    if isinstance(objective, FlowMatching):
        ts = shift_time(torch.linspace(1.0, 0.0, steps + 1), loss_cfg.shift).tolist()
        for t, t_next in zip(ts[:-1], ts[1:]):
            known = (1 - t) * x0 + t * noise if loss_cfg.frames == "all" else x0
            x_in = torch.where(is_t, x, known)
            x = x + (t_next - t) * predict(x_in, t)  # Euler step along dx/dt = noise - x_0
    else:
        T = loss_cfg.eps_train_steps
        idx = torch.linspace(T - 1, 0, steps).round().long().tolist()
        for i, t in enumerate(idx):
            a = objective.alphas_cumprod[t].item()
            a_prev = objective.alphas_cumprod[idx[i + 1]].item() if i + 1 < len(idx) else 1.0
            known = (a**0.5) * x0 + ((1 - a) ** 0.5) * noise if loss_cfg.frames == "all" else x0
            x_in = torch.where(is_t, x, known)
            eps = predict(x_in, t / T)
            x0_pred = (x - (1 - a) ** 0.5 * eps) / a**0.5
            x = a_prev**0.5 * x0_pred + (1 - a_prev) ** 0.5 * eps  # DDIM, eta = 0
    target_rows = batch.is_target.nonzero().flatten()
    order = batch.layout.frame_sample[target_rows].argsort()
    return x[target_rows[order]]
