"""ACE's DiT in one file: a PixArt-style DiT (adaLN-single time conditioning, cross-attention to T5 text) over
VAE latents, extended with ACE's additions for Condition Units: indicator embeddings, 3D RoPE, per-CU cross-attention.

Layout of a batch (built by datagen.trainer.loader): N frames of B samples, every frame the same latent size.
A frame's input channels are [x_t (C) ; clean condition latent (C, zeros for the target) ; mask (1)].
Tokens of all frames of a sample form one sequence (self-attention across frames); each frame's tokens
cross-attend only to the text of their own CU (turn). Samples are padded to the longest one in the batch.

Attention takes the fastest kernel the batch allows: no mask where every token is valid (SDPA then picks flash or
cuDNN attention), else a boolean mask through SDPA ("sdpa") or a block mask through flex attention ("flex", fused
when the blocks are compiled). `attention_plan` says which, from the layout alone.

Sections: (1) embedders, block and final layer as in DiT/PixArt; (2) ACE's additions, visibly separate;
(3) the model; (4) a table of sizes, up to ACE's 0.6B (hidden 1152, depth 28, 16 heads, patch 2).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.attention.flex_attention import BlockMask, create_block_mask, flex_attention
from torch.utils.checkpoint import checkpoint

# what an attention layer is given: nothing (every key valid), a boolean SDPA mask, or a flex block mask
AttnMask = torch.Tensor | BlockMask | None
ATTENTION_BACKENDS = ("sdpa", "flex")


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: AttnMask) -> torch.Tensor:
    """[B, H, L, hd] attention. No mask: SDPA may take its flash / cuDNN kernels, which take none."""
    if isinstance(mask, BlockMask):
        return flex_attention(q, k, v, block_mask=mask)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)


# (1) DiT / PixArt parts --------------------------------------------------------------------------------------
def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return x * (1 + scale) + shift


class TimestepEmbedder(nn.Module):
    """Scalar t in [0, 1] -> vector: sinusoidal features of 1000*t, then an MLP (DiT)."""

    def __init__(self, hidden: int, freq_dim: int = 256):
        super().__init__()
        self.freq_dim = freq_dim
        self.mlp = nn.Sequential(nn.Linear(freq_dim, hidden), nn.SiLU(), nn.Linear(hidden, hidden))

    @staticmethod
    def sinusoid(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
        half = dim // 2
        freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
        args = (t.float() * 1000.0)[:, None] * freqs[None]
        return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        return self.mlp(self.sinusoid(t, self.freq_dim).to(self.mlp[0].weight.dtype))


class PatchEmbed(nn.Module):
    """p x p patches of a latent frame -> tokens (a strided conv, as in DiT)."""

    def __init__(self, in_channels: int, hidden: int, patch: int):
        super().__init__()
        self.proj = nn.Conv2d(in_channels, hidden, kernel_size=patch, stride=patch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [N, C, h, w] -> [N, h/p * w/p, D]
        return self.proj(x).flatten(2).transpose(1, 2)


class Mlp(nn.Module):
    def __init__(self, hidden: int, mlp_hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(hidden, mlp_hidden)
        self.fc2 = nn.Linear(mlp_hidden, hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x), approximate="tanh"))


class CaptionProjection(nn.Module):
    """T5 hidden states -> model width (PixArt's caption projection)."""

    def __init__(self, text_dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(text_dim, hidden)
        self.fc2 = nn.Linear(hidden, hidden)

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(y), approximate="tanh"))


