"""The VLM judge on three axes: answers are read robustly (JSON anywhere, key variants, "7/10", prose; EditScore's
loose `{"reasoning", "score": [...]}`), bad ones refused with a reason; the overall is VIEScore's
sqrt(min(following, preservation) x quality), averaged over passes with its spread; through the transformers backend
a tiny judge taught the answer's format scores every sample of a run on three axes with its identity (model, prompt
hash, settings, passes), a random one leaves every sample a counted fallback that the quality filter drops; against
a misbehaving OpenAI-compatible server good answers become scores and bad ones counted fallbacks; images travel as
PNG."""

import base64
import math

import cv2
import numpy as np
import pytest

from datagen.shards.reader import iter_samples, read_index
from operators.models.backends.base import ChatRequest
from operators.models.backends.openai_http import openai_messages
from operators.scoring.judge import combine, parse_editscore_answer, parse_judge_answer
from operators.scoring.judge_prompts import DATAGEN_PROMPTS, datagen_prompt, editscore_prompts
from pipelines import load_recipe, run

AXES3 = ("following", "preservation", "quality")


@pytest.mark.parametrize(
    "text,want",
    [
        ('{"following": 7, "preservation": 5, "quality": "8/10", "reason": "fine. more"}', (7, 5, 8, "fine.")),
        (
            'Sure!\n```json\n{"Instruction Following": 6.5, "Consistency": 4, "Perceptual Quality": 9}\n```',
            (6.5, 4, 9, ""),
        ),
        (
            "following: 4/10, preservation - 6, quality: 3. The edit is weak.",
            (4, 6, 3, "following: 4/10, preservation - 6, quality: 3."),
        ),
        ('{"following": 70, "preservation": 5, "quality": 8}', "out_of_range"),
        ('{"following": true, "preservation": 5, "quality": 3}', "no_scores"),
        ('{"semantics": 7, "quality": 3}', "no_scores"),  # the old two-axis answer lacks following and preservation
        ("I'm sorry, I cannot help with that.", "no_scores"),
        ("  ", "empty_answer"),
    ],
)
def test_answers_are_read_robustly(text, want):
    got = parse_judge_answer(text, AXES3)
    if isinstance(want, str):
        assert got == want
    else:
        scores, reason = got
        assert (scores["following"], scores["preservation"], scores["quality"], reason) == want


def test_text_to_image_asks_no_preservation_and_tasks_get_their_own_question():
    assert parse_judge_answer('{"following": 8, "quality": 6}', ("following", "quality")) == (
        {"following": 8, "quality": 6},
        "",
    )
    assert datagen_prompt("Text-to-Image").axes == ("following", "quality")
    assert datagen_prompt("Layer Decomposition").name == "datagen/layer_decomposition"
    assert datagen_prompt("Layer Fusion").images == "inputs"
    assert datagen_prompt("Reference Generation").name == "datagen/reference"
    assert datagen_prompt("Grayscale").name == "datagen/analysis"
    assert editscore_prompts("Text-to-Image")[0].axes == ("following",)
    hashes = [p.hash for p in DATAGEN_PROMPTS.values()]
    assert len(set(hashes)) == len(hashes) and all(len(h) == 12 for h in hashes)


@pytest.mark.parametrize(
    "text,n,want",
    [
        ('{"reasoning": "The cat is "gone" now.", "score": [20, 15]}', 2, ([8.0, 6.0], 'The cat is "gone" now.')),
        ("||V^=^V||{reasoning: ok, score: [25, 0]}||V^=^V||", 2, ([10.0, 0.0], "")),
        ('{"reasoning": "x", "score": [5]}', 2, "no_scores"),
        ('{"reasoning": "x", "score": [30, 2]}', 2, "out_of_range"),
        ("no json here", 2, "no_scores"),
    ],
)
def test_editscore_answers_are_read_and_scaled(text, n, want):
    assert parse_editscore_answer(text, n, 25) == want


