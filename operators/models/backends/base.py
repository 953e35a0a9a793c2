"""The backend interface: ChatRequest (ordered text and image parts) in, ChatResult (text, or the reason there
is none) out, one per request and in order. A backend never raises for one bad request; the stage falls back, and
a FailureBudget stops the job when more requests fail than the recipe allows (the engine, not a request, is broken)."""

from __future__ import annotations

import importlib
import logging
import math
import os
from dataclasses import dataclass, field
from typing import Any, Callable, Literal, Optional, Union

import numpy as np
from pydantic import Field, model_validator

from datagen.config import Section
from datagen.isolation import BACKEND_ERROR, BackendBroken, describe_error, isolate
from datagen.operator import Resources

log = logging.getLogger(__name__)

Part = Union[str, np.ndarray]  # text, or an HxWx3 uint8 RGB image


class BackendConfig(Section):
    kind: Literal["transformers", "openai", "vllm"] = Field(
        "transformers",
        description="transformers: in-process (CPU/GPU); openai: an OpenAI-compatible HTTP endpoint such as `vllm "
        "serve`; vllm: in-process vLLM engine",
    )
    model: str = Field(
        "", description="local checkpoint dir or hub id (transformers, vllm); the served model name (openai)"
    )
    modality: Literal["auto", "text", "image_text"] = Field(
        "auto",
        description="transformers, vllm: text (a chat LLM: AutoModelForCausalLM + the tokenizer's chat template) or "
        "image_text (AutoProcessor + AutoModelForImageTextToText); auto reads the checkpoint's config.json",
    )
    base_url: str = Field("", description="openai: endpoint root, e.g. http://host:8000/v1")
    api_key_env: str = Field("OPENAI_API_KEY", description="openai: environment variable holding the API key, if any")
    timeout_s: float = Field(60.0, gt=0, description="openai: seconds per attempt before it counts as a timeout")
    max_retries: int = Field(
        3, ge=0, description="openai: retries after a timeout, dropped connection, 429/5xx or malformed answer"
    )
    backoff_s: float = Field(1.0, ge=0, description="openai: first retry delay; doubles per retry, with jitter")
    max_backoff_s: float = Field(30.0, ge=0)
    concurrency: int = Field(8, ge=1, description="openai: requests in flight per worker")
    circuit_breaker: int = Field(
        32, ge=1, description="openai: consecutive failed requests after which a worker stops calling for cooldown_s"
    )
    cooldown_s: float = Field(30.0, ge=0)
    batch_size: int = Field(16, ge=1, description="requests handed to the backend at once")
    max_new_tokens: int = Field(160, ge=1)
    temperature: float = Field(0.0, ge=0)
    image_max_side: int = Field(896, ge=16, description="images are downscaled to this long side before they are sent")
    # in-process engines
    dtype: Literal["auto", "bfloat16", "float16", "float32"] = "auto"
    device: str = Field(
        "auto",
        description="transformers: cpu, cuda, cuda:1, or auto (CUDA only when Ray gave the actor a GPU: set num_gpus)",
    )
    max_patches: Optional[int] = Field(
        None, ge=1, description="InternVL dynamic tiles per image (transformers); None keeps the checkpoint's setting"
    )
    tensor_parallel_size: int = Field(1, ge=1, description="vllm: GPUs per engine")
    gpu_memory_utilization: float = Field(0.9, gt=0, le=1)
    max_model_len: Optional[int] = Field(
        8192,
        ge=256,
        description="the context in tokens: vllm's engine length; transformers refuses (per request, counted as "
        "prompt_too_long) a prompt whose tokens plus max_new_tokens exceed this or the model's position limit",
    )
    max_images: int = Field(
        4,
        ge=1,
        description="vllm: images per prompt an image-text model is prepared for (limit_mm_per_prompt); text-only "
        "models and stages get no multimodal arguments",
    )
    trust_remote_code: bool = Field(False, description="needed for original (non -hf) InternVL checkpoints under vLLM")
    num_gpus: Optional[float] = Field(
        None, ge=0, description="GPUs per actor; default tensor_parallel_size for vllm, 0 otherwise"
    )
    num_cpus: float = Field(1.0, gt=0)
    actors: Optional[int] = Field(None, ge=1, description="actor pool size (None: the runtime's default)")
    # when the engine, not a request, is broken: the job stops (datagen.isolation.BackendBroken); not part of a key
    max_failure_rate: Optional[float] = Field(
        0.05,
        ge=0,
        le=1,
        description="the job stops when more than this share of a partition's requests to this backend fail (a "
        "partition may always lose one); None: never",
    )
    max_consecutive_failures: Optional[int] = Field(
        20, ge=1, description="the job stops after this many failed requests in a row within a partition; None: never"
    )

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
    lossless: bool = False  # images travel as PNG, not JPEG (the judge: a JPEG round trip moves its scores)

    @property
    def images(self) -> list[np.ndarray]:
        return [p for p in self.parts if isinstance(p, np.ndarray)]


