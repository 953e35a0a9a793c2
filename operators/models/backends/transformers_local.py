"""transformers in-process, batched left-padded generation from a local dir or hub id, for both kinds of model:
- image_text: AutoProcessor + AutoModelForImageTextToText (InternVL is native: InternVLForConditionalGeneration);
- text: AutoTokenizer (its chat template) + AutoModelForCausalLM, e.g. a Qwen2.5 instruct rewriter.
The kind comes from `modality` or the checkpoint's config.json. `device: auto` means CUDA only where Ray gave the
actor a GPU (datagen.devices): with num_gpus unset the stage asks for one GPU where the cluster has GPUs, and runs
in bf16 there. A prompt longer than the model's context is refused before its batch is generated (prompt_too_long)."""

from __future__ import annotations

import logging
from typing import Any

from datagen.devices import resolve_device
from operators.models.backends.base import (
    ChatBackend,
    ChatRequest,
    ChatResult,
    downscale,
    generate_in_batches,
    too_long,
)

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


def text_messages(req: ChatRequest) -> list[dict[str, str]]:
    """The request for a text LLM's chat template: plain string contents (what Qwen2.5, Llama, ... templates expect)."""
    if req.images:
        raise ValueError("a text-only model cannot take images")
    msgs = [{"role": "system", "content": req.system}] if req.system else []
    msgs.append({"role": "user", "content": "".join(p for p in req.parts if isinstance(p, str))})
    return msgs


def resolve_dtype(dtype: str, device: str):
    import torch

    if dtype == "auto":  # fp32 on CUDA would double the memory of a 7B VLM and halve its speed
        if not device.startswith("cuda"):
            return torch.float32
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return getattr(torch, dtype)


def load_model(
    path: str, device: str = "auto", dtype: str = "auto", trust_remote_code: bool = False, modality: str = "image_text"
):
    """(processor, model) through transformers' normal loaders; for modality "text" the processor is the tokenizer.
    The finetune command uses the same path (image_text)."""
    import transformers

    dev = resolve_device(device)
    if modality == "text":
        processor = transformers.AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
        model_cls = transformers.AutoModelForCausalLM
    else:
        processor = transformers.AutoProcessor.from_pretrained(path, trust_remote_code=trust_remote_code)
        model_cls = transformers.AutoModelForImageTextToText
    model = model_cls.from_pretrained(path, dtype=resolve_dtype(dtype, dev), trust_remote_code=trust_remote_code)
    model.to(dev).eval()
    return processor, model


