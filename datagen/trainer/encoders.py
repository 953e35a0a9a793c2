"""The frozen encoders around the DiT: a diffusers AutoencoderKL (pixels <-> latents) and a transformers T5
encoder with its tokenizer, each loaded from a local path through the library's own loader.

`tiny:random` builds randomly initialised tiny models of the same architectures, saves them, and loads them
back through that same path: for pipeline tests only (the logs say so), since no weights exist offline."""

from __future__ import annotations

import json
import logging
import math
import re
from collections import Counter
from pathlib import Path
from typing import Any, Iterable

import torch

from datagen.trainer.config import TINY_RANDOM, TextEncoderConfig, VaeConfig

log = logging.getLogger(__name__)

TINY_NOTE = "random-init tiny VAE/T5, for pipeline tests only"


def resolve_dtype(choice: str, device: torch.device) -> torch.dtype:
    if choice == "bf16":
        return torch.bfloat16
    if choice == "fp32":
        return torch.float32
    return torch.bfloat16 if device.type == "cuda" else torch.float32


# VAE ---------------------------------------------------------------------------------------------------------
class LatentCodec:
    """AutoencoderKL with the latent normalisation of its config: z = (mean or sample - shift) * scale."""

    def __init__(self, vae: Any, device: torch.device, dtype: torch.dtype):
        self.vae = vae.to(device=device, dtype=dtype).eval().requires_grad_(False)
        self.device, self.dtype = device, dtype
        cfg = vae.config
        self.channels = int(cfg.latent_channels)
        self.factor = 2 ** (len(cfg.block_out_channels) - 1)
        self.scale = float(cfg.scaling_factor)
        self.shift = float(getattr(cfg, "shift_factor", None) or 0.0)

    @torch.no_grad()
    def encode_raw(self, pixels: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """The VAE's own latents (posterior mean, or a sample), in its dtype: what the latents job stores."""
        dist = self.vae.encode(pixels.to(self.device, self.dtype)).latent_dist
        return dist.sample(generator) if generator is not None else dist.mean

    def normalize(self, z: torch.Tensor) -> torch.Tensor:
        return (z.to(self.device).float() - self.shift) * self.scale

    @torch.no_grad()
    def encode(self, pixels: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        return self.normalize(self.encode_raw(pixels, generator))

    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        z = latents / self.scale + self.shift
        return self.vae.decode(z.to(self.device, self.dtype)).sample.float().clamp(-1, 1)


def build_tiny_vae(path: Path, calibration: torch.Tensor | None = None) -> None:
    """A 4-level AutoencoderKL (factor 8, 4 latent channels, as SD's) with random weights. Its scaling factor
    is calibrated as SD's 0.18215 was: 1 / std of the latents of real images (the data's targets)."""
    from diffusers import AutoencoderKL

    torch.manual_seed(0)
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(16, 16, 32, 32),
        layers_per_block=1,
        latent_channels=4,
        norm_num_groups=8,
        sample_size=64,
    )
    if calibration is not None and len(calibration):
        with torch.no_grad():
            std = float(vae.encode(calibration.float()).latent_dist.mean.std())
        vae.register_to_config(scaling_factor=1.0 / max(std, 1e-6))
    vae.save_pretrained(str(path))


def load_vae(cfg: VaeConfig, device: torch.device, tiny_dir: Path | None = None) -> LatentCodec:
    from diffusers import AutoencoderKL

    path = str(tiny_dir) if cfg.path == TINY_RANDOM else cfg.path
    if cfg.path == TINY_RANDOM:
        if tiny_dir is None or not (tiny_dir / "config.json").exists():
            raise FileNotFoundError(f"tiny VAE not built at {tiny_dir}; call prepare_tiny_models first")
        log.warning("vae.path=%s: %s (%s)", TINY_RANDOM, TINY_NOTE, tiny_dir)
    dtype = resolve_dtype(cfg.dtype, device)
    # loaded in its working dtype: no float32 copy in host memory first (diffusers >= 0.40 takes `dtype`)
    kwargs = {"subfolder": cfg.subfolder} if cfg.subfolder else {}
    try:
        vae = AutoencoderKL.from_pretrained(path, dtype=dtype, **kwargs)
    except (OSError, ValueError) as e:
        raise FileNotFoundError(f"vae.path={cfg.path!r}: cannot load an AutoencoderKL: {e}") from None
    codec = LatentCodec(vae, device, dtype)
    log.info("VAE %s: %d latent channels, factor %d, scale %.5f", path, codec.channels, codec.factor, codec.scale)
    return codec


# Text encoder -----------------------------------------------------------------------------------------------
class TextEncoder:
    """T5 encoder + tokenizer; encode(ids, valid) -> last hidden states [M, S, d_model] (frozen)."""

    def __init__(self, model: Any, tokenizer: Any, device: torch.device, dtype: torch.dtype):
        self.model = model.to(device=device, dtype=dtype).eval().requires_grad_(False)
        self.tokenizer = tokenizer
        self.device = device
        self.dim = int(model.config.d_model)

    @torch.no_grad()
    def encode_raw(self, ids: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """Last hidden states in the encoder's dtype: what the latents job stores."""
        out = self.model(input_ids=ids.to(self.device), attention_mask=valid.to(self.device).long())
        return out.last_hidden_state

    def encode(self, ids: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        return self.encode_raw(ids, valid).float()


_WORD_RE = re.compile(r"\S+")
_PART_RE = re.compile(r"\w+|[^\w\s]")


def tiny_unigram_vocab(corpus: Iterable[str], max_words: int = 2000) -> list[tuple[str, float]]:
    """A SentencePiece-style unigram vocabulary counted from a corpus: T5's special pieces, every printable
    ASCII character (with and without the word-start mark) so any text tokenises, then the corpus's frequent
    word and punctuation pieces (the first piece of a word carries the word-start mark); scores are log
    relative frequencies, as a unigram LM's are."""
    words: Counter[str] = Counter()
    chars: Counter[str] = Counter()
    for text in corpus:
        for w in _WORD_RE.findall(text):
            for i, part in enumerate(_PART_RE.findall(w)):
                words[("\u2581" if i == 0 else "") + part] += 1
            chars.update(w)
    total = sum(words.values()) + sum(chars.values()) + 1
    vocab = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("\u2581", -2.0)]
    seen = {p for p, _ in vocab}
    for c in (chr(i) for i in range(33, 127)):
        for piece in (c, "\u2581" + c):
            if piece not in seen:
                vocab.append((piece, math.log((chars[c] + 1) / total) - 4.0))
                seen.add(piece)
    for w, n in words.most_common(max_words):
        if w not in seen and n >= 1:
            vocab.append((w, math.log(n / total)))
            seen.add(w)
    return vocab


def build_tiny_t5(path: Path, corpus: Iterable[str]) -> None:
    from transformers import T5Config, T5EncoderModel, T5Tokenizer

    tokenizer = T5Tokenizer(vocab=tiny_unigram_vocab(corpus), extra_ids=0)
    torch.manual_seed(0)
    config = T5Config(
        vocab_size=len(tokenizer),
        d_model=32,
        d_kv=8,
        d_ff=64,
        num_layers=2,
        num_heads=4,
        feed_forward_proj="gated-gelu",  # T5 v1.1, the family ACE uses
        relative_attention_num_buckets=8,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    model = T5EncoderModel(config)
    model.save_pretrained(str(path))
    tokenizer.save_pretrained(str(path))


def load_text_encoder(cfg: TextEncoderConfig, device: torch.device, tiny_dir: Path | None = None) -> TextEncoder:
    from transformers import AutoTokenizer, T5EncoderModel

    path = str(tiny_dir) if cfg.path == TINY_RANDOM else cfg.path
    if cfg.path == TINY_RANDOM:
        if tiny_dir is None or not (tiny_dir / "config.json").exists():
            raise FileNotFoundError(f"tiny T5 not built at {tiny_dir}; call prepare_tiny_models first")
        log.warning("text_encoder.path=%s: %s (%s)", TINY_RANDOM, TINY_NOTE, tiny_dir)
    dtype = resolve_dtype(cfg.dtype, device)
    try:
        # in its working dtype from the start: T5-XXL's encoder in float32 is about 19 GB of host memory per rank
        model = T5EncoderModel.from_pretrained(path, dtype=dtype)
        tokenizer = AutoTokenizer.from_pretrained(cfg.tokenizer_path or path)
    except (OSError, ValueError) as e:
        raise FileNotFoundError(
            f"text_encoder.path={cfg.path!r}: cannot load a T5 encoder and tokenizer: {e}"
        ) from None
    enc = TextEncoder(model, tokenizer, device, dtype)
    log.info("text encoder %s: d_model %d, vocab %d", path, enc.dim, len(tokenizer))
    return enc


def _plain_config(cfg: Any) -> dict[str, Any]:
    """A model config as JSON-able values, without the entries that say where or when it was saved."""
    d = cfg.to_dict() if hasattr(cfg, "to_dict") else dict(cfg)
    skip = {"transformers_version", "dtype", "torch_dtype"}
    return {k: v for k, v in sorted(d.items()) if not k.startswith("_") and k not in skip}


def encoder_fingerprint(
    vae_cfg: VaeConfig, text_cfg: TextEncoderConfig, codec: LatentCodec, text: TextEncoder, data: Any
) -> dict[str, Any]:
    """What precomputed latents depend on: both encoders (path, architecture, dtype, vocabulary) and the data
    settings that size frames and texts. The latents job stores it; the trainer uses latents only where it matches."""
    return json.loads(
        json.dumps(
            {
                "vae": {
                    "path": vae_cfg.path,
                    "subfolder": vae_cfg.subfolder,
                    "dtype": str(codec.dtype),
                    "config": _plain_config(codec.vae.config),
                },
                "text_encoder": {
                    "path": text_cfg.path,
                    "tokenizer_path": text_cfg.tokenizer_path,
                    "dtype": str(text.model.dtype),
                    "vocab": len(text.tokenizer),
                    "config": _plain_config(text.model.config),
                },
                "data": {
                    k: getattr(data, k)
                    for k in ("max_tokens", "side_multiple", "max_aspect", "max_text_tokens", "max_inputs")
                },
            },
            sort_keys=True,
            default=str,
        )
    )


def prepare_tiny_models(root: Path, corpus: list[str], calibration: torch.Tensor | None, vae: bool, t5: bool) -> None:
    """Build the tiny models under root/{vae,t5} unless already there (a resumed run reuses them)."""
    if vae and not (root / "vae" / "config.json").exists():
        build_tiny_vae(root / "vae", calibration)
    if t5 and not (root / "t5" / "config.json").exists():
        build_tiny_t5(root / "t5", corpus)
    (root / "README.json").write_text(json.dumps({"note": TINY_NOTE}) + "\n")