def test_overall_is_the_viescore_rule_averaged_over_passes():
    scores, spread, overalls = combine(
        [
            {"following": 8, "preservation": 6, "quality": 9},  # min 6, overall sqrt(54) = 7.3485
            {"following": 6, "preservation": 7, "quality": 4},  # min 6, overall sqrt(24) = 4.8990
        ]
    )
    assert scores["judge_following"] == 7 and scores["judge_preservation"] == 6.5 and scores["judge_quality"] == 6.5
    assert scores["judge_semantics"] == 6
    assert scores["judge_overall"] == pytest.approx((math.sqrt(54) + math.sqrt(24)) / 2)
    assert scores["judge_spread"] == pytest.approx((math.sqrt(54) - math.sqrt(24)) / 2, abs=1e-4)
    assert spread["following"] == 1 and overalls == [7.3485, 4.899]
    one, _, _ = combine([{"following": 9, "quality": 4}])  # text-to-image: no preservation, no spread of one pass
    assert one == {"judge_following": 9, "judge_quality": 4, "judge_semantics": 9, "judge_overall": 6}


def test_images_reach_the_judge_losslessly():
    image = np.random.default_rng(0).integers(0, 256, (24, 32, 3), dtype=np.uint8)
    msgs = openai_messages(ChatRequest(["Image-1: ", image, "\nRate"], lossless=True), 896)
    url = msgs[0]["content"][1]["image_url"]["url"]
    assert url.startswith("data:image/png;base64,")
    back = cv2.imdecode(np.frombuffer(base64.b64decode(url.split(",", 1)[1]), np.uint8), cv2.IMREAD_COLOR)
    assert np.array_equal(back[..., ::-1], image)
    jpeg = openai_messages(ChatRequest(["Image-1: ", image, "\nRate"]), 896)[0]["content"][1]["image_url"]["url"]
    assert jpeg.startswith("data:image/jpeg;base64,")  # the other stages keep JPEG


def _recipe(out, photo_dir, judge, *extra):
    return load_recipe(
        "tests/tiny_recipe.yaml",
        [
            f"input.path={photo_dir}",
            f"output.dir={out}",
            "input.max_side=64",
            "input.images_per_partition=3",
            "input.limit=3",
            "operators.lcu_chains.enabled=false",
            f"operators.judge_scores={judge}",
            *extra,
        ],
    )


def _check_every_sample_judged_or_counted(out, summary, passes=1):
    samples = list(iter_samples(out))
    assert len(samples) == summary["samples"] > 0 and summary["quarantined"] == 0
    judged = [s for s in samples if "judge_overall" in s.provenance.scores]
    fallen = [s for s in samples if s.judge is not None and s.judge.fallback]
    assert len(judged) + len(fallen) == len(samples)
    skipped = summary["stages"]["judge_scores"]["skipped"]
    assert sum(v for k, v in skipped.items() if k.startswith("fallback: ")) == len(fallen)
    rows = {r["key"]: r for r in read_index(out).to_pylist()}
    for s in judged:
        sc, rec = s.provenance.scores, s.judge
        for axis in ("following", "preservation", "quality"):
            assert 0 <= sc[f"judge_{axis}"] <= 10
        if passes == 1:  # over passes the overall is the mean of each pass's overall
            want = math.sqrt(min(sc["judge_following"], sc["judge_preservation"]) * sc["judge_quality"])
            assert sc["judge_overall"] == pytest.approx(want, abs=1e-5)
        assert rec.reason and rec.model and rec.passes == passes
        assert all(len(h) == 12 for h in rec.prompt_hash.split("+"))
        assert rec.settings["image_format"] == "png" and rec.settings["image_sizes"]
        assert rec.settings["temperature"] == 0 and rec.settings["max_new_tokens"] > 0
        assert rows[s.key]["score_judge_overall"] == pytest.approx(sc["judge_overall"], abs=1e-4)
    for s in fallen:
        assert rows[s.key]["score_judge_overall"] is None and s.judge.prompt_hash and s.judge.passes == passes
    return judged, fallen, skipped


