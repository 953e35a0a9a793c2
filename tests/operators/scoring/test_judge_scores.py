"""The VLM judge: answers are read robustly (JSON anywhere, key variants, "7/10", prose), bad ones are refused with a
reason; through the transformers backend on a tiny InternVL every sample of a run gets judge scores or a counted
fallback and none is lost; against a misbehaving OpenAI-compatible server the good answers become scores and every
bad one (500, timeout, malformed, dropped, refusal) a counted fallback."""

import pytest

from datagen.shards.reader import iter_samples, read_index
from operators.scoring.judge import parse_judge_answer
from pipelines import load_recipe, run


@pytest.mark.parametrize(
    "text,want",
    [
        ('{"semantics": 7, "quality": "8/10", "reason": "fine"}', (7, 8, "fine")),
        ('Sure!\n```json\n{"Semantic Consistency": 6.5, "Perceptual Quality": 9}\n```', (6.5, 9, "")),
        ("semantics: 4/10, quality - 3. The edit is weak.", (4, 3, "semantics: 4/10, quality - 3. The edit is weak.")),
        ('{"semantics": 70, "quality": 8}', "out_of_range"),
        ('{"semantics": true, "quality": 3}', "no_scores"),
        ("I'm sorry, I cannot help with that.", "no_scores"),
        ("  ", "empty_answer"),
    ],
)
def test_answers_are_read_robustly(text, want):
    got = parse_judge_answer(text)
    if isinstance(want, str):
        assert got == want
    else:
        scores, reason = got
        assert (scores["judge_semantics"], scores["judge_quality"], reason) == want


def _recipe(out, photo_dir, backend):
    return load_recipe(
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


def _check_every_sample_judged_or_counted(out, summary):
    samples = list(iter_samples(out))
    assert len(samples) == summary["samples"] > 0 and summary["quarantined"] == 0
    judged = [s for s in samples if "judge_semantics" in s.provenance.scores]
    fallen = [s for s in samples if s.judge is not None and s.judge.fallback]
    assert len(judged) + len(fallen) == len(samples)
    skipped = summary["stages"]["judge_scores"]["skipped"]
    assert sum(v for k, v in skipped.items() if k.startswith("fallback: ")) == len(fallen)
    rows = {r["key"]: r for r in read_index(out).to_pylist()}
    for s in judged:
        assert 0 <= s.provenance.scores["judge_semantics"] <= 10 and s.judge.reason
        assert rows[s.key]["score_judge_quality"] == s.provenance.scores["judge_quality"]
    for s in fallen:
        assert rows[s.key]["score_judge_semantics"] is None
    return judged, fallen, skipped


def test_tiny_judge_through_transformers_loses_no_sample(tiny_judge, photo_dir, tmp_path):
    backend = f"{{kind: transformers, model: {tiny_judge}, max_new_tokens: 12, batch_size: 4, image_max_side: 56}}"
    out = tmp_path / "out"
    summary = run(_recipe(out, photo_dir, backend))
    judged, fallen, skipped = _check_every_sample_judged_or_counted(out, summary)
    assert summary["samples"] == 3 * 4  # grayscale and canny, both ways, for 3 photos
    # a random tiny model writes no scores: every sample is a counted fallback with the model's answer kept
    assert fallen and all(s.judge.model == str(tiny_judge) for s in fallen)
    assert set(skipped) <= {"fallback: no_scores", "fallback: empty_answer", "fallback: out_of_range"}


def test_misbehaving_server_gives_scores_or_counted_fallbacks(judge_server, photo_dir, tmp_path):
    server = judge_server(slow_s=1.2)
    backend = (
        f"{{kind: openai, model: judge, base_url: '{server.url}', timeout_s: 0.4, max_retries: 2, backoff_s: 0.02, "
        "concurrency: 4, batch_size: 4, max_failure_rate: null, max_consecutive_failures: null}"
    )
    out = tmp_path / "out"
    summary = run(_recipe(out, photo_dir, backend))
    judged, fallen, skipped = _check_every_sample_judged_or_counted(out, summary)
    assert len(fallen) == server.bad() > 0 and len(judged) == summary["samples"] - server.bad() > 0
    assert set(skipped) <= {
        "fallback: http_500",
        "fallback: timeout",
        "fallback: malformed_json",
        "fallback: connection",
        "fallback: no_scores",
    }
    assert any(s.judge.reason.startswith("judged ") for s in judged)
