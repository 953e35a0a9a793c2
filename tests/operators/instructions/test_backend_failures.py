"""When the model fails: one bad request costs one sample (an over-long prompt is refused before its batch is
generated, counted as prompt_too_long, its template kept or its sample left unscored), and a backend that fails more
than the recipe allows (a dead endpoint, an engine whose every call raises) stops the job with the engine's own error,
leaves the partition uncommitted, and a second run after the engine is back completes it."""

import numpy as np
import pytest

from datagen import paths
from datagen.batch import WorkBatch
from datagen.config import content
from datagen.isolation import BackendBroken
from datagen.operator import Operator, Role
from datagen.planning import declared_gpus
from datagen.runtime import run_stage
from datagen.schema import Frame, Provenance, Sample, Turn
from datagen.shards.reader import iter_samples
from operators.instructions.captioner import CaptionerInstructions
from operators.instructions.config import CaptionerConfig
from operators.instructions.templates import TemplateInstructions
from operators.models.backends.base import BackendConfig, ChatRequest, ChatResult, FailureBudget, make_backend
from operators.models.backends.openai_http import openai_messages
from operators.models.backends.transformers_local import TransformersBackend
from operators.models.backends.vllm_local import refuse_too_long
from operators.scoring.judge import JudgeScores, JudgeScoresConfig
from pipelines import build_recipe, load_recipe, run

LONG = " ".join(["a tabby cat on a red sofa"] * 300)  # far past the tiny models' 1024 positions


def _batch(photo, n, inputs=None):
    """n General Editing samples; `inputs` maps a sample index to its number of input images (1 otherwise)."""
    batch = WorkBatch("img-00000", {}, seed=0, recipe="r")
    for i in range(n):
        ins = [Frame(photo) for _ in range((inputs or {}).get(i, 1))]
        turn = Turn("General Editing", "edit", ins, Frame(photo[:, ::-1].copy()), caption="an astronaut")
        batch.samples.append(Sample([turn], Provenance([f"file:///p{i}.png"], [f"id{i}"], "pairs", "1")))
    return batch


def test_transformers_refuses_an_over_long_prompt_alone(tiny_internvl, photo):
    backend = make_backend(
        BackendConfig(kind="transformers", model=str(tiny_internvl), max_new_tokens=4, batch_size=16, image_max_side=64)
    )
    backend.setup()
    generate, rows = backend.model.generate, []

    def spy(**kw):
        rows.append(tuple(kw["input_ids"].shape))
        return generate(**kw)

    backend.model.generate = spy
    reqs = [ChatRequest(["Image-1: ", photo, f"\nrequest {i}: write the instruction"], seed=i) for i in range(64)]
    reqs[37] = ChatRequest(["Image-1: ", photo, "\n" + LONG], seed=37)
    results = backend.chat(reqs)
    assert [k for k, r in enumerate(results) if not r.ok] == [37]
    assert results[37].error == "prompt_too_long" and "context of 1024" in results[37].detail
    # the over-long prompt never reached generation: four batches, 63 rows, none longer than the model's context
    assert sum(n for n, _ in rows) == 63 and len(rows) == 4 and max(t for _, t in rows) <= 1024


def test_captioner_one_over_long_prompt_costs_one_sample(chat_server, photo):
    small = photo[::4, ::4].copy()
    one = len(str(openai_messages(ChatRequest(["Image-1: ", small, "\nImage-2: ", small, "\nx"]), 896)))
    server = chat_server(kinds=("ok",), max_body=3 * one)
    backend = BackendConfig(kind="openai", model="captioner", base_url=server.url, timeout_s=5, batch_size=16)
    batch = _batch(small, 64, inputs={21: 8})  # sample 21 shows the model nine images: past the endpoint's context
    TemplateInstructions()(batch)
    template = batch.samples[21].current.instruction
    stage = CaptionerInstructions(CaptionerConfig(tasks=["*"], backend=backend))
    stage.setup()
    stage(batch)
    methods = [s.current.instruction_method for s in batch.samples]
    assert methods.count("captioner") == 63 and methods[21] == "fallback_template"
    assert batch.samples[21].current.instruction == template
    assert batch.samples[21].turns[0].instruction_record.fallback == "prompt_too_long"
    assert batch.stats["captioner_instructions"].skipped == {"fallback_template:prompt_too_long": 1}
    assert server.too_long == 1  # asked once: a refusal for length is not retried


