"""Fixtures for the instruction tests: a tiny InternVL (the real transformers architecture, random weights) and a
tiny Qwen2 text LLM, with a byte-level BPE tokenizer trained here on our own prompts and templates, saved and
loaded like any checkpoint."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipelines.rehearsal.tiny_language import build_tiny_internvl, build_tiny_qwen2_lm


@pytest.fixture(scope="session")
def tiny_internvl(tmp_path_factory) -> Path:
    return build_tiny_internvl(tmp_path_factory.mktemp("tiny_internvl"))


@pytest.fixture(scope="session")
def tiny_text_llm(tmp_path_factory) -> Path:
    return build_tiny_qwen2_lm(tmp_path_factory.mktemp("tiny_qwen2_lm"))


# A local OpenAI-compatible endpoint that misbehaves on purpose ------------------------------------------------------
KINDS = ("ok", "http500", "slow", "malformed", "drop", "unusable", "flaky")
BAD_KINDS = {"http500", "slow", "malformed", "drop", "unusable"}


class ChatServer:
    """Answers /v1/chat/completions on 127.0.0.1. The i-th distinct request body gets KINDS[i % len(KINDS)] for
    every attempt (so retries see the same behaviour), except `flaky`, which fails once with a 500 and then
    answers. `kinds` maps body digest -> kind, so a test knows how many requests had to fall back.
    `dead = True` answers 500 to everything (an engine that died; set it back to False to revive it); a request body
    over `max_body` bytes gets vLLM's 400 for a prompt longer than the model's context."""

    def __init__(self, slow_s: float = 1.5, kinds: tuple[str, ...] = KINDS, max_body: int | None = None):
        import hashlib
        import json
        import socket
        import threading
        import time
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.kinds: dict[str, str] = {}
        self.attempts: dict[str, int] = {}
        self.dead = False
        self.too_long = 0  # requests refused for their length
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # keep test output clean
                pass

            def _send(self, code: int, body: bytes, ctype: str = "application/json") -> None:
                try:
                    self.send_response(code)
                    self.send_header("Content-Type", ctype)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout): that is the point of a slow answer

            def do_POST(self):
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if server.dead:
                    return self._send(500, b'{"error": "CUDA error: an illegal memory access was encountered"}')
                if max_body is not None and len(raw) > max_body:
                    with server.lock:
                        server.too_long += 1
                    msg = (
                        "This model's maximum context length is 1024 tokens. However, you requested "
                        f"{len(raw) // 4} tokens in the messages. Please reduce the length of the messages."
                    )
                    return self._send(400, json.dumps({"object": "error", "message": msg}).encode())
                digest = hashlib.sha1(raw).hexdigest()
                with server.lock:
                    if digest not in server.kinds:
                        server.kinds[digest] = kinds[len(server.kinds) % len(kinds)]
                    kind = server.kinds[digest]
                    server.attempts[digest] = server.attempts.get(digest, 0) + 1
                    attempt = server.attempts[digest]
                    n = len(server.kinds)
                if kind == "http500" or (kind == "flaky" and attempt == 1):
                    return self._send(500, b'{"error": "internal"}')
                if kind == "slow":
                    time.sleep(slow_s)
                    return self._send(200, json.dumps(_completion(answer(json.loads(raw), n))).encode())
                if kind == "malformed":
                    return self._send(200, b'{"choices": [{"message": {"content": "trunc')
                if kind == "drop":
                    self.close_connection = True
                    try:
                        self.connection.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
                    return None
                if kind == "unusable":
                    return self._send(200, json.dumps(_completion("I'm sorry, I cannot help with that.")).encode())
                return self._send(200, json.dumps(_completion(answer(json.loads(raw), n))).encode())

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def bad(self) -> int:
        return sum(1 for k in self.kinds.values() if k in BAD_KINDS)

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _completion(text: str) -> dict:
    return {
        "id": "x",
        "object": "chat.completion",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}}],
    }


def _user_text(body: dict) -> str:
    content = body["messages"][-1]["content"]
    if isinstance(content, str):
        return content
    return "".join(c.get("text", "") for c in content if c["type"] == "text")


def answer(body: dict, n: int) -> str:
    """What a cooperative model would say to each of our prompts (n makes answers distinct)."""
    import json

    text = _user_text(body)
    if "Rewrite it in" in text:
        import numpy as np

        from operators.instructions.paraphrase import RuleParaphraser

        src = text.split("):\n", 1)[1].split("\n", 1)[0].strip()
        lines = RuleParaphraser().candidates(src, np.random.default_rng(n), 4)
        # numbered like a chat model would, plus one line that lost the indicator and one copy of the source
        return (
            "\n".join(f"{k + 1}. {ln}" for k, ln in enumerate(lines))
            + "\n5. Do something nice with the picture.\n- "
            + src
        )
    if "Compare Image-1 and Image-2" in text:
        return f"Common: the same scene and layout. Differences: Image-2 is a finished colour photograph ({n})."
    if "Rate the result" in text:  # the quality judge (operators/scoring/judge.py)
        return json.dumps(
            {"following": n % 11, "preservation": (3 * n) % 11, "quality": 10 - n % 11, "reason": f"judged {n}."}
        )
    if "You judge AI-made images" in text:  # the judge in EditScore's style: 0-25, reasoning first
        return f'{{"reasoning": "judged {n} "the EditScore way".", "score": [{n % 26}, {(7 * n) % 26}]}}'
    if "Say what the output shows" in text:  # the instruction from the outcome (operators/instructions/outcome.py)
        asked = text.split('instruction: "', 1)[1].split('". Write one', 1)[0].replace("{image}", "Image-1")
        if n % 4 == 3:
            return "Do something nice with the picture."  # names no image: refused
        if n % 4 == 2:
            return asked  # the instruction it was asked with: not distinct
        return f"{asked.rstrip('.')}, as the output shows (take {n})."
    if "An input image was edited" in text:
        return json.dumps(
            {
                "instruction": f"Turn {{image}} into a finished colour photograph, version {n}.",
                "edit": "global",
                "edited_object": "the whole picture",
                "original_object": "a sketch",
                "output": "a colour photo",
            }
        )
    return f"Instruction: Make Image-1 look like the finished photo, version {n}."


@pytest.fixture
def chat_server():
    servers = []

    def start(**kw) -> ChatServer:
        s = ChatServer(**kw)
        servers.append(s)
        return s

    yield start
    for s in servers:
        s.close()
