"""Fail loud (issue 22): a stage the recipe enables that cannot run on its workers fails the run before any partition
is committed, or is skipped and counted when it is optional; a GPU-placed stage that would run on the CPU is an error
unless its device says cpu or the recipe allows it; a sample missing a configured score is dropped as score_missing."""

from __future__ import annotations

import json

import pytest

from datagen import devices, paths
from datagen.batch import WorkBatch
from datagen.probe import StageUnavailable, check_ops
from datagen.schema import Frame, Provenance, Sample, Turn
from datagen.summary import format_summary
from datagen.testing import load_photo
from operators.scoring.pixel import PixelScores
from operators.scoring.quality_filter import QualityFilter, QualityFilterConfig
from pipelines import load_recipe, run

ABSENT = "operators.nsfw_score.model=/nonexistent/open_nsfw.onnx"


def _recipe(tmp_path, photo_dir, *extra):
    return load_recipe("tests/tiny_recipe.yaml", [f"input.path={photo_dir}", f"output.dir={tmp_path / 'out'}", *extra])


def test_a_stage_whose_checkpoint_is_absent_fails_the_run_before_any_partition(tmp_path, photo_dir):
    with pytest.raises(StageUnavailable, match=r"(?s)optional: true.*nsfw_score \(job images\).*no such file"):
        run(_recipe(tmp_path, photo_dir, ABSENT))
    progress = tmp_path / "out" / paths.PROGRESS_DIR
    assert not progress.exists() or not any(progress.iterdir())


def test_an_optional_stage_that_cannot_run_is_skipped_and_counted(tmp_path, photo_dir):
    plain = run(_recipe(tmp_path / "a", photo_dir))
    summary = run(_recipe(tmp_path, photo_dir, ABSENT, "operators.nsfw_score.optional=true"))
    assert summary["samples"] == plain["samples"] and summary["tasks"] == plain["tasks"]
    [(reason, n)] = summary["fallbacks"]["nsfw_score"].items()
    assert reason.startswith("skipped (optional): ") and "no such file" in reason
    assert n == summary["partitions"]
    assert json.loads((tmp_path / "out" / paths.RUN_FILE).read_text())["fallbacks"] == summary["fallbacks"]
    assert "fallbacks" in format_summary(summary) and "nsfw_score: skipped (optional)" in format_summary(summary)
    # optional changes no key: the recipe's fingerprint (part of every key) stays
    assert _recipe(tmp_path, photo_dir, "operators.nsfw_score.optional=true").fingerprint() == (
        _recipe(tmp_path, photo_dir, "operators.nsfw_score.enabled=true").fingerprint()
    )


@pytest.fixture
def gpu_without_cuda(monkeypatch):
    """A worker Ray gave GPU 0 on a machine whose CUDA is absent (datagen.devices' state restored after)."""
    monkeypatch.setattr(devices, "_ASSIGNED", None)
    monkeypatch.setattr(devices, "_ALLOW_CPU_FALLBACK", False)
    monkeypatch.setattr(devices, "_FALLBACKS", {})
    monkeypatch.setattr(devices, "_cuda_visible", lambda: False)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    devices.assign_gpus(["0"])


def test_a_gpu_placed_stage_on_the_cpu_fails_unless_its_device_says_cpu(gpu_without_cuda):
    with devices.stage("depth"), pytest.raises(devices.CPUFallbackError, match="depth: placed on a GPU.*CUDA"):
        devices.resolve_device("auto")
    assert devices.resolve_device("cpu") == "cpu"
    # checked before work, on the worker: a stage placed with a GPU share finds no CUDA
    from operators.scoring.nsfw import NsfwScore

    op = NsfwScore()
    assert "placed on a GPU" in check_ops([op], gpus=1.0, allow_cpu_fallback=False)["nsfw_score"]
    op.config.device = "cpu"
    assert check_ops([op], gpus=1.0, allow_cpu_fallback=False) == {}


def test_an_onnx_session_placed_on_a_gpu_without_the_cuda_provider_fails(gpu_without_cuda):
    pytest.importorskip("onnxruntime")
    from operators.models.onnx import CPU, providers

    with pytest.raises(devices.CPUFallbackError, match="CUDAExecutionProvider"):
        providers("cuda")
    assert providers("cpu") == [CPU]


def test_an_allowed_cpu_fallback_is_named_and_counted(gpu_without_cuda):
    from datagen.runtime import run_stage

    devices.allow_cpu_fallback(True)
    with devices.stage("pixel_scores"):
        assert devices.resolve_device("auto") == "cpu"
    assert "CUDA is not available" in devices.fallbacks()["pixel_scores"]
    batch = run_stage(PixelScores(), WorkBatch("img-00000", {}, 0, "r"))
    [(reason, n)] = batch.stats["pixel_scores"].fallbacks.items()
    assert reason.startswith("cpu: Ray assigned GPU 0") and n == 1


def _sample(inputs, target, task="Image Restoration", direction="generation") -> Sample:
    turn = Turn(task=task, direction=direction, inputs=inputs, target=target, instruction="x")
    return Sample(turns=[turn], provenance=Provenance(["u"], ["id"], "test", "1"))


class _Broken(PixelScores):
    def score(self, views):
        raise ValueError("the scorer broke")


@pytest.mark.parametrize("missing", ["drop", "keep"])
def test_a_sample_missing_a_configured_score_is_dropped_as_score_missing(missing):
    a = load_photo("astronaut.png", 64)
    edit = _sample([Frame(a)], Frame(a[:, ::-1].copy()))
    t2i = _sample([], Frame(a), task="Text-to-Image", direction="text")  # pixel scores do not apply: no input
    batch = _Broken()(WorkBatch("img-00000", {}, 0, "r", samples=[edit, t2i]))
    assert "pixel_l1" in edit.unscored and t2i.unscored == []  # failed, told apart from not applicable
    cfg = QualityFilterConfig(use_defaults=False, thresholds={"*": {"pixel_l1": {"min": 0.001}}}, missing=missing)
    out = QualityFilter(cfg)(batch)
    stats = out.stats["quality_filter"].skipped
    if missing == "drop":
        assert out.samples == [t2i]
        assert stats["score_missing"] == 1 and stats["dropped: score_missing: pixel_l1"] == 1
    else:
        assert out.samples == [edit, t2i] and stats == {"kept: score_missing: pixel_l1": 1}


def test_a_score_whose_scorer_is_not_in_the_recipe_is_not_judged():
    a = load_photo("astronaut.png", 64)
    s = _sample([Frame(a)], Frame(a[:, ::-1].copy()))
    cfg = QualityFilterConfig(use_defaults=False, thresholds={"*": {"clip_text": {"min": 0.2}}})
    out = QualityFilter(cfg)(WorkBatch("img-00000", {}, 0, "r", samples=[s]))
    assert out.samples == [s]
