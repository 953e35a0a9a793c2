"""vLLM in-process, for GPU clusters: one engine per Ray actor, `tensor_parallel_size` GPUs each, batched
`LLM.chat` with the OpenAI message format. vllm is an optional import (`pip install 'datagen[vllm]'`)."""
from __future__ import annotations

import importlib.util
import logging

from operators.instructions.backends.base import ChatBackend, ChatRequest, ChatResult
from operators.instructions.backends.openai_http import openai_messages

log = logging.getLogger(__name__)


class VLLMBackend(ChatBackend):
    def unavailable_reason(self) -> str | None:
        if importlib.util.find_spec("vllm") is None:
            return "vllm backend: vllm is not installed (install datagen[vllm] in the GPU image, or serve the model with `vllm serve` and use kind: openai)"
        return super().unavailable_reason()

    def num_gpus(self) -> float:
        if self.config.num_gpus is not None:
            return self.config.num_gpus
        return float(self.config.tensor_parallel_size)

    def describe(self) -> str:
        c = self.config
        return f"vLLM in-process {c.model} (tensor_parallel_size {c.tensor_parallel_size}, gpu_memory_utilization {c.gpu_memory_utilization})"

    def setup(self) -> None:
        from vllm import LLM

        c = self.config
        kwargs = dict(
            model=c.model,
            tensor_parallel_size=c.tensor_parallel_size,
            gpu_memory_utilization=c.gpu_memory_utilization,
            trust_remote_code=c.trust_remote_code,
            limit_mm_per_prompt={"image": 4},
            seed=0,
        )
        if c.max_model_len:
            kwargs["max_model_len"] = c.max_model_len
        if c.dtype != "auto":
            kwargs["dtype"] = c.dtype
        if c.tensor_parallel_size > 1:
            # inside a Ray actor that already holds the GPUs, vLLM's workers are local processes
            kwargs["distributed_executor_backend"] = "mp"
        self.llm = LLM(**kwargs)
        log.info("vLLM engine ready: %s", self.describe())

    def chat(self, reqs: list[ChatRequest]) -> list[ChatResult]:
        from vllm import SamplingParams

        if not hasattr(self, "llm"):
            self.setup()
        c = self.config
        out: list[ChatResult] = []
        for start in range(0, len(reqs), c.batch_size):
            chunk = reqs[start : start + c.batch_size]
            msgs = [openai_messages(r, c.image_max_side) for r in chunk]
            params = [
                SamplingParams(max_tokens=r.max_new_tokens or c.max_new_tokens, temperature=c.temperature, seed=int(r.seed % (2**31)))
                for r in chunk
            ]
            try:
                results = self.llm.chat(msgs, sampling_params=params, use_tqdm=False)
            except (RuntimeError, ValueError) as e:
                log.warning("vLLM chat failed for %d requests: %s: %s", len(chunk), type(e).__name__, e)
                out.extend(ChatResult(None, f"backend_error:{type(e).__name__}") for _ in chunk)
                continue
            for res in results:
                text = res.outputs[0].text if res.outputs else None
                out.append(ChatResult(text, "" if text is not None else "empty_answer"))
        return out