@dataclass
class ChatResult:
    text: Optional[str] = None
    error: str = ""  # reason when text is None: timeout, connection, http_500, prompt_too_long, backend_error:...
    attempts: int = 1
    detail: str = ""  # the engine's own words for the failure (exception, HTTP body), for the log and BackendBroken
    extra: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.text is not None


class ChatBackend:
    """Base of the three backends: setup() on the worker loads or connects; chat() answers a list of requests.
    `images` says whether the stage sends images through this backend (a rewriter sends none); `key` is the recipe
    key of this backend's config, used in error messages."""

    def __init__(self, config: BackendConfig, *, images: bool = True, key: str = "backend"):
        self.config = config
        self.images = images
        self.key = key

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

    def gpus_if_available(self) -> float:
        """GPUs per actor where the cluster has any and num_gpus is unset (a model that runs on CPU too)."""
        return 0.0

    def resources(self, batch_size: Optional[int] = None) -> Resources:
        """What the stage's actors ask Ray for: this backend's placement keys; `batch_size` of the stage's chunks."""
        c = self.config
        return Resources(
            num_cpus=c.num_cpus,
            num_gpus=self.num_gpus(),
            gpus_if_available=self.gpus_if_available(),
            batch_size=batch_size or c.batch_size,
            concurrency=c.actors,
            whole_gpus=self.whole_gpus(),
        )

    def whole_gpus(self) -> bool:
        """Whether the engine needs its GPUs to itself (see Resources.whole_gpus)."""
        return False

    def describe(self) -> str:
        return f"{self.config.kind} {self.config.model}"

    def model_modality(self) -> str:
        """ "text" or "image_text" for this backend's checkpoint (in-process engines); a stage that sends images
        to a text-only model is a recipe error, said with its key."""
        modality = checkpoint_modality(self.config, self.key)
        if modality == "text" and self.images:
            raise ValueError(
                f"{self.key}.model={self.config.model!r} is a text-only model, but this stage sends images; use "
                f"an image-text model (or set {self.key}.modality: image_text if its config is misread)"
            )
        return modality


_KINDS = {
    "openai": "operators.models.backends.openai_http:OpenAIBackend",
    "transformers": "operators.models.backends.transformers_local:TransformersBackend",
    "vllm": "operators.models.backends.vllm_local:VLLMBackend",
}


def make_backend(config: BackendConfig, *, images: bool = True, key: str = "backend") -> ChatBackend:
    """The backend of `config.kind`; `images=False` for stages that send text only, `key` names the recipe key."""
    module, _, cls = _KINDS[config.kind].partition(":")
    return getattr(importlib.import_module(module), cls)(config, images=images, key=key)


# Which kind of model a checkpoint is -------------------------------------------------------------------------------
# keys of config.json that hold a vision tower (llava, Qwen2-VL, InternVL -hf and original, mllama, paligemma, ...)
VISION_KEYS = (
    "vision_config",
    "vision_tower",
    "visual",
    "vision_model",
    "mm_vision_tower",
    "img_processor",
    "vision_encoder",
)
IMAGE_TEXT_AUTO = ("AutoModelForImageTextToText", "AutoModelForVision2Seq")