def test_judge_leaves_an_over_long_request_unscored_and_scores_the_rest(chat_server, photo):
    small = photo[::4, ::4].copy()
    # the judge sends PNG: a request's two images, plus room for its prompt but not for LONG
    one = len(str(openai_messages(ChatRequest(["Image-1: ", small, "\nImage-2: ", small, "\nx"], lossless=True), 896)))
    server = chat_server(kinds=("ok",), max_body=one + len(LONG) // 2)
    judge = JudgeScores(JudgeScoresConfig(backend=BackendConfig(kind="openai", model="j", base_url=server.url)))
    judge.setup()
    batch = _batch(small, 8)
    TemplateInstructions()(batch)
    batch.samples[5].current.instruction = LONG
    judge(batch)
    scored = ["judge_semantics" in s.provenance.scores for s in batch.samples]
    assert scored == [True] * 5 + [False] + [True] * 2
    assert batch.samples[5].judge.fallback == "prompt_too_long"
    assert batch.stats["judge_scores"].skipped == {"fallback: prompt_too_long": 1}


def _captioner_recipe(photo_dir, out, url):
    backend = {"kind": "openai", "model": "captioner", "base_url": url, "timeout_s": 5, "max_retries": 0}
    return build_recipe(
        {
            "input": {"path": str(photo_dir), "max_side": 64, "images_per_partition": 3},
            "output": {"dir": str(out)},
            "runtime": {"executor": "local", "progress": False},
            "operators": {"grayscale": {}},
            "instructions": {"methods": ["template", "captioner"], "captioner": {"tasks": ["*"], "backend": backend}},
        }
    )


def test_dead_endpoint_stops_the_run_and_a_second_run_completes(chat_server, photo_dir, tmp_path):
    server = chat_server(kinds=("ok",))
    server.dead = True
    out = tmp_path / "out"
    recipe = _captioner_recipe(photo_dir, out, server.url)
    with pytest.raises(BackendBroken, match=r"captioner_instructions.*http_500.*illegal memory access"):
        run(recipe)
    assert not paths.partition_marker(out, "img-00000").exists()  # not committed: a resumed run retries it
    server.dead = False
    summary = run(recipe)
    assert summary["invocation"]["partitions_done"] == 2 and paths.partition_marker(out, "img-00000").exists()
    samples = list(iter_samples(out))
    assert len(samples) == summary["samples"] == 12
    assert all(s.current.instruction_method == "captioner" for s in samples)


def test_an_engine_whose_every_call_raises_stops_the_judge(tiny_internvl, photo_dir, tmp_path, monkeypatch):
    def oom(self, chunk):
        raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(TransformersBackend, "_generate", oom)
    out = tmp_path / "out"
    backend = f"{{kind: transformers, model: {tiny_internvl}, max_new_tokens: 4, batch_size: 4, image_max_side: 56}}"
    recipe = load_recipe(
        "tests/tiny_recipe.yaml",
        [
            f"input.path={photo_dir}",
            f"output.dir={out}",
            "input.max_side=64",
            "input.images_per_partition=3",
            "input.limit=3",
            "operators.lcu_chains.enabled=false",
            f"operators.judge_scores={{backend: {backend}}}",
        ],
    )
    with pytest.raises(BackendBroken, match=r"judge_scores.*backend_error:RuntimeError.*CUDA out of memory"):
        run(recipe)
    assert not paths.partition_marker(out, "img-00000").exists()
    monkeypatch.undo()
    summary = run(recipe)
    assert summary["samples"] == 12 and paths.partition_marker(out, "img-00000").exists()
    # the tiny random model writes no scores: every sample is kept, each a counted fallback of its own answer
    assert sum(summary["stages"]["judge_scores"]["skipped"].values()) == 12


# The threshold ------------------------------------------------------------------------------------------------------
def _fail(detail="engine died"):
    return ChatResult(None, "http_500", detail=detail)


def test_budget_allows_the_rate_and_the_streak_the_recipe_sets():
    budget = FailureBudget(BackendConfig(max_failure_rate=0.05, max_consecutive_failures=20), 64, "s", "partition p: ")
    for r in [_fail(), ChatResult("ok"), _fail(), ChatResult("ok"), _fail()]:
        budget.record(r)  # 3 of 64: within 5%
    with pytest.raises(BackendBroken, match=r"partition p: s: .*4 of 64 requests failed.*last error: http_500: boom"):
        budget.record(_fail("boom"))
    small = FailureBudget(BackendConfig(), 3, "s")
    small.record(_fail())  # a partition may always lose one request
    with pytest.raises(BackendBroken):
        small.record(_fail())
    streak = FailureBudget(BackendConfig(max_failure_rate=None, max_consecutive_failures=3), 100, "s")
    for r in [_fail(), _fail(), ChatResult("ok"), _fail(), _fail()]:
        streak.record(r)
    with pytest.raises(BackendBroken, match="3 requests in a row"):
        streak.record(_fail())
    off = FailureBudget(BackendConfig(max_failure_rate=None, max_consecutive_failures=None), 4, "s")
    for _ in range(4):
        off.record(_fail())


def test_the_thresholds_are_not_part_of_the_recipe_fingerprint():
    a = CaptionerConfig(backend=BackendConfig(model="m"))
    b = CaptionerConfig(backend=BackendConfig(model="m", max_failure_rate=0.5, max_consecutive_failures=3))
    assert content(a) == content(b)


def test_run_stage_lets_a_broken_backend_fail_the_job():
    class Broken(Operator):
        name = "broken"
        role = Role.INSTRUCT

        def process(self, batch):
            raise BackendBroken("engine died")

    batch = _batch(np.zeros((8, 8, 3), np.uint8), 2)
    with pytest.raises(BackendBroken, match="engine died"):
        run_stage(Broken(), batch)
    assert batch.quarantine == []


def test_vllm_measures_prompts_before_the_call():
    class Tokenizer:  # one token per character of the rendered template
        def apply_chat_template(self, msgs, add_generation_prompt, tokenize):
            assert all(isinstance(m["content"], str) for m in msgs)  # text only: images left out
            return list("".join(m["content"] for m in msgs))

    img = np.zeros((8, 8, 3), np.uint8)
    out = refuse_too_long(Tokenizer(), [ChatRequest(["Image-1: ", img, "x" * 300]), ChatRequest(["short"])], 256)
    assert out[0].error == "prompt_too_long" and out[1] is None


# Placement ----------------------------------------------------------------------------------------------------------
def test_transformers_stage_asks_for_a_gpu_where_the_cluster_has_one(monkeypatch):
    import torch

    from operators.models.backends.transformers_local import resolve_dtype

    auto = CaptionerInstructions(CaptionerConfig(backend=BackendConfig(model="m")))
    assert declared_gpus(auto, cluster_gpus=8) == 1.0 and declared_gpus(auto, cluster_gpus=0) == 0.0
    cpu = CaptionerInstructions(CaptionerConfig(backend=BackendConfig(model="m", device="cpu")))
    assert declared_gpus(cpu, cluster_gpus=8) == 0.0
    share = CaptionerInstructions(CaptionerConfig(backend=BackendConfig(model="m", num_gpus=0.5)))
    assert declared_gpus(share, cluster_gpus=8) == 0.5
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert resolve_dtype("auto", "cuda") == torch.bfloat16 and resolve_dtype("auto", "cpu") == torch.float32
