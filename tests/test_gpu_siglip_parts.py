"""The GPU check's SigLIP parts in --cpu-smoke mode (in this process: importing torch and open_clip twice more
would cost a minute): the model alone reports its images/s and MFU (null without a known peak) and the operator,
run from JPEG files on disk through its device path, reports its images/s beside the model alone's, in the keys
the report reads (`metrics`). tests/test_gpu_check.py runs the whole check as the lent machine does."""

import importlib
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow  # ~30 s each on two shared cores (the compile trace, the operator's worker probe)


def _part(tmp_path: Path, monkeypatch, script: str) -> dict:
    monkeypatch.syspath_prepend(str(ROOT / "bench"))
    out = tmp_path / f"{script}.json"
    monkeypatch.setattr(sys, "argv", [script, "--cpu-smoke", "--json", str(out)])
    rc = importlib.import_module(script).main()
    assert rc in (None, 0)
    return json.loads(out.read_text())


def test_model_alone_reports_images_per_s_and_mfu(tmp_path, monkeypatch):
    part = _part(tmp_path, monkeypatch, "gpu_siglip")
    m = part["metrics"]
    assert m["siglip_model_images_per_s"] > 0 and m["siglip_model_mfu"] is None  # no bf16 peak for a CPU
    [r] = part["rows"]
    assert r["key"] == "siglip_img_per_s" and set(r["data"]["sweep"]) == {"2", "4"}
    assert r["data"]["compiled_images_per_s"] > 0  # the compile path ran (traced by the eager backend on the CPU)


def test_operator_from_jpeg_files_reports_images_per_s(tmp_path, monkeypatch):
    part = _part(tmp_path, monkeypatch, "gpu_siglip_operator")
    m = part["metrics"]
    assert m["siglip_operator_images_per_s"] > 0 and m["siglip_operator_arrays_images_per_s"] > 0
    assert m["siglip_operator_fraction_of_model"] == pytest.approx(
        m["siglip_operator_images_per_s"] / m["siglip_operator_model_images_per_s"]
    )
    d = part["rows"][0]["data"]
    assert d["worker_without_gpu"] == "cpu False" and d["embedding_dim"] == 32 and d["images_timed"] == 16
