"""A GPU model stage scales out to the cluster: on a loopback Ray cluster that declares 4 GPUs (Ray only counts
them), the demo recipe with the SigLIP encoder at `num_gpus: 1` runs 4 SigLIP actors at once, seen through Ray's
state API, and every partition is done exactly once. The actors get GPU ids from Ray but no CUDA here, so
datagen.devices puts them on the CPU and says so."""
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import pyarrow.parquet as pq
import pytest

from datagen import schema
from datagen.pairing.tiny_models import make_tiny_siglip
from pipelines.catalog import MAKERS

pytestmark = [pytest.mark.slow, pytest.mark.cluster]
RAY = str(Path(sys.executable).with_name("ray"))
ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _kill_cluster(temp_dir: str) -> None:
    procs = [p for p in psutil.process_iter(["cmdline"]) if p.pid != os.getpid() and any(temp_dir in a for a in (p.info["cmdline"] or []))]
    for p in procs:
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(procs, timeout=30)


def _gpu_actors_alive(dashboard: str) -> int:
    from ray.util.state import list_actors

    actors = list_actors(address=dashboard, filters=[("state", "=", "ALIVE")], detail=True, raise_on_missing_output=False)
    return sum(1 for a in actors if (a.get("required_resources") or {}).get("GPU", 0) > 0)


def test_siglip_stage_runs_one_actor_per_gpu(tmp_path):
    tiny = make_tiny_siglip(tmp_path / "siglip")
    # The tiny SigLIP trunk is a timm architecture registered at run time: every Ray worker of this cluster registers
    # it on start, as a user's plugin package would (only workers: torch in the dashboard's processes slows them down).
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(
        "import sys\n"
        "if sys.argv and sys.argv[0].endswith('default_worker.py'):\n"
        "    from datagen.pairing.tiny_models import register_tiny_siglip_trunk\n"
        "    register_tiny_siglip_trunk()\n")
    port, dash = _free_port(), _free_port()
    temp_dir = tempfile.mkdtemp(prefix="rg", dir="/tmp")
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "PYTHONPATH": os.pathsep.join([str(hook), str(ROOT)])}
    env.pop("RAY_ADDRESS", None)
    out = tmp_path / "out"
    off = [f"operators.{cls.name}.enabled=false" for cls in MAKERS]  # the images job is off: this is about the encoder
    try:
        head = subprocess.run([RAY, "start", "--head", f"--port={port}", "--num-cpus=10", "--num-gpus=4", "--node-ip-address=127.0.0.1",
                               "--include-dashboard=true", "--dashboard-host=127.0.0.1", f"--dashboard-port={dash}",
                               f"--temp-dir={temp_dir}", "--disable-usage-stats"], env=env, capture_output=True, text=True, timeout=180)
        assert head.returncode == 0, head.stdout[-2000:] + head.stderr[-2000:]
        cmd = [sys.executable, "-m", "pipelines.cli", "run", "configs/demo.yaml", f"output.dir={out}", "runtime.progress=false",
               "input.limit=32", "input.max_side=128", "input.images_per_partition=1", "instructions.methods=[template]", "pairing.encoder=siglip_features",
               f"operators.siglip_features.pretrained={tiny['local_dir']}", "operators.siglip_features.num_gpus=1",
               *off, "--address", f"127.0.0.1:{port}"]
        proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        most = 0
        deadline = time.time() + 600
        while proc.poll() is None and time.time() < deadline:
            try:
                most = max(most, _gpu_actors_alive(f"http://127.0.0.1:{dash}"))
            except Exception:  # noqa: BLE001 - the state API may not answer while the cluster is busy starting
                pass
            time.sleep(0.5)
        log = proc.communicate(timeout=60)[0]
        assert proc.returncode == 0, log[-4000:]
    finally:
        _kill_cluster(temp_dir)
    assert most == 4, f"{most} SigLIP actors alive at most\n{log[-3000:]}"
    assert "job features runs siglip_features: 1-4 actors (start 4), 2 CPU + 1 GPU each" in log
    run = json.loads((out / "run.json").read_text())
    [siglip] = [s for s in run["invocation"]["stages"]["features"] if "siglip_features" in s["operators"]]
    assert (siglip["kind"], siglip["pool_max"], siglip["gpus_per_worker"]) == ("actors", 4, 1.0)
    assert "CUDA is not available here; running on CPU" in log  # Ray's GPU ids, honestly declined on this machine
    # every partition exactly once: one marker and one features file each, every photo in exactly one of them
    plan = json.loads((out / "_plan" / "features.json").read_text())["partitions"]
    assert len(plan) >= 16
    assert sorted(p.name for p in (out / schema.FEATURES_DIR).glob("*.parquet")) == sorted(p["name"] + ".parquet" for p in plan)
    uris = [u for f in (out / schema.FEATURES_DIR).glob("*.parquet") for u in pq.read_table(f, columns=["uri"]).column("uri").to_pylist()]
    assert len(uris) == len(set(uris)) == sum(len(p["entries"]) for p in plan)
    assert all((out / "_progress" / f"{p['name']}.done.json").exists() for p in plan)