class TransformersBackend(ChatBackend):
    def setup(self) -> None:
        c = self.config
        self.modality = self.model_modality()
        self.device = resolve_device(c.device)
        try:
            self.processor, self.model = load_model(c.model, self.device, c.dtype, c.trust_remote_code, self.modality)
        except (OSError, ValueError, KeyError) as e:
            loader = "AutoModelForCausalLM" if self.modality == "text" else "AutoModelForImageTextToText"
            raise ValueError(
                f"{self.key}.model={c.model!r}: cannot load it as a {self.modality} model ({loader}): "
                f"{type(e).__name__}: {e}"
            ) from e
        tok = self.processor if self.modality == "text" else self.processor.tokenizer
        if not getattr(self.processor, "chat_template", None) and not getattr(tok, "chat_template", None):
            raise ValueError(f"{self.key}.model={c.model!r} has no chat template; use an instruct/chat checkpoint")
        tok.padding_side = "left"  # generation continues from the right end of every row
        if tok.pad_token is None:
            tok.pad_token = tok.eos_token
        self.tokenizer = tok
        log.info("transformers backend (%s): %s on %s", self.modality, type(self.model).__name__, self.device)

    def num_gpus(self) -> float:
        if self.config.num_gpus is not None:
            return self.config.num_gpus
        return 1.0 if self.config.device.startswith("cuda") else 0.0

    def gpus_if_available(self) -> float:
        # device auto and no num_gpus: a GPU where the cluster has one (Ray hides CUDA from an actor given none)
        return 1.0 if self.config.num_gpus is None and self.config.device == "auto" else 0.0

    def context_limit(self) -> int | None:
        """The most tokens a prompt and its answer may take: max_model_len, or less where the model's position
        embeddings end (a longer sequence runs past what the model was built for)."""
        cfg = self.model.config
        text = cfg.get_text_config() if hasattr(cfg, "get_text_config") else cfg
        limits = [n for n in (self.config.max_model_len, getattr(text, "max_position_embeddings", None)) if n]
        return min(limits) if limits else None

    def describe(self) -> str:
        c = self.config
        kind = {"text": "AutoModelForCausalLM", "image_text": "AutoModelForImageTextToText"}.get(
            getattr(self, "modality", c.modality), "text or image-text model by its config"
        )
        return f"transformers in-process {c.model} ({kind}, device {c.device}, dtype {c.dtype}, batch {c.batch_size})"

    def _images_kwargs(self) -> dict[str, Any]:
        if self.config.max_patches is None:
            return {}
        return {"max_patches": self.config.max_patches, "crop_to_patches": self.config.max_patches > 1}

    def chat(self, reqs: list[ChatRequest]) -> list[ChatResult]:
        if not hasattr(self, "model"):
            self.setup()
        out: list[ChatResult | None] = [None] * len(reqs)
        todo = list(range(len(reqs)))
        if self.modality == "text":  # a request with images cannot go to a text model: that one falls back
            for k in todo:
                if reqs[k].images:
                    out[k] = ChatResult(None, "images_for_text_model")
            todo = [k for k in todo if out[k] is None]
        generate_in_batches(self._generate, reqs, todo, self.config.batch_size, out, "transformers backend")
        return out  # type: ignore[return-value]

    def _encode(self, chunk: list[ChatRequest]):
        c = self.config
        if self.modality == "text":
            tok = self.tokenizer
            texts = [
                tok.apply_chat_template(text_messages(r), add_generation_prompt=True, tokenize=False) for r in chunk
            ]
            # the chat template already wrote any special tokens the model wants
            return tok(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(self.device)
        from PIL import Image

        texts = self.processor.apply_chat_template(
            [hf_messages(r) for r in chunk], add_generation_prompt=True, tokenize=False
        )
        images = [Image.fromarray(downscale(im, c.image_max_side)) for r in chunk for im in r.images]
        kwargs: dict[str, Any] = {"text": texts, "return_tensors": "pt", "padding": True}
        if images:
            kwargs["images"] = images
            kwargs.update(self._images_kwargs())
        enc = self.processor(**kwargs).to(self.device)
        if "pixel_values" in enc:
            enc["pixel_values"] = enc["pixel_values"].to(self.model.dtype)
        return enc

    def _generate(self, chunk: list[ChatRequest]) -> list[ChatResult]:
        import torch

        c = self.config
        enc = self._encode(chunk)
        # an over-long prompt is refused before generation: it costs itself, not the rest of the chunk
        lengths = enc["attention_mask"].sum(dim=1).tolist()
        limit = self.context_limit()
        refused = [too_long(int(n), r.max_new_tokens or c.max_new_tokens, limit) for n, r in zip(lengths, chunk)]
        if any(refused):
            keep = [k for k, bad in enumerate(refused) if bad is None]
            answered = iter(self._generate([chunk[k] for k in keep]) if keep else [])
            return [bad if bad is not None else next(answered) for bad in refused]
        max_new = max(r.max_new_tokens or c.max_new_tokens for r in chunk)
        gen: dict[str, Any] = {"max_new_tokens": max_new, "do_sample": c.temperature > 0}
        if c.temperature > 0:
            gen["temperature"] = c.temperature
            torch.manual_seed(chunk[0].seed % (2**31))
        tok = self.tokenizer
        with torch.inference_mode():
            ids = self.model.generate(**enc, **gen, pad_token_id=tok.pad_token_id)
        new = ids[:, enc["input_ids"].shape[1] :]
        return [ChatResult(t, "") for t in tok.batch_decode(new, skip_special_tokens=True)]