def modality_from_config(cfg: dict[str, Any], has_image_processor: bool = False) -> Optional[str]:
    """ "image_text", "text" or None (neither) from a checkpoint's config.json as a dict. A vision part in the
    config (or an image processor beside it) means image-text; otherwise transformers' own auto-mappings decide
    (a model_type known to AutoModelForImageTextToText only -> image_text, known to AutoModelForCausalLM -> text);
    remote-code checkpoints are read from their auto_map."""
    if any(cfg.get(k) is not None for k in VISION_KEYS) or has_image_processor:
        return "image_text"
    model_type = str(cfg.get("model_type") or "")
    auto_map = cfg.get("auto_map") or {}
    try:
        from transformers.models.auto.modeling_auto import (
            MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
            MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES,
        )
    except ImportError:  # only the config itself to go by
        image_text, causal = {}, {}
    else:
        image_text, causal = MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES, MODEL_FOR_CAUSAL_LM_MAPPING_NAMES
    if model_type in causal or "AutoModelForCausalLM" in auto_map:
        return "text"  # no vision part: even a type both mappings know (gemma3, ...) is its text-only variant here
    if model_type in image_text or any(k in auto_map for k in IMAGE_TEXT_AUTO):
        return "image_text"
    return None


def read_checkpoint_config(path: str) -> tuple[dict[str, Any], bool]:
    """(config.json as a dict, whether an image processor config sits beside it), without running remote code.
    A local dir is read directly; a hub id goes through transformers (the local cache when offline)."""
    import json

    if os.path.isdir(path):
        cfg_file = os.path.join(path, "config.json")
        if not os.path.exists(cfg_file):
            raise OSError(f"{path}: no config.json")
        with open(cfg_file) as f:
            cfg = json.load(f)
        return cfg, os.path.exists(os.path.join(path, "preprocessor_config.json"))
    from transformers import PretrainedConfig

    cfg, _ = PretrainedConfig.get_config_dict(path)
    return cfg, False


def checkpoint_modality(config: BackendConfig, key: str = "backend") -> str:
    """The backend's modality: the explicit `modality`, else what the checkpoint's config says. Raises a
    ValueError naming the recipe key when the config cannot be read or describes neither kind of model."""
    if config.modality != "auto":
        return config.modality
    try:
        cfg, has_proc = read_checkpoint_config(config.model)
    except (OSError, ValueError) as e:
        raise ValueError(
            f"{key}.model={config.model!r}: cannot read its config.json to tell a text LLM from an image-text "
            f"model ({type(e).__name__}: {e}); set {key}.modality to text or image_text"
        ) from e
    kind = modality_from_config(cfg, has_proc)
    if kind is None:
        raise ValueError(
            f"{key}.model={config.model!r}: model_type {cfg.get('model_type')!r} is neither an image-text model "
            f"(AutoModelForImageTextToText) nor a text LLM (AutoModelForCausalLM); set {key}.modality to text "
            "or image_text, or use another checkpoint"
        )
    return kind


def downscale(image: np.ndarray, max_side: int) -> np.ndarray:
    """Keep request sizes bounded: the model sees at most max_side pixels on the long side."""
    from datagen.imaging import fit_long_side

    return fit_long_side(image, max_side)[0]


def image_parts(images: list[np.ndarray]) -> list[Part]:
    """`Image-1: <img>\\nImage-2: <img>\\n` as ordered parts; the same layout as the exported human turn."""
    parts: list[Part] = []
    for i, im in enumerate(images):
        parts.extend([f"Image-{i + 1}: ", im, "\n"])
    return parts


