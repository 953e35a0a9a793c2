"""operators.models.onnx: the provider a device gets, and the cached export (made once, only when checked)."""

import pytest

from operators.models.onnx import CPU, cached_export, onnx_device, providers


def test_cpu_device_gets_the_cpu_provider():
    assert providers("cpu") == [CPU]
    assert onnx_device("cpu") == "cpu"


def test_cached_export_runs_once_and_only_keeps_a_checked_file(tmp_path):
    calls = []

    def export(out):
        calls.append(out)
        out.write_bytes(b"graph")

    path = cached_export(tmp_path / "a", export, lambda p: None)
    assert path.read_bytes() == b"graph" and cached_export(tmp_path / "a", export) == path and len(calls) == 1

    def refuse(p):
        raise RuntimeError("differs")

    with pytest.raises(RuntimeError):
        cached_export(tmp_path / "b", export, refuse)
    assert not (tmp_path / "b" / "model.onnx").exists()
