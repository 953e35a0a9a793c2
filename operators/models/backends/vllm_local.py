"""vLLM in-process, for GPU clusters: one engine per Ray actor, `tensor_parallel_size` GPUs each, batched
`LLM.chat` with the OpenAI message format. vllm is an optional import (`pip install 'datagen[vllm]'`).

The engine and sampling arguments are built by pure functions (`engine_kwargs`, `sampling_kwargs`) so that what
reaches vLLM is testable without vLLM: a text-only model, or a stage that sends no images (the rewriter), gets no
multimodal argument at all; several vLLM versions refuse `limit_mm_per_prompt` for a text-only model.

vLLM refuses a whole `LLM.chat` call when one prompt is longer than max_model_len; prompts are measured first (their
text through the engine's tokenizer and chat template: a lower bound, images add to it) so that one over-long prompt
is refused alone (prompt_too_long) and the others of its batch are answered."""

from __future__ import annotations

import importlib.util
import logging
from typing import Any

from operators.models.backends.base import (
    BackendConfig,
    ChatBackend,
    ChatRequest,
    ChatResult,
    generate_in_batches,
    too_long,
)
from operators.models.backends.openai_http import openai_messages

log = logging.getLogger(__name__)

# engine arguments that only make sense for a model with a vision part
MULTIMODAL_ENGINE_KWARGS = (
    "limit_mm_per_prompt",
    "mm_processor_kwargs",
    "mm_processor_cache_gb",
    "disable_mm_preprocessor_cache",
)


def engine_kwargs(c: BackendConfig, multimodal: bool) -> dict[str, Any]:
    """Keyword arguments of `vllm.LLM(...)` for this backend config; multimodal: the stage sends images and the
    model has a vision part (VLLMBackend.engine_kwargs decides)."""
    kwargs: dict[str, Any] = dict(
        model=c.model,
        tensor_parallel_size=c.tensor_parallel_size,
        gpu_memory_utilization=c.gpu_memory_utilization,
        trust_remote_code=c.trust_remote_code,
        seed=0,
    )
    if multimodal:
        kwargs["limit_mm_per_prompt"] = {"image": c.max_images}
    if c.max_model_len:
        kwargs["max_model_len"] = c.max_model_len
    if c.dtype != "auto":
        kwargs["dtype"] = c.dtype
    if c.tensor_parallel_size > 1:
        # inside a Ray actor that already holds the GPUs, vLLM's workers are local processes
        kwargs["distributed_executor_backend"] = "mp"
    return kwargs


def sampling_kwargs(c: BackendConfig, req: ChatRequest) -> dict[str, Any]:
    """Keyword arguments of `vllm.SamplingParams(...)` for one request (seeded per request: reproducible)."""
    return dict(
        max_tokens=req.max_new_tokens or c.max_new_tokens, temperature=c.temperature, seed=int(req.seed % (2**31))
    )


def text_tokens(tokenizer: Any, req: ChatRequest) -> int:
    """Tokens of the request's text parts in the chat template, images left out: what the prompt takes at least."""
    msgs = [{"role": "system", "content": req.system}] if req.system else []
    msgs.append({"role": "user", "content": "".join(p for p in req.parts if isinstance(p, str))})
    return len(tokenizer.apply_chat_template(msgs, add_generation_prompt=True, tokenize=True))


def refuse_too_long(tokenizer: Any, reqs: list[ChatRequest], limit: int | None) -> list[ChatResult | None]:
    """Per request: its prompt_too_long result, or None when its text fits (or cannot be measured: the engine says)."""
    out: list[ChatResult | None] = []
    for r in reqs:
        try:
            n = text_tokens(tokenizer, r)
        except Exception as e:  # noqa: BLE001 - a template that cannot render text alone: let the engine judge it
            log.debug("cannot measure a prompt before the call (%s: %s)", type(e).__name__, e)
            out.append(None)
            continue
        # vLLM refuses a prompt that leaves no room for an answer, and cuts a long answer at the limit itself
        out.append(too_long(n, 1, limit))
    return out


class VLLMBackend(ChatBackend):
    def unavailable_reason(self) -> str | None:
        if importlib.util.find_spec("vllm") is None:
            return (
                "vllm backend: vllm is not installed (install datagen[vllm] in the GPU image, or serve the model "
                "with `vllm serve` and use kind: openai)"
            )
        return super().unavailable_reason()

    def num_gpus(self) -> float:
        if self.config.num_gpus is not None:
            return self.config.num_gpus
        return float(self.config.tensor_parallel_size)

    def whole_gpus(self) -> bool:
        return True  # gpu_memory_utilization is a share of each whole GPU's memory: no other model may sit there

    def describe(self) -> str:
        c = self.config
        return (
            f"vLLM in-process {c.model} (tensor_parallel_size {c.tensor_parallel_size}, gpu_memory_utilization "
            f"{c.gpu_memory_utilization})"
        )

    def engine_kwargs(self) -> dict[str, Any]:
        """What `setup` hands to `vllm.LLM`: the model's modality is read only when the stage sends images."""
        multimodal = self.images and self.model_modality() == "image_text"
        return engine_kwargs(self.config, multimodal)

    def setup(self) -> None:
        from vllm import LLM

        kwargs = self.engine_kwargs()
        self.llm = LLM(**kwargs)
        log.info(
            "vLLM engine ready: %s (%s)",
            self.describe(),
            "image-text" if "limit_mm_per_prompt" in kwargs else "text only",
        )

    def chat(self, reqs: list[ChatRequest]) -> list[ChatResult]:
        from vllm import SamplingParams

        if not hasattr(self, "llm"):
            self.setup()
        c = self.config

        def generate(chunk: list[ChatRequest]) -> list[ChatResult]:
            msgs = [openai_messages(r, c.image_max_side) for r in chunk]
            params = [SamplingParams(**sampling_kwargs(c, r)) for r in chunk]
            results = self.llm.chat(msgs, sampling_params=params, use_tqdm=False)
            texts = [res.outputs[0].text if res.outputs else None for res in results]
            return [ChatResult(t, "" if t is not None else "empty_answer") for t in texts]

        try:
            limit = self.llm.llm_engine.model_config.max_model_len
        except AttributeError:  # an engine without this attribute path: the recipe's length
            limit = c.max_model_len
        out: list[ChatResult | None] = refuse_too_long(self.llm.get_tokenizer(), reqs, limit)
        todo = [k for k, r in enumerate(out) if r is None]
        generate_in_batches(generate, reqs, todo, c.batch_size, out, "vllm backend")
        return out  # type: ignore[return-value]