def generate_in_batches(
    generate: Callable[[list[ChatRequest]], list[ChatResult]],
    reqs: list[ChatRequest],
    todo: list[int],
    batch_size: int,
    out: list[Optional[ChatResult]],
    stage: str,
) -> None:
    """Answer the requests `todo` (indices into `reqs`) into `out`, `batch_size` at a time. A failed batch (OOM, a
    processor refusing an input) is retried request by request; a request that fails alone gets a BACKEND_ERROR
    result, so its stage keeps the template: it does not end the run."""
    for start in range(0, len(todo), batch_size):
        runs, failed = isolate(
            lambda ks: generate([reqs[k] for k in ks]),
            todo[start : start + batch_size],
            stage=stage,
            code=BACKEND_ERROR,
            uri=lambda k: f"request {k}",
        )
        for ks, results in runs:
            for k, r in zip(ks, results):
                out[k] = r
        for f in failed:
            out[f.item] = ChatResult(None, f.reason, detail=describe_error(f.error))


def too_long(n_tokens: int, max_new_tokens: int, limit: Optional[int]) -> Optional[ChatResult]:
    """The failed result of a prompt that cannot fit the model's context with its answer, None when it fits:
    checked before the call, so one over-long prompt never costs the other requests of its batch."""
    if limit is None or n_tokens + max_new_tokens <= limit:
        return None
    return ChatResult(
        None,
        "prompt_too_long",
        attempts=0,
        detail=f"prompt of {n_tokens} tokens + {max_new_tokens} new tokens exceeds the model's context of {limit}",
    )


class FailureBudget:
    """How many of one partition's requests to a backend may fail before the engine counts as broken: more than
    `max_failure_rate` of `total` (at least one may always fail) or `max_consecutive_failures` in a row. `record`
    raises BackendBroken, with the last failure's reason and the engine's own message, when either is passed."""

    def __init__(self, config: BackendConfig, total: int, stage: str, where: str = ""):
        self.config, self.total, self.stage, self.where = config, total, stage, where
        rate = config.max_failure_rate
        self.allowed = None if rate is None else max(1, math.floor(rate * total))
        self.failed = 0
        self.streak = 0

    def record(self, result: ChatResult) -> None:
        if result.ok:
            self.streak = 0
            return
        self.failed += 1
        self.streak += 1
        c = self.config
        why = ""
        if self.allowed is not None and self.failed > self.allowed:
            why = f"{self.failed} of {self.total} requests failed (max_failure_rate {c.max_failure_rate})"
        elif c.max_consecutive_failures is not None and self.streak >= c.max_consecutive_failures:
            why = f"{self.streak} requests in a row failed (max_consecutive_failures {c.max_consecutive_failures})"
        if why:
            engine = f"{result.error}: {result.detail}" if result.detail else result.error
            raise BackendBroken(
                f"{self.where}{self.stage}: the {c.kind} backend {c.model!r} is failing: {why}; last error: {engine}"
            )


def answers(
    backend: ChatBackend, reqs: list[ChatRequest], budget: Optional[FailureBudget] = None, stage: str = ""
) -> list[ChatResult]:
    """Every request's result, in order. A backend whose `chat` raises is retried request by request (a request
    that raises alone gets a failed result with the engine's message); each result is recorded in `budget`, which
    stops the job (BackendBroken) when the backend fails more than the recipe allows."""

    def chat(ks: list[int]) -> list[ChatResult]:
        results = backend.chat([reqs[k] for k in ks])
        if len(results) != len(ks):
            raise RuntimeError(f"backend returned {len(results)} results for {len(ks)} requests")
        return results

    if not reqs:
        return []
    runs, failed = isolate(
        chat,
        range(len(reqs)),
        stage=stage or backend.key,
        code=BACKEND_ERROR,
        uri=lambda k: f"request {k}",
        where=budget.where if budget is not None else "",
        give_up_after=backend.config.max_consecutive_failures,
    )
    out: list[Optional[ChatResult]] = [None] * len(reqs)
    for ks, results in runs:
        for k, r in zip(ks, results):
            out[k] = r
    for f in failed:
        out[f.item] = ChatResult(None, f.reason, detail=describe_error(f.error))
    if budget is not None:
        for r in out:
            budget.record(r)
    return out  # type: ignore[return-value]