class SelfAttention(nn.Module):
    def __init__(self, hidden: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(hidden, 3 * hidden)
        self.proj = nn.Linear(hidden, hidden)

    def forward(self, x: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor], mask: AttnMask) -> torch.Tensor:
        B, L, D = x.shape
        q, k, v = self.qkv(x).view(B, L, 3, self.heads, D // self.heads).permute(2, 0, 3, 1, 4)
        q, k = apply_rope(q, *rope), apply_rope(k, *rope)
        out = attend(q, k, v, mask)
        return self.proj(out.transpose(1, 2).reshape(B, L, D))


class CrossAttention(nn.Module):
    def __init__(self, hidden: int, heads: int):
        super().__init__()
        self.heads = heads
        self.q = nn.Linear(hidden, hidden)
        self.kv = nn.Linear(hidden, 2 * hidden)
        self.proj = nn.Linear(hidden, hidden)

    def forward(self, x: torch.Tensor, y: torch.Tensor, mask: AttnMask) -> torch.Tensor:
        B, L, D = x.shape
        S = y.shape[1]
        hd = D // self.heads
        q = self.q(x).view(B, L, self.heads, hd).transpose(1, 2)
        k, v = self.kv(y).view(B, S, 2, self.heads, hd).permute(2, 0, 3, 1, 4)
        out = attend(q, k, v, mask)
        return self.proj(out.transpose(1, 2).reshape(B, L, D))


class DiTBlock(nn.Module):
    """Self-attention over all frames, cross-attention to text, MLP; adaLN-single modulation (PixArt):
    the six shift/scale/gate vectors are a shared projection of t plus this block's learned table."""

    def __init__(self, hidden: int, heads: int, mlp_ratio: float = 4.0):
        super().__init__()
        self.norm1 = nn.LayerNorm(hidden, elementwise_affine=False, eps=1e-6)
        self.attn = SelfAttention(hidden, heads)
        self.norm_cross = nn.LayerNorm(hidden, eps=1e-6)
        self.cross_attn = CrossAttention(hidden, heads)
        self.norm2 = nn.LayerNorm(hidden, elementwise_affine=False, eps=1e-6)
        self.mlp = Mlp(hidden, int(hidden * mlp_ratio))
        self.scale_shift_table = nn.Parameter(torch.randn(6, hidden) / hidden**0.5)

    def forward(self, x, y, t6, rope, self_mask, cross_mask):
        B = x.shape[0]
        shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = (
            self.scale_shift_table[None] + t6.view(B, 6, -1)
        ).chunk(6, dim=1)
        x = x + gate_msa * self.attn(modulate(self.norm1(x), shift_msa, scale_msa), rope, self_mask)
        x = x + self.cross_attn(self.norm_cross(x), y, cross_mask)
        x = x + gate_mlp * self.mlp(modulate(self.norm2(x), shift_mlp, scale_mlp))
        return x


class FinalLayer(nn.Module):
    def __init__(self, hidden: int, patch: int, out_channels: int):
        super().__init__()
        self.norm = nn.LayerNorm(hidden, elementwise_affine=False, eps=1e-6)
        self.linear = nn.Linear(hidden, patch * patch * out_channels)
        self.scale_shift_table = nn.Parameter(torch.randn(2, hidden) / hidden**0.5)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        shift, scale = (self.scale_shift_table[None] + t[:, None]).chunk(2, dim=1)
        return self.linear(modulate(self.norm(x), shift, scale))


# (2) ACE's additions -----------------------------------------------------------------------------------------
# Indicator ids: 0 = none (plain text, padding), 1 = the target, 1+n = input image n ({image<n>}; {image} is
# the first input of the turn the text belongs to). Frames get their id's embedding on every token; text gets
# it on the tokens that spell the indicator, so "{image2}" in the text and frame 2 share one learned vector.
INDICATOR_NONE = 0
INDICATOR_TARGET = 1


def indicator_id(input_number: int) -> int:
    """Indicator id of input image n (1-based over all input frames of a sample, history turns first)."""
    return 1 + input_number


class IndicatorEmbedding(nn.Module):
    def __init__(self, max_inputs: int, hidden: int):
        super().__init__()
        self.embed = nn.Embedding(2 + max_inputs, hidden, padding_idx=INDICATOR_NONE)
        nn.init.normal_(self.embed.weight, std=0.02)
        with torch.no_grad():
            self.embed.weight[INDICATOR_NONE].zero_()

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.embed(ids)


def rope_axes(head_dim: int) -> tuple[int, int, int]:
    """Split a head's channels over (frame, row, column); each part even so it rotates in pairs."""
    if head_dim % 2 or head_dim < 6:
        raise ValueError(f"3D RoPE needs an even head dim >= 6, got {head_dim}")
    d_f = 2 * (head_dim // 6)
    while (head_dim - d_f) % 4:
        d_f -= 2
    d_hw = (head_dim - d_f) // 2
    return d_f, d_hw, d_hw


def rope_3d(pos: torch.Tensor, head_dim: int, theta: float = 10000.0) -> tuple[torch.Tensor, torch.Tensor]:
    """cos/sin [B, 1, L, head_dim/2] for integer positions pos [B, L, 3] = (frame, row, column)."""
    parts_cos, parts_sin = [], []
    for axis, d in enumerate(rope_axes(head_dim)):
        freqs = 1.0 / theta ** (torch.arange(0, d, 2, dtype=torch.float32, device=pos.device) / d)
        ang = pos[..., axis].float()[..., None] * freqs
        parts_cos.append(torch.cos(ang))
        parts_sin.append(torch.sin(ang))
    return torch.cat(parts_cos, -1)[:, None], torch.cat(parts_sin, -1)[:, None]


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate channel pairs (2i, 2i+1) of x [B, H, L, hd] by the position angles."""
    x2 = x.float().unflatten(-1, (-1, 2))
    a, b = x2[..., 0], x2[..., 1]
    out = torch.stack([a * cos - b * sin, a * sin + b * cos], dim=-1).flatten(-2)
    return out.to(x.dtype)


@dataclass
class FrameLayout:
    """Where each frame and each text of a batch belongs. N frames, M texts, B samples.

    frame_sample/frame_slot: sample of each frame and its position in that sample's sequence;
    frame_text: index (0..M-1) of the text the frame cross-attends to (its own CU's instruction);
    frame_indicator: indicator id of each frame; text_sample/text_slot: the same for texts.
    fmax/tmax (most frames / texts of a sample), frames_full (every sample has fmax frames) and texts_full (one text
    per sample, every token valid) are read on the host where the layout is made (collate), so the model's forward
    never waits on the GPU for them; None: computed on first use."""

    frame_sample: torch.Tensor
    frame_slot: torch.Tensor
    frame_text: torch.Tensor
    frame_indicator: torch.Tensor
    text_sample: torch.Tensor
    text_slot: torch.Tensor
    n_samples: int
    fmax: int | None = None
    tmax: int | None = None
    frames_full: bool | None = None
    texts_full: bool | None = None

    def __post_init__(self) -> None:
        if self.fmax is None:
            self.fmax = int(self.frame_slot.max()) + 1
        if self.tmax is None:
            self.tmax = int(self.text_slot.max()) + 1
        if self.frames_full is None:
            self.frames_full = len(self.frame_slot) == self.n_samples * self.fmax

    def with_text_valid(self, text_valid: torch.Tensor) -> "FrameLayout":
        """Record whether the cross-attention needs a mask (call where text_valid is still on the host)."""
        self.texts_full = self.tmax == 1 and bool(text_valid.all())
        return self

    _TENSORS = ("frame_sample", "frame_slot", "frame_text", "frame_indicator", "text_sample", "text_slot")

    def pin_memory(self) -> "FrameLayout":
        return self._map(lambda t: t.pin_memory())

    def to(self, device: torch.device) -> "FrameLayout":
        return self._map(lambda t: t.to(device, non_blocking=True))

    def _map(self, fn: Any) -> "FrameLayout":
        return FrameLayout(
            *(fn(getattr(self, f)) for f in self._TENSORS),
            n_samples=self.n_samples,
            fmax=self.fmax,
            tmax=self.tmax,
            frames_full=self.frames_full,
            texts_full=self.texts_full,
        )


def pack_frames(tokens: torch.Tensor, layout: FrameLayout) -> tuple[torch.Tensor, torch.Tensor, int]:
    """[N, P, D] frame tokens -> [B, Fmax*P, D] sequences (zeros where a sample has fewer frames), their
    validity mask [B, Fmax*P], and Fmax."""
    N, P, D = tokens.shape
    B = layout.n_samples
    fmax = layout.fmax
    seq = tokens.new_zeros(B, fmax, P, D)
    seq[layout.frame_sample, layout.frame_slot] = tokens
    valid = torch.zeros(B, fmax, dtype=torch.bool, device=tokens.device)
    valid[layout.frame_sample, layout.frame_slot] = True
    return seq.view(B, fmax * P, D), valid.repeat_interleave(P, dim=1), fmax


def cu_text_ids(layout: FrameLayout, fmax: int, P: int, text_valid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Which text each query token belongs to [B, Fmax*P] and each key token is [B, Tmax*S] (-1: padding): a
    query sees a key where the two agree. Padding frames are pointed at the sample's first text, which always
    has a token (EOS), so no query is left with no key (an empty row would make attention NaN)."""
    B = layout.n_samples
    tmax, S = layout.tmax, text_valid.shape[1]
    dev = text_valid.device
    q_text = torch.zeros(B, fmax, dtype=torch.long, device=dev)
    q_text[layout.frame_sample, layout.frame_slot] = layout.text_slot[layout.frame_text]
    k_text = torch.full((B, tmax, S), -1, dtype=torch.long, device=dev)
    k_slot = layout.text_slot[:, None].expand(-1, S)
    k_text[layout.text_sample, layout.text_slot] = torch.where(text_valid, k_slot, torch.full_like(k_slot, -1))
    return q_text.repeat_interleave(P, dim=1), k_text.view(B, tmax * S)


def cu_cross_mask(layout: FrameLayout, fmax: int, P: int, text_valid: torch.Tensor) -> torch.Tensor:
    """Boolean [B, 1, Fmax*P, Tmax*S]: a frame's tokens see only the valid tokens of their own CU's text."""
    q, k = cu_text_ids(layout, fmax, P, text_valid)
    return (q[:, :, None] == k[:, None, :])[:, None]


def attention_plan(layout: FrameLayout, text_valid: torch.Tensor | None, backend: str) -> tuple[str, str]:
    """(self-attention, cross-attention) of a batch: "dense" (no mask: the flash path), "mask" (a boolean SDPA
    mask) or "flex" (a flex-attention block mask). A mask is needed only where some sample has fewer frames than
    the longest (self) or where texts are padded or a sample has several (cross)."""
    if backend not in ATTENTION_BACKENDS:
        raise ValueError(f"attention backend {backend!r} is not one of {ATTENTION_BACKENDS}")
    masked = "flex" if backend == "flex" else "mask"
    texts_full = layout.texts_full
    if texts_full is None:
        texts_full = layout.tmax == 1 and text_valid is not None and bool(text_valid.all())
    return ("dense" if layout.frames_full else masked), ("dense" if texts_full else masked)


def self_block_mask(valid: torch.Tensor) -> BlockMask:
    """Flex block mask of key padding: [B, L] valid tokens."""
    B, L = valid.shape

    def mask_mod(b, h, q_idx, kv_idx):
        return valid[b, kv_idx]

    return create_block_mask(mask_mod, B, None, L, L, device=valid.device)


def cross_block_mask(q_text: torch.Tensor, k_text: torch.Tensor) -> BlockMask:
    """Flex block mask of per-CU cross-attention from cu_text_ids."""
    B, Lq = q_text.shape

    def mask_mod(b, h, q_idx, kv_idx):
        return q_text[b, q_idx] == k_text[b, kv_idx]

    return create_block_mask(mask_mod, B, None, Lq, k_text.shape[1], device=q_text.device)


def frame_positions(layout: FrameLayout, fmax: int, h: int, w: int) -> torch.Tensor:
    """(frame, row, column) of every token [B, Fmax*h*w, 3] for 3D RoPE; frames keep their order in the sample."""
    B = layout.n_samples
    dev = layout.frame_slot.device
    f = torch.arange(fmax, device=dev)[:, None, None].expand(fmax, h, w)
    r = torch.arange(h, device=dev)[None, :, None].expand(fmax, h, w)
    c = torch.arange(w, device=dev)[None, None, :].expand(fmax, h, w)
    return torch.stack([f, r, c], -1).reshape(1, fmax * h * w, 3).expand(B, -1, -1)


# (3) The model -----------------------------------------------------------------------------------------------
class ACEDiT(nn.Module):
    def __init__(
        self,
        latent_channels: int = 4,
        text_dim: int = 4096,
        hidden: int = 1152,
        depth: int = 28,
        heads: int = 16,
        patch: int = 2,
        mlp_ratio: float = 4.0,
        max_inputs: int = 9,
        grad_checkpointing: bool = False,
        attention: str = "sdpa",
    ):
        super().__init__()
        if hidden % heads:
            raise ValueError(f"hidden {hidden} is not divisible by heads {heads}")
        self.latent_channels = latent_channels
        self.in_channels = 2 * latent_channels + 1  # x_t, clean condition latent, mask
        self.patch = patch
        self.heads = heads
        self.head_dim = hidden // heads
        rope_axes(self.head_dim)  # fail early on an impossible head size
        self.grad_checkpointing = grad_checkpointing
        if attention not in ATTENTION_BACKENDS:
            raise ValueError(f"attention={attention!r} is not one of {ATTENTION_BACKENDS}")
        self.attention = attention  # how masked batches attend; unmasked ones always take the dense (flash) path
        self.x_embed = PatchEmbed(self.in_channels, hidden, patch)
        self.t_embed = TimestepEmbedder(hidden)
        self.t_block = nn.Sequential(nn.SiLU(), nn.Linear(hidden, 6 * hidden))  # adaLN-single
        self.y_embed = CaptionProjection(text_dim, hidden)
        self.indicator = IndicatorEmbedding(max_inputs, hidden)
        self.blocks = nn.ModuleList([DiTBlock(hidden, heads, mlp_ratio) for _ in range(depth)])
        self.final = FinalLayer(hidden, patch, latent_channels)
        self.initialize_weights()

    def initialize_weights(self) -> None:
        def _basic(m: nn.Module) -> None:
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

        self.apply(_basic)
        w = self.x_embed.proj.weight.data
        nn.init.xavier_uniform_(w.view(w.shape[0], -1))
        nn.init.zeros_(self.x_embed.proj.bias)
        for lin in (self.t_embed.mlp[0], self.t_embed.mlp[2]):
            nn.init.normal_(lin.weight, std=0.02)
        nn.init.normal_(self.t_block[1].weight, std=0.02)
        # zero-initialised outputs: every block starts as (almost) the identity and the prediction as 0
        for block in self.blocks:
            nn.init.zeros_(block.cross_attn.proj.weight)
            nn.init.zeros_(block.cross_attn.proj.bias)
        nn.init.zeros_(self.final.linear.weight)
        nn.init.zeros_(self.final.linear.bias)

    def compile_blocks(self, **kwargs: Any) -> None:
        """torch.compile each block's forward (regional compilation): the blocks share one compiled graph, the
        state dict keeps its names, module hooks (FSDP's per-block gathers) stay outside the graph, and the packing
        and masks around the blocks stay in eager mode. kwargs go to torch.compile (backend="eager" traces only)."""
        import torch._dynamo

        # a bucket or frame count is a new shape: leave room for the recompiles before dynamo falls back to eager
        torch._dynamo.config.cache_size_limit = max(torch._dynamo.config.cache_size_limit, 64)
        for block in self.blocks:
            block.forward = torch.compile(block.forward, **kwargs)

    def unpatchify(self, x: torch.Tensor, h: int, w: int) -> torch.Tensor:
        N, p, C = x.shape[0], self.patch, self.latent_channels
        x = x.view(N, h, w, p, p, C).permute(0, 5, 1, 3, 2, 4)
        return x.reshape(N, C, h * p, w * p)

    def forward(
        self,
        x: torch.Tensor,  # [N, 2C+1, H, W] frames
        t: torch.Tensor,  # [B] time per sample, in [0, 1]
        text: torch.Tensor,  # [M, S, text_dim] encoder states, one row per CU instruction
        text_valid: torch.Tensor,  # [M, S] bool
        text_indicator: torch.Tensor,  # [M, S] indicator id of each text token (0 = none)
        layout: FrameLayout,
    ) -> torch.Tensor:
        N, _, H, W = x.shape
        h, w = H // self.patch, W // self.patch
        P = h * w
        tokens = self.x_embed(x) + self.indicator(layout.frame_indicator)[:, None]  # (N, P, D)
        seq, valid, fmax = pack_frames(tokens, layout)  # (B, Fmax*P, D), (B, Fmax*P)
        rope = rope_3d(frame_positions(layout, fmax, h, w), self.head_dim)  # 2 x (B, 1, Fmax*P, hd/2)

        y = self.y_embed(text) + self.indicator(text_indicator)  # (M, S, D)
        B, tmax, S = layout.n_samples, layout.tmax, text.shape[1]
        y_seq = y.new_zeros(B, tmax, S, y.shape[-1])
        y_seq[layout.text_sample, layout.text_slot] = y
        y_seq = y_seq.view(B, tmax * S, -1)  # (B, Tmax*S, D)

        self_kind, cross_kind = attention_plan(layout, text_valid, self.attention)
        self_mask: AttnMask = None
        if self_kind == "mask":
            self_mask = valid[:, None, None, :]
        elif self_kind == "flex":
            self_mask = self_block_mask(valid)
        cross_mask: AttnMask = None
        if cross_kind == "mask":
            cross_mask = cu_cross_mask(layout, fmax, P, text_valid)  # (B, 1, Fmax*P, Tmax*S)
        elif cross_kind == "flex":
            cross_mask = cross_block_mask(*cu_text_ids(layout, fmax, P, text_valid))

        t_emb = self.t_embed(t)
        t6 = self.t_block(t_emb)
        for block in self.blocks:
            if self.grad_checkpointing and self.training:
                seq = checkpoint(block, seq, y_seq, t6, rope, self_mask, cross_mask, use_reentrant=False)
            else:
                seq = block(seq, y_seq, t6, rope, self_mask, cross_mask)
        out = self.final(seq, t_emb)  # [B, Fmax*P, p*p*C]
        out = out.view(B, fmax, P, -1)[layout.frame_sample, layout.frame_slot]
        return self.unpatchify(out, h, w)


# (4) Sizes ---------------------------------------------------------------------------------------------------
SIZES: dict[str, dict[str, int]] = {
    "tiny": dict(hidden=64, depth=2, heads=4, patch=2),
    "S": dict(hidden=384, depth=12, heads=6, patch=2),
    "B": dict(hidden=768, depth=12, heads=12, patch=2),
    "L": dict(hidden=1024, depth=24, heads=16, patch=2),
    "ACE-0.6B": dict(hidden=1152, depth=28, heads=16, patch=2),  # ACE's model (PixArt-alpha XL/2 shape)
}


def size_spec(size: str, **overrides: int | None) -> dict[str, int]:
    if size not in SIZES:
        raise KeyError(f"model.size={size!r} is not a known size; known: {', '.join(SIZES)}")
    spec = dict(SIZES[size])
    spec.update({k: v for k, v in overrides.items() if v is not None})
    return spec


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
