"""transformers in-process: an image-text-to-text model (InternVL is native: InternVLForConditionalGeneration)
loaded with AutoProcessor + AutoModelForImageTextToText from a local dir or hub id, batched left-padded generation."""
from __future__ import annotations

import logging
from typing import Any

from operators.instructions.backends.base import ChatBackend, ChatRequest, ChatResult, downscale

log = logging.getLogger(__name__)


def hf_messages(req: ChatRequest) -> list[dict[str, Any]]:
    """The request in the processor's chat format: images as {"type": "image"} placeholders, in order."""
    content = []
    for part in req.parts:
        if isinstance(part, str):
            if part:
                content.append({"type": "text", "text": part})
        else:
            content.append({"type": "image"})
    msgs: list[dict[str, Any]] = []
    if req.system:
        msgs.append({"role": "system", "content": [{"type": "text", "text": req.system}]})
    msgs.append({"role": "user", "content": content})
    return msgs


def resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def resolve_dtype(dtype: str, device: str):
    import torch

    if dtype == "auto":
        return torch.bfloat16 if device.startswith("cuda") else torch.float32
    return getattr(torch, dtype)


def load_model(path: str, device: str = "auto", dtype: str = "auto", trust_remote_code: bool = False):
    """(processor, model) through transformers' normal loaders; the finetune command uses the same path."""
    from transformers import AutoModelForImageTextToText, AutoProcessor

    dev = resolve_device(device)
    processor = AutoProcessor.from_pretrained(path, trust_remote_code=trust_remote_code)
    model = AutoModelForImageTextToText.from_pretrained(path, dtype=resolve_dtype(dtype, dev), trust_remote_code=trust_remote_code)
    model.to(dev).eval()
    return processor, model


class TransformersBackend(ChatBackend):
    def setup(self) -> None:
        c = self.config
        self.device = resolve_device(c.device)
        self.processor, self.model = load_model(c.model, c.device, c.dtype, c.trust_remote_code)
        tok = self.processor.tokenizer
        tok.padding_side = "left"  # generation continues from the right end of every row
        if tok.pad_token is None:
            tok.pad_token = tok.eos_token
        log.info("transformers backend: %s on %s", type(self.model).__name__, self.device)

    def num_gpus(self) -> float:
        if self.config.num_gpus is not None:
            return self.config.num_gpus
        return 1.0 if self.config.device.startswith("cuda") else 0.0

    def describe(self) -> str:
        c = self.config
        return f"transformers in-process {c.model} (AutoModelForImageTextToText, device {c.device}, dtype {c.dtype}, batch {c.batch_size})"

    def _images_kwargs(self) -> dict[str, Any]:
        if self.config.max_patches is None:
            return {}
        return {"max_patches": self.config.max_patches, "crop_to_patches": self.config.max_patches > 1}

    def chat(self, reqs: list[ChatRequest]) -> list[ChatResult]:
        if not hasattr(self, "model"):
            self.setup()
        out: list[ChatResult] = []
        bs = self.config.batch_size
        for start in range(0, len(reqs), bs):
            chunk = reqs[start : start + bs]
            try:
                out.extend(self._generate(chunk))
            except (RuntimeError, ValueError, TypeError, IndexError) as e:
                # a failed batch (OOM, a processor refusing an input) falls back; it does not end the run
                log.warning("transformers generate failed for %d requests: %s: %s", len(chunk), type(e).__name__, e)
                out.extend(ChatResult(None, f"backend_error:{type(e).__name__}") for _ in chunk)
        return out

    def _generate(self, chunk: list[ChatRequest]) -> list[ChatResult]:
        import torch
        from PIL import Image

        c = self.config
        texts = self.processor.apply_chat_template([hf_messages(r) for r in chunk], add_generation_prompt=True, tokenize=False)
        images = [Image.fromarray(downscale(im, c.image_max_side)) for r in chunk for im in r.images]
        kwargs: dict[str, Any] = {"text": texts, "return_tensors": "pt", "padding": True}
        if images:
            kwargs["images"] = images
            kwargs.update(self._images_kwargs())
        enc = self.processor(**kwargs).to(self.device)
        if "pixel_values" in enc:
            enc["pixel_values"] = enc["pixel_values"].to(self.model.dtype)
        max_new = max(r.max_new_tokens or c.max_new_tokens for r in chunk)
        gen: dict[str, Any] = {"max_new_tokens": max_new, "do_sample": c.temperature > 0}
        if c.temperature > 0:
            gen["temperature"] = c.temperature
            torch.manual_seed(chunk[0].seed % (2**31))
        tok = self.processor.tokenizer
        with torch.inference_mode():
            ids = self.model.generate(**enc, **gen, pad_token_id=tok.pad_token_id)
        new = ids[:, enc["input_ids"].shape[1] :]
        return [ChatResult(t, "") for t in self.processor.batch_decode(new, skip_special_tokens=True)]
