"""The inpainting stage's GPU benchmark (bench/gpu_inpaint.py), run by bench/gpu_check.sh --with inpaint: in --cpu-smoke
mode it saves a tiny SD-inpainting checkpoint, loads it through the operator's loader and reports images/s; without
diffusers (as on the lent GPU machine) the part fails with its reason while the other parts' rows still print."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow  # Python processes importing torch and diffusers


def _run(tmp_path: Path, hide_diffusers: bool) -> tuple[subprocess.CompletedProcess, dict]:
    env = {**os.environ, "PYTHON": sys.executable, "OUT": str(tmp_path / "out")}
    if hide_diffusers:
        stubs = tmp_path / "stubs"
        stubs.mkdir()
        (stubs / "diffusers.py").write_text(
            "raise ImportError('diffusers is not installed on the GPU machine (test stub)')\n"
        )
        env["PYTHONPATH"] = str(stubs)
    p = subprocess.run(
        ["bash", "bench/gpu_check.sh", "--cpu-smoke", "--skip", "siglip,kmeans,train", "--with", "inpaint"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    report = json.loads((tmp_path / "out" / "gpu_check.json").read_text())
    return p, report


def test_inpaint_part_reports_images_per_second(tmp_path):
    p, report = _run(tmp_path, hide_diffusers=False)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    assert report["parts"]["inpaint"]["status"] == "ok"
    row = next(r for r in report["rows"] if r["key"] == "inpaint_img_per_s")
    assert row["status"] == "ok" and row["data"]["images_per_s"] > 0 and row["data"]["px"] == 64
    assert "| inpaint_img_per_s |" in p.stdout


def test_inpaint_part_without_diffusers_fails_with_its_reason(tmp_path):
    p, report = _run(tmp_path, hide_diffusers=True)
    assert p.returncode == 1
    row = next(r for r in report["rows"] if r["key"] == "inpaint_img_per_s")
    assert row["status"] == "failed" and "diffusers" in row["detail"]
    assert any(r["key"] == "date" and r["status"] == "ok" for r in report["rows"])
