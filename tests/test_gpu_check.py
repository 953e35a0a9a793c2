"""bench/gpu_check.sh in --cpu-smoke mode, as on the lent GPU machine: Ray and faiss cannot be imported (stubs that
raise ImportError shadow them; open_clip and diffusers travel there as wheels), and the script still prints every row
of its table and writes the dated results file with its fixed keys. A part that fails or runs out of time is
reported as such while the others still report."""

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
    "siglip_operator_img_per_s",
    "train_samples_per_s",
    "train_mfu",
    "train_online_samples_per_s",
    "latents_images_per_s",
    "inpaint_seconds_per_edit",
    "inpaint_batch_sweep",
]
PARTS = ("env", "siglip", "siglip_operator", "train", "latents", "inpaint")
# the results file's headline figures (bench/gpu_report.py RESULT_KEYS); MFU needs a GPU's peak, so none on CPU
FIGURES = [
    "siglip_model_images_per_s",
    "siglip_operator_images_per_s",
    "train_samples_per_s",
    "train_samples_per_s_precomputed",
    "train_samples_per_s_online",
    "inpaint_seconds_per_edit",
    "latents_images_per_s",
]

pytestmark = pytest.mark.slow  # six Python processes importing torch (and timm, diffusers): minutes on two cores


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


def _results(tmp_path: Path) -> dict:
    files = sorted((tmp_path / "out").glob("gpu-smoke-20*.json"))
    assert len(files) == 1, files
    return json.loads(files[0].read_text())


def test_cpu_smoke_prints_every_row_without_ray_or_faiss(tmp_path):
    p, report = _gpu_check(tmp_path, ["ray", "faiss"])
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    table = _table(p.stdout)
    assert list(table) == ROWS, p.stdout
    by_key = {r["key"]: r for r in report["rows"]}
    assert [r["key"] for r in report["rows"]] == ROWS
    assert all(r["status"] == "ok" for r in report["rows"]), report["rows"]
    assert tuple(report["parts"]) == PARTS and all(v["status"] == "ok" for v in report["parts"].values())
    # the figures are there and say what they are
    assert table["siglip_img_per_s"][0].endswith("img/s") and by_key["siglip_img_per_s"]["data"]["images_per_s"] > 0
    assert "vit_so400m_patch14_siglip_384" == by_key["siglip_img_per_s"]["data"]["arch"]
    train = by_key["train_samples_per_s"]
    assert table["train_samples_per_s"][0].endswith("samples/s") and float(train["data"]["samples/s"]) > 0
    assert "attention self/cross dense/dense" in train["detail"]  # every token valid: no mask, the flash path
    assert float(by_key["train_online_samples_per_s"]["data"]["samples/s"]) > 0
    assert "ray not importable (ImportError" in table["libraries"][2]
    assert table["date"][0][:2] == "20" and table["torch"][0].startswith("torch ")
    assert (tmp_path / "out" / "gpu_check_logs" / "train.log").exists()
    # the dated results file: every headline key, the figures as numbers, MFU left empty without a GPU's peak
    results = _results(tmp_path)
    assert list(results)[:12] == [
        "date",
        "device",
        "commit",
        "siglip_model_images_per_s",
        "siglip_model_mfu",
        "siglip_operator_images_per_s",
        "train_samples_per_s",
        "train_mfu",
        "train_samples_per_s_precomputed",
        "train_samples_per_s_online",
        "inpaint_seconds_per_edit",
        "latents_images_per_s",
    ]
    assert all(isinstance(results[k], float) and results[k] > 0 for k in FIGURES), results
    assert results["siglip_model_mfu"] is None and results["train_mfu"] is None and results["mode"] == "smoke"
    assert len(results["commit"]) == 40 or results["commit"] == "unknown"
    assert not list((ROOT / "bench" / "results").glob("gpu-smoke-*"))  # a smoke run leaves nothing to commit


def test_the_docs_table_is_made_from_a_results_file(tmp_path):
    result = {
        "date": "2026-12-05 10:00 UTC",
        "device": "1 x NVIDIA H200",
        "commit": "0123456789abcdef",
        "siglip_model_images_per_s": 650.0,
        "siglip_model_mfu": 0.452,
        "train_samples_per_s_precomputed": 52.5,
        "train_mfu": 0.461,
        "inpaint_seconds_per_edit": 3.25,
        "inpaint_edits_per_gpu_hour": 1107.7,
    }
    f = tmp_path / "gpu-2026-12-05.json"
    f.write_text(json.dumps(result))
    p = subprocess.run(
        [sys.executable, "bench/gpu_report.py", "--table", str(f)], cwd=ROOT, capture_output=True, text=True
    )
    assert p.returncode == 0, p.stderr
    rows = dict(ln.strip("|").split("|")[:2] for ln in p.stdout.splitlines() if ln.startswith("| ") and "---" not in ln)
    rows = {k.strip(): v.strip() for k, v in rows.items()}
    assert rows["SigLIP SO400M/14 alone, MFU"] == "45.2%" and rows["ACE 0.6B DiT training, MFU"] == "46.1%"
    assert rows["SDXL inpainting, 1024 px, 30 steps, best batch (Step1X-Edit: 22 s, H800)"] == "3.250 s/edit"
    assert rows["SDXL inpainting, edits per GPU-hour at that batch"] == "1,108 edits/GPU-h"
    assert rows["latents job per GPU (SD VAE + T5-XXL)"] == "not measured"
    assert "commit 0123456789" in p.stdout


def test_failed_timed_out_and_skipped_parts_still_print_their_rows(tmp_path):
    # timm hidden: the SigLIP part fails; latents gets one second (importing torch alone takes longer); others skipped
    p, report = _gpu_check(
        tmp_path, ["ray", "faiss", "timm"], "--skip", "siglip_operator,train,inpaint", "--limit", "latents=1"
    )
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
        "siglip_operator_img_per_s": "skipped",
        "train_samples_per_s": "skipped",
        "train_mfu": "skipped",
        "train_online_samples_per_s": "skipped",
        "latents_images_per_s": "timeout",
        "inpaint_seconds_per_edit": "skipped",
        "inpaint_batch_sweep": "skipped",
    }
    assert table["siglip_img_per_s"][0].startswith("FAILED") and "timm is not installed" in table["siglip_img_per_s"][2]
    assert table["latents_images_per_s"][0] == "TIMEOUT after 1 s"
    assert table["train_mfu"][0].startswith("skipped")
    results = _results(tmp_path)  # written all the same, the missing figures empty
    assert all(results[k] is None for k in FIGURES) and results["date"][:2] == "20"
