"""`datagen train configs/train_tiny.yaml` on a small shard folder: 60 steps lower the loss clearly, and running
it again with trainer.max_steps=80 resumes at step 60 (weights, optimiser, EMA, data position) instead of
starting over; checkpoints, metrics and previews land where the docs say."""

import json
import logging

import pytest

from datagen.cli import main


def _metrics(run):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]


@pytest.mark.slow
def test_train_tiny_lowers_loss_then_resumes_at_step_60(shard_dir, tmp_path, caplog):
    run = tmp_path / "run"
    args = ["train", "configs/train_tiny.yaml", f"data.path={shard_dir}", f"output.dir={run}"]
    caplog.set_level(logging.INFO)
    assert main(args + ["trainer.max_steps=60"]) == 0
    rows = _metrics(run)
    assert [r["step"] for r in rows] == list(range(1, 61))
    first = sum(r["loss"] for r in rows[:5]) / 5
    last = sum(r["loss"] for r in rows[-10:]) / 10
    assert last < 0.8 * first, f"loss did not fall clearly: first 5 steps {first:.3f}, last 10 {last:.3f}"
    assert json.loads((run / "checkpoints" / "latest.json").read_text())["step"] == 60
    previews = run / "previews" / "step-000060"
    index = json.loads((previews / "index.json").read_text())
    assert index["previews"] and all((previews / p["file"]).stat().st_size > 0 for p in index["previews"])
    assert "random-init tiny VAE/T5, for pipeline tests only" in caplog.text

    caplog.clear()
    assert main(args + ["trainer.max_steps=80"]) == 0
    assert "resuming from" in caplog.text and "at step 60" in caplog.text
    rows = _metrics(run)
    assert [r["step"] for r in rows] == list(range(1, 81))  # continued, nothing repeated
    summary = json.loads((run / "train.json").read_text())
    assert summary["resumed_from"] == 60 and summary["trained_steps"] == 20 and summary["step"] == 80
    resumed = sum(r["loss"] for r in rows[60:65]) / 5
    assert resumed < 0.9 * first, "the resumed run starts from trained weights, not from scratch"
    state = json.loads((run / "checkpoints" / "step-000080" / "state.json").read_text())
    assert state["step"] == 80 and state["data"]["positions"]
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["latest.json", "step-000060", "step-000080"]

    # a third run with nothing left to do trains nothing
    assert main(args + ["trainer.max_steps=80"]) == 0
    assert len(_metrics(run)) == 80
