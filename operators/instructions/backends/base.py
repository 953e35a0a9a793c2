"""The backend interface: ChatRequest (ordered text and image parts) in, ChatResult (text, or the reason there
is none) out, one per request and in order. A backend never raises for one bad request; the stage falls back."""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Literal, Optional, Union

import numpy as np
from pydantic import Field, model_validator

from datagen.config import Section

Part = Union[str, np.ndarray]  # text, or an HxWx3 uint8 RGB image


class BackendConfig(Section):
    kind: Literal["transformers", "openai", "vllm"] = Field(
        "transformers", description="transformers: in-process (CPU/GPU); openai: an OpenAI-compatible HTTP endpoint such as `vllm serve`; vllm: in-process vLLM engine"
    )
    model: str = Field("", description="local checkpoint dir or hub id (transformers, vllm); the served model name (openai)")
    base_url: str = Field("", description="openai: endpoint root, e.g. http://host:8000/v1")
    api_key_env: str = Field("OPENAI_API_KEY", description="openai: environment variable holding the API key, if any")
    timeout_s: float = Field(60.0, gt=0, description="openai: seconds per attempt before it counts as a timeout")
    max_retries: int = Field(3, ge=0, description="openai: retries after a timeout, dropped connection, 429/5xx or malformed answer")
    backoff_s: float = Field(1.0, ge=0, description="openai: first retry delay; doubles per retry, with jitter")
    max_backoff_s: float = Field(30.0, ge=0)
    concurrency: int = Field(8, ge=1, description="openai: requests in flight per worker")
    circuit_breaker: int = Field(32, ge=1, description="openai: consecutive failed requests after which a worker stops calling for cooldown_s")
    cooldown_s: float = Field(30.0, ge=0)
    batch_size: int = Field(16, ge=1, description="requests handed to the backend at once")
    max_new_tokens: int = Field(160, ge=1)
    temperature: float = Field(0.0, ge=0)
    image_max_side: int = Field(896, ge=16, description="images are downscaled to this long side before they are sent")
    # in-process engines
    dtype: Literal["auto", "bfloat16", "float16", "float32"] = "auto"
    device: str = Field("auto", description="transformers: cpu, cuda, cuda:1, or auto")
    max_patches: Optional[int] = Field(None, ge=1, description="InternVL dynamic tiles per image (transformers); None keeps the checkpoint's setting")
    tensor_parallel_size: int = Field(1, ge=1, description="vllm: GPUs per engine")
    gpu_memory_utilization: float = Field(0.9, gt=0, le=1)
    max_model_len: Optional[int] = Field(8192, ge=256)
    trust_remote_code: bool = Field(False, description="needed for original (non -hf) InternVL checkpoints under vLLM")
    num_gpus: Optional[float] = Field(None, ge=0, description="GPUs per actor; default tensor_parallel_size for vllm, 0 otherwise")
    num_cpus: float = Field(1.0, gt=0)
    actors: Optional[int] = Field(None, ge=1, description="actor pool size (None: the runtime's default)")

    @model_validator(mode="after")
    def _check(self):
        if self.kind == "openai" and self.base_url and not self.base_url.startswith(("http://", "https://")):
            raise ValueError(f"base_url must start with http:// or https://, got {self.base_url!r}")
        return self


@dataclass
class ChatRequest:
    parts: list[Part]  # the user message: text and images, in order
    system: str = ""
    max_new_tokens: Optional[int] = None  # None: the backend's config
    seed: int = 0

    @property
    def images(self) -> list[np.ndarray]:
        return [p for p in self.parts if isinstance(p, np.ndarray)]


@dataclass
class ChatResult:
    text: Optional[str] = None
    error: str = ""  # reason when text is None: timeout, connection, http_500, malformed_json, backend_error:...
    attempts: int = 1
    extra: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.text is not None


class ChatBackend:
    """Base of the three backends: setup() on the worker loads or connects; chat() answers a list of requests."""

    def __init__(self, config: BackendConfig):
        self.config = config

    def unavailable_reason(self) -> str | None:
        if not self.config.model:
            return f"{self.config.kind} backend: no model set (a local checkpoint dir, a hub id or a served model name)"
        return None

    def setup(self) -> None:
        pass

    def chat(self, requests: list[ChatRequest]) -> list[ChatResult]:
        raise NotImplementedError

    def num_gpus(self) -> float:
        return self.config.num_gpus if self.config.num_gpus is not None else 0.0

    def describe(self) -> str:
        return f"{self.config.kind} {self.config.model}"


_KINDS = {
    "openai": "operators.instructions.backends.openai_http:OpenAIBackend",
    "transformers": "operators.instructions.backends.transformers_local:TransformersBackend",
    "vllm": "operators.instructions.backends.vllm_local:VLLMBackend",
}


def make_backend(config: BackendConfig) -> ChatBackend:
    module, _, cls = _KINDS[config.kind].partition(":")
    return getattr(importlib.import_module(module), cls)(config)


def downscale(image: np.ndarray, max_side: int) -> np.ndarray:
    """Keep request sizes bounded: the model sees at most max_side pixels on the long side."""
    h, w = image.shape[:2]
    if max(h, w) <= max_side:
        return image
    import cv2

    s = max_side / max(h, w)
    return cv2.resize(image, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)
