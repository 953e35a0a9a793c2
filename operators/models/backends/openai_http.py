"""Any OpenAI-compatible chat endpoint (`vllm serve`, TGI, a hosted API): concurrent requests up to a limit,
a timeout per attempt, retries with exponential backoff and jitter, and a circuit breaker for a dead endpoint."""

from __future__ import annotations

import base64
import logging
import os
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import requests

from operators.models.backends.base import ChatBackend, ChatRequest, ChatResult, downscale

log = logging.getLogger(__name__)

RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}


def data_url(image: np.ndarray, max_side: int, lossless: bool = False) -> str:
    """The image as a data URL: JPEG (quality 90) by default, PNG when the stage asks for lossless images."""
    from datagen.shards.codec import encode_image

    if lossless:
        png = encode_image(downscale(image, max_side), "png", 90)
        return "data:image/png;base64," + base64.b64encode(png).decode()
    jpg = encode_image(downscale(image, max_side), "jpg", 90)
    return "data:image/jpeg;base64," + base64.b64encode(jpg).decode()


def openai_messages(req: ChatRequest, max_side: int) -> list[dict[str, Any]]:
    """The request as OpenAI chat messages: the user turn is a list of text and image_url parts, in order."""
    content = []
    for part in req.parts:
        if isinstance(part, str):
            if part:
                content.append({"type": "text", "text": part})
        else:
            content.append({"type": "image_url", "image_url": {"url": data_url(part, max_side, req.lossless)}})
    msgs: list[dict[str, Any]] = []
    if req.system:
        msgs.append({"role": "system", "content": req.system})
    if all(c["type"] == "text" for c in content):
        msgs.append({"role": "user", "content": "".join(c["text"] for c in content)})
    else:
        msgs.append({"role": "user", "content": content})
    return msgs


class _Breaker:
    """Stop hammering an endpoint that keeps failing: after `limit` consecutive failed requests, fail fast
    for `cooldown` seconds, then let requests through again."""

    def __init__(self, limit: int, cooldown: float):
        self.limit, self.cooldown = limit, cooldown
        self.failures = 0
        self.open_until = 0.0
        self.lock = threading.Lock()

    def is_open(self) -> bool:
        with self.lock:
            return time.monotonic() < self.open_until

    def record(self, ok: bool) -> None:
        with self.lock:
            if ok:
                self.failures = 0
                return
            self.failures += 1
            if self.failures >= self.limit:
                self.open_until = time.monotonic() + self.cooldown
                self.failures = 0
                log.warning("endpoint failed %d requests in a row; not calling it for %.0fs", self.limit, self.cooldown)


class OpenAIBackend(ChatBackend):
    def unavailable_reason(self) -> str | None:
        if not self.config.base_url:
            return "openai backend: no base_url set (e.g. http://host:8000/v1 of `vllm serve`)"
        return super().unavailable_reason()

    def setup(self) -> None:
        self.url = self.config.base_url.rstrip("/") + "/chat/completions"
        key = os.environ.get(self.config.api_key_env, "") if self.config.api_key_env else ""
        self.headers = {"Content-Type": "application/json"}
        if key:
            self.headers["Authorization"] = f"Bearer {key}"
        self.breaker = _Breaker(self.config.circuit_breaker, self.config.cooldown_s)
        self._local = threading.local()  # one requests.Session per thread: sessions are not thread-safe
        self.pool = ThreadPoolExecutor(max_workers=self.config.concurrency, thread_name_prefix="openai-chat")

    def describe(self) -> str:
        c = self.config
        return (
            f"openai-compatible endpoint {c.base_url} model {c.model} (concurrency {c.concurrency}, timeout "
            f"{c.timeout_s}s, {c.max_retries} retries)"
        )

    def _session(self) -> requests.Session:
        s = getattr(self._local, "session", None)
        if s is None:
            s = self._local.session = requests.Session()
        return s

    def chat(self, reqs: list[ChatRequest]) -> list[ChatResult]:
        if not hasattr(self, "pool"):
            self.setup()
        return list(self.pool.map(self._one, reqs))

    def _attempt(self, body: dict[str, Any]) -> tuple[str | None, str, bool, str]:
        """(text, error, retryable, the endpoint's own words for the error) of one HTTP attempt."""
        c = self.config
        try:
            r = self._session().post(
                self.url, json=body, headers=self.headers, timeout=(min(10.0, c.timeout_s), c.timeout_s)
            )
        except requests.Timeout as e:
            return None, "timeout", True, str(e)
        except requests.ConnectionError as e:
            return None, "connection", True, str(e)
        except requests.RequestException as e:
            return None, f"request_error:{type(e).__name__}", True, str(e)
        if r.status_code != 200:
            said = r.text[:300]
            if r.status_code == 400 and "context length" in said.lower():  # vllm serve, OpenAI: the prompt is too long
                return None, "prompt_too_long", False, said
            return None, f"http_{r.status_code}", r.status_code in RETRY_STATUS, said
        try:
            payload = r.json()
        except ValueError:
            return None, "malformed_json", True, r.text[:300]
        try:
            text = payload["choices"][0]["message"]["content"]
        except (KeyError, IndexError, TypeError):
            return None, "malformed_response", True, r.text[:300]
        if not isinstance(text, str):
            return None, "malformed_response", True, r.text[:300]
        return text, "", False, ""

    def _one(self, req: ChatRequest) -> ChatResult:
        c = self.config
        if self.breaker.is_open():
            return ChatResult(None, "backend_unavailable", attempts=0, detail=f"circuit breaker open for {c.base_url}")
        body = {
            "model": c.model,
            "messages": openai_messages(req, c.image_max_side),
            "max_tokens": req.max_new_tokens or c.max_new_tokens,
            "temperature": c.temperature,
            "seed": int(req.seed % (2**31)),
        }
        jitter = random.Random(req.seed)  # delays only; the answer does not depend on it
        error = detail = ""
        for attempt in range(c.max_retries + 1):
            text, error, retryable, detail = self._attempt(body)
            if text is not None:
                self.breaker.record(True)
                return ChatResult(text, "", attempts=attempt + 1)
            if not retryable or attempt == c.max_retries or self.breaker.is_open():
                break
            delay = min(c.max_backoff_s, c.backoff_s * (2**attempt))
            time.sleep(delay * (0.5 + 0.5 * jitter.random()))
        self.breaker.record(False)
        return ChatResult(None, error, attempts=attempt + 1, detail=f"{self.url}: {detail}" if detail else self.url)