def test_taught_tiny_judge_scores_every_sample_on_three_axes(tiny_taught_judge, photo_dir, tmp_path):
    """The tiny judge of the rehearsal (taught the answer's format) through the transformers backend: every sample
    carries the three axes, the overall, a reason and the judge's identity; with passes: 3, the mean and spread."""
    backend = (
        f"{{kind: transformers, model: {tiny_taught_judge}, max_new_tokens: 32, batch_size: 6, image_max_side: 56}}"
    )
    out = tmp_path / "out"
    summary = run(_recipe(out, photo_dir, f"{{backend: {backend}, passes: 3}}"))
    judged, fallen, skipped = _check_every_sample_judged_or_counted(out, summary, passes=3)
    # a tiny model taught the format for a few steps still slips on some prompts (which ones moves with the
    # instructions' wording and the CPU's numerics); every slip is a counted fallback, checked above
    assert summary["samples"] == 3 * 4 and len(judged) >= 6
    for s in judged:
        assert (s.provenance.scores["judge_following"], s.provenance.scores["judge_quality"]) == (7, 6)
        assert s.judge.prompt in {"datagen/analysis", "datagen/generation"}
        assert s.judge.prompt_hash == DATAGEN_PROMPTS[s.judge.prompt].hash
        overalls = s.judge.pass_overall
        assert len(overalls) == s.judge.answered and 1 <= s.judge.answered <= 3
        assert s.provenance.scores["judge_overall"] == pytest.approx(np.mean(overalls), abs=1e-3)
        assert s.provenance.scores["judge_spread"] == pytest.approx(np.std(overalls), abs=1e-3)
        sizes = [tuple(map(int, wh.split("x"))) for wh in s.judge.settings["image_sizes"]]
        assert len(sizes) == 2 and all(max(wh) == 56 for wh in sizes)  # downscaled to image_max_side, recorded


def test_random_tiny_judge_is_a_counted_fallback_that_the_filter_drops(tiny_judge, photo_dir, tmp_path):
    backend = f"{{kind: transformers, model: {tiny_judge}, max_new_tokens: 12, batch_size: 4, image_max_side: 56}}"
    out = tmp_path / "out"
    summary = run(
        _recipe(
            out,
            photo_dir,
            f"{{backend: {backend}}}",
            "operators.quality_filter={thresholds: {'*': {judge_overall: {min: 5}}}, keep_below_threshold: true}",
        )
    )
    judged, fallen, skipped = _check_every_sample_judged_or_counted(out, summary)
    assert summary["samples"] == 3 * 4
    # a random tiny model writes no scores: every sample is a counted fallback with the model's answer kept
    assert fallen and all(s.judge.model == str(tiny_judge) for s in fallen)
    assert set(skipped) <= {"fallback: no_scores", "fallback: empty_answer", "fallback: out_of_range"}
    # and none is silently kept: the filter that names the judge's overall marks every one as score_missing
    marked = summary["stages"]["quality_filter"]["skipped"]
    assert marked.get("marked: score_missing: judge_overall") == len(fallen)


def test_misbehaving_server_gives_scores_or_counted_fallbacks(judge_server, photo_dir, tmp_path):
    server = judge_server(slow_s=1.2)
    backend = (
        f"{{kind: openai, model: judge, base_url: '{server.url}', timeout_s: 0.4, max_retries: 2, backoff_s: 0.02, "
        "concurrency: 4, batch_size: 4, max_failure_rate: null, max_consecutive_failures: null}"
    )
    out = tmp_path / "out"
    summary = run(_recipe(out, photo_dir, f"{{backend: {backend}}}"))
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


def test_editscore_style_through_the_same_backend(judge_server, photo_dir, tmp_path):
    """EditScore's two questions, 0-25, three passes: every pass's answers are scaled to 0-10 and averaged."""
    server = judge_server(kinds=("ok",))
    backend = f"{{kind: openai, model: EditScore-7B, base_url: '{server.url}', batch_size: 8}}"
    out = tmp_path / "out"
    summary = run(_recipe(out, photo_dir, f"{{backend: {backend}, style: editscore, passes: 3}}"))
    judged, fallen, _ = _check_every_sample_judged_or_counted(out, summary, passes=3)
    assert len(judged) == summary["samples"] and not fallen
    for s in judged:
        rec = s.judge
        assert rec.prompt == "editscore/semantics+editscore/quality" and rec.settings["score_range"] == 25
        assert rec.answered == 3 and rec.reason.startswith("judged ")
        assert s.provenance.scores["judge_overall"] == pytest.approx(np.mean(rec.pass_overall), abs=1e-3)
        assert s.provenance.scores["judge_spread"] == pytest.approx(np.std(rec.pass_overall), abs=1e-3)


def test_the_judging_page_lists_every_prompt_with_its_hash():
    from pathlib import Path

    from operators.scoring.judge_prompts import prompt_table

    page = (Path(__file__).resolve().parents[3] / "docs" / "judging.md").read_text()
    for name, digest, axes in prompt_table():
        assert f"| `{name}` | `{digest}` | {axes} |" in page, name
