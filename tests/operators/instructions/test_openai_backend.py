"""The OpenAI-compatible backend against a local endpoint that misbehaves (slow answers, 500s, malformed JSON,
dropped connections, refusals): each request gets an answer or a reason, retries recover flaky answers, and a
whole run completes with every sample kept, bad answers falling back to templates and counted."""

import json
import time

from datagen.shards.reader import iter_samples
from datagen.shards.validate import validate_dir
from operators.models.backends.base import BackendConfig, ChatRequest, make_backend
from pipelines import build_recipe, run


def _backend(url, **kw):
    cfg = BackendConfig(
        kind="openai",
        model="captioner",
        base_url=url,
        timeout_s=0.4,
        max_retries=2,
        backoff_s=0.02,
        concurrency=4,
        **kw,
    )
    b = make_backend(cfg)
    b.setup()
    return b


def test_each_misbehaviour_gives_a_reason_and_flaky_answers_are_retried(chat_server, photo):
    server = chat_server(slow_s=1.2)
    backend = _backend(server.url)
    reqs = [ChatRequest(["Image-1: ", photo, f"\nrequest {i}: write the instruction"], seed=i) for i in range(14)]
    t0 = time.perf_counter()
    results = backend.chat(reqs)
    assert time.perf_counter() - t0 < 30
    assert len(results) == len(reqs)
    errors = {r.error for r in results if not r.ok}
    assert errors == {"http_500", "timeout", "malformed_json", "connection"}
    kinds = list(server.kinds.values())
    assert kinds.count("flaky") == 2 and kinds.count("ok") == 2
    ok = [r for r in results if r.ok]
    assert len(ok) == 6  # ok, flaky (after one retry) and unusable answer with text; the stage judges usability
    assert any(r.attempts == 2 for r in ok)  # a flaky request succeeded on its retry
    assert all(r.attempts == 3 for r in results if r.error in ("http_500", "timeout", "malformed_json", "connection"))
    # every attempt of a failing request reached the server: retries are real
    assert max(server.attempts.values()) == 3


def test_circuit_breaker_stops_calling_a_dead_endpoint(chat_server):
    server = chat_server(kinds=("http500",))
    backend = _backend(server.url, circuit_breaker=3, cooldown_s=60)
    first = backend.chat([ChatRequest([f"q{i}"], seed=i) for i in range(3)])
    assert all(r.error == "http_500" for r in first)
    calls = sum(server.attempts.values())
    later = backend.chat([ChatRequest([f"later {i}"], seed=100 + i) for i in range(5)])
    assert all(r.error == "backend_unavailable" and r.attempts == 0 for r in later)
    assert sum(server.attempts.values()) == calls  # nothing more reached the endpoint


def test_captioner_run_completes_and_counts_fallbacks(chat_server, photo_dir, tmp_path):
    server = chat_server(slow_s=1.2)
    out = tmp_path / "out"
    backend = {
        "kind": "openai",
        "model": "captioner",
        "base_url": server.url,
        "timeout_s": 0.4,
        "max_retries": 2,
        "backoff_s": 0.02,
        "concurrency": 4,
        "batch_size": 4,
        # four in seven requests fail here on purpose: per request, not a broken engine (that is test_backend_failures)
        "max_failure_rate": None,
        "max_consecutive_failures": None,
    }
    recipe = build_recipe(
        {
            "input": {"path": str(photo_dir), "max_side": 96, "images_per_partition": 3},
            "output": {"dir": str(out)},
            "runtime": {"executor": "local", "progress": False},
            "operators": {"grayscale": {}, "canny": {}},
            "instructions": {"methods": ["template", "captioner"], "captioner": {"tasks": ["*"], "backend": backend}},
        }
    )
    summary = run(recipe)
    n_photos = len(list(photo_dir.iterdir()))
    assert summary["samples"] == n_photos * 4  # every sample kept, whatever the endpoint did
    assert summary["quarantined"] == 0
    assert validate_dir(out)[1] == []
    samples = list(iter_samples(out))
    methods = [s.current.instruction_method for s in samples]
    assert len(server.kinds) == len(samples)  # one distinct request per sample (retries repeat the same body)
    assert methods.count("fallback_template") == server.bad() > 0
    assert methods.count("captioner") == len(samples) - server.bad() > 0
    skipped = summary["stages"]["captioner_instructions"]["skipped"]
    assert sum(v for k, v in skipped.items() if k.startswith("fallback_template:")) == server.bad()
    assert {k.split(":", 1)[1] for k in skipped} <= {
        "http_500",
        "timeout",
        "malformed_json",
        "connection",
        "unusable:refusal",
    }
    for s in samples:
        rec = s.turns[0].instruction_record
        assert s.indicator_problems() == [] and "{image}" in s.current.instruction
        if s.current.instruction_method == "captioner":
            assert s.current.instruction.startswith("Make {image} look like the finished photo")
            assert rec.source  # the template it replaced is kept for audit
        else:
            assert rec.fallback and rec.tried == "captioner" and rec.template
    json.dumps(summary)  # the run summary stays JSON


def test_difference_method_writes_around_the_difference_with_an_emu_record(chat_server, photo):
    from datagen.batch import WorkBatch
    from datagen.schema import Frame, Provenance, Sample, Turn
    from operators.instructions.config import DifferenceConfig
    from operators.instructions.difference import DifferenceInstructions
    from operators.instructions.templates import TemplateInstructions

    server = chat_server(kinds=("ok",))
    cfg = DifferenceConfig(
        tasks=["General Editing"], backend=BackendConfig(kind="openai", model="mllm", base_url=server.url, timeout_s=5)
    )
    batch = WorkBatch("img-00000", {}, seed=0, recipe="r")
    for i in range(3):
        turn = Turn(
            "General Editing", "edit", [Frame(photo)], Frame(photo[::-1].copy()), caption="a person in a spacesuit"
        )
        batch.samples.append(Sample([turn], Provenance([f"file:///p{i}.png"], [f"id{i}"], "pairs", "1")))
    TemplateInstructions()(batch)
    stage = DifferenceInstructions(cfg)
    stage.setup()
    stage(batch)
    for s in batch.samples:
        assert s.current.instruction_method == "mllm_difference"
        assert s.current.instruction.startswith("Turn {image} into a finished colour photograph")
        rec = s.turns[0].instruction_record
        assert rec.emu_edit == {
            "edit": "global",
            "edited_object": "the whole picture",
            "original_object": "a sketch",
            "output": "a colour photo",
        }
        assert "Differences" in rec.differences
    assert len(server.kinds) == 6  # two model calls per pair: compare, then write
