"""bench/gpu_check.sh in --cpu-smoke mode, as on the lent GPU machine: Ray, faiss, open_clip and diffusers cannot
be imported (stubs that raise ImportError shadow them), and the script still prints every row of its table. A part
that fails or runs out of time is reported as such while the others still report."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ROWS = [
    "date",
    "gpu",
    "torch",
    "libraries",
    "siglip_img_per_s",
    "kmeans_small_k",
    "kmeans_large_k",
    "train_samples_per_s",
    "train_mfu",
]

pytestmark = pytest.mark.slow  # four Python processes importing torch (and timm): ~1 min on two shared cores


def _gpu_check(tmp_path: Path, hidden: list[str], *args: str) -> tuple[subprocess.CompletedProcess, dict]:
    stubs = tmp_path / "stubs"
    stubs.mkdir(exist_ok=True)
    for mod in hidden:
        (stubs / f"{mod}.py").write_text(
            f"raise ImportError('{mod} is not installed on the GPU machine (test stub)')\n"
        )
    out = tmp_path / "out"
    env = {**os.environ, "PYTHON": sys.executable, "OUT": str(out), "PYTHONPATH": str(stubs)}
    p = subprocess.run(
        ["bash", "bench/gpu_check.sh", "--cpu-smoke", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    report = json.loads((out / "gpu_check.json").read_text()) if (out / "gpu_check.json").exists() else {}
    return p, report


def _table(stdout: str) -> dict[str, list[str]]:
    rows = {}
    for ln in stdout.splitlines():
        cells = [c.strip() for c in ln.strip().strip("|").split("|")]
        if ln.startswith("| ") and cells[0] in ROWS:
            rows[cells[0]] = cells[1:]
    return rows


def test_cpu_smoke_prints_every_row_without_ray_or_faiss(tmp_path):
    p, report = _gpu_check(tmp_path, ["ray", "faiss", "open_clip", "diffusers"])
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    table = _table(p.stdout)
    assert list(table) == ROWS, p.stdout
    by_key = {r["key"]: r for r in report["rows"]}
    assert [r["key"] for r in report["rows"]] == ROWS
    assert all(r["status"] == "ok" for r in report["rows"]), report["rows"]
    assert report["parts"] == {k: report["parts"][k] for k in ("env", "siglip", "kmeans", "train")}
    assert all(v["status"] == "ok" for v in report["parts"].values())
    # the figures are there and say what they are
    assert table["siglip_img_per_s"][0].endswith("img/s") and by_key["siglip_img_per_s"]["data"]["images_per_s"] > 0
    assert "vit_so400m_patch14_siglip_384" == by_key["siglip_img_per_s"]["data"]["arch"]
    for k in ("kmeans_small_k", "kmeans_large_k"):  # faiss hidden: the torch stand-in runs and says it is not faiss
        assert "STAND-IN, NOT faiss" in table[k][1] and "faiss is not installed" in table[k][2]
        assert by_key[k]["data"]["is_faiss"] is False and by_key[k]["data"]["seconds"] > 0
    assert (
        table["train_samples_per_s"][0].endswith("samples/s")
        and float(by_key["train_samples_per_s"]["data"]["samples/s"]) > 0
    )
    assert "ray not importable (ImportError" in table["libraries"][2]
    assert table["date"][0][:2] == "20" and table["torch"][0].startswith("torch ")
    assert (tmp_path / "out" / "gpu_check_logs" / "train.log").exists()


def test_failed_timed_out_and_skipped_parts_still_print_their_rows(tmp_path):
    # timm hidden: the SigLIP part fails; kmeans gets one second (importing torch alone takes longer); train skipped
    p, report = _gpu_check(tmp_path, ["ray", "faiss", "timm"], "--skip", "train", "--limit", "kmeans=1")
    assert p.returncode == 1, p.stdout[-3000:] + p.stderr[-3000:]
    table = _table(p.stdout)
    assert list(table) == ROWS, p.stdout
    status = {r["key"]: r["status"] for r in report["rows"]}
    assert status == {
        "date": "ok",
        "gpu": "ok",
        "torch": "ok",
        "libraries": "ok",
        "siglip_img_per_s": "failed",
        "kmeans_small_k": "timeout",
        "kmeans_large_k": "timeout",
        "train_samples_per_s": "skipped",
        "train_mfu": "skipped",
    }
    assert table["siglip_img_per_s"][0].startswith("FAILED") and "timm is not installed" in table["siglip_img_per_s"][2]
    assert table["kmeans_small_k"][0] == "TIMEOUT after 1 s"
    assert table["train_mfu"][0].startswith("skipped")
