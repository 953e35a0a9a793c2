"""Cluster shapes that used to hang, on loopback Ray clusters whose GPUs Ray only counts (the model computes on the
CPU here): a CPU-poor node (4 CPUs, 4 GPUs; four 1-CPU GPU actors held every CPU and the read task waited forever)
and two GPU stages on two GPUs (the first pool took both GPUs at start and the second waited, with no partition
committed). Both finish, every partition committed exactly once, and both GPU pools are alive together."""

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from operators.conditions.informative_drawings import build_generator
from pipelines.catalog import MAKERS
from pipelines.rehearsal.loopback import loopback_cluster

pytestmark = [pytest.mark.slow, pytest.mark.cluster]
ROOT = Path(__file__).resolve().parents[1]


def tiny_generator(path: Path) -> str:
    torch.manual_seed(1)
    path.parent.mkdir(parents=True)
    torch.save(build_generator(ngf=8, n_residual_blocks=3).eval().state_dict(), path)
    return str(path)


def gpu_actors_alive(dashboard: str) -> int:
    from ray.util.state import list_actors

    actors = list_actors(
        address=dashboard, filters=[("state", "=", "ALIVE")], detail=True, raise_on_missing_output=False
    )
    return sum(1 for a in actors if (a.get("required_resources") or {}).get("GPU", 0) > 0)


def run_on(cluster: dict, out: Path, models: dict[str, str], photos: int) -> tuple[str, int]:
    keep = set(models)
    off = [f"operators.{cls.name}.enabled=false" for cls in MAKERS if cls.name not in keep]
    on = [
        o
        for name, ckpt in models.items()
        for o in (
            f"operators.{name}.backend=model",
            f"operators.{name}.checkpoint={ckpt}",
            f"operators.{name}.num_gpus=1",
            f"operators.{name}.batch_size=2",
        )
    ]
    cmd = [
        sys.executable,
        "-m",
        "pipelines.cli",
        "run",
        "configs/demo.yaml",
        f"output.dir={out}",
        "runtime.progress=false",
        "runtime.allow_cpu_fallback=true",  # logical GPUs: GPU-placed stages compute on the CPU
        f"input.limit={photos}",
        "input.max_side=128",
        "input.images_per_partition=1",
        "instructions.methods=[template]",
        "pairing.enabled=false",
        "operators.lcu_chains.enabled=false",
        *off,
        *on,
        "--address",
        cluster["address"],
    ]
    proc = subprocess.Popen(
        cmd, env=cluster["env"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    most, deadline = 0, time.time() + 600
    while proc.poll() is None and time.time() < deadline:
        try:
            most = max(most, gpu_actors_alive(cluster["dashboard"]))
        except Exception:  # noqa: BLE001 - the state API may not answer while the cluster is busy starting
            pass
        time.sleep(0.5)
    if proc.poll() is None:
        proc.kill()
    log = proc.communicate(timeout=60)[0]
    assert proc.returncode == 0, log[-4000:]
    return log, most


def committed_once(out: Path, photos: int) -> dict:
    run = json.loads((out / "run.json").read_text())
    plan = json.loads((out / "_plan" / "images.json").read_text())["partitions"]
    markers = sorted(p.name for p in (out / "_progress").glob("img-*.done.json"))
    assert len(plan) == photos and markers == sorted(p["name"] + ".done.json" for p in plan)
    return run


def test_one_gpu_stage_on_a_node_with_as_many_gpus_as_cpus(tmp_path):
    ckpt = tiny_generator(tmp_path / "contour_style" / "netG_A_latest.pth")
    with loopback_cluster(num_cpus=4, num_gpus=4) as c:
        log, most = run_on(c, tmp_path / "out", {"contour": ckpt}, photos=8)
    run = committed_once(tmp_path / "out", 8)
    stages = run["invocation"]["stages"]["images"]
    gpu = [s for s in stages if s["kind"] == "actors" and s["gpus_per_worker"] > 0]
    # contour and the open_nsfw scorer (a GPU where the cluster has one) hold the four GPUs between them; their actors
    # ask for fewer CPUs so the tasks keep one; data flows when each pool's first actor is up
    assert ["contour"] in [s["operators"] for s in gpu] and all(s["pool_min"] == 1 for s in gpu)
    assert sum(s["gpus_per_worker"] * s["pool_max"] for s in gpu) == 4
    assert sum(s["cpus_per_worker"] * s["pool_max"] for s in stages if s["kind"] == "actors") <= 3 + 1e-9
    assert "tasks never starve" in log and most >= len(gpu)


def test_two_gpu_stages_start_together_on_two_gpus(tmp_path):
    models = {
        "contour": tiny_generator(tmp_path / "contour_style" / "netG_A_latest.pth"),
        "scribble": tiny_generator(tmp_path / "anime_style" / "netG_A_latest.pth"),
    }
    with loopback_cluster(num_cpus=8, num_gpus=2) as c:
        log, most = run_on(c, tmp_path / "out", models, photos=12)
    run = committed_once(tmp_path / "out", 12)
    # every GPU pool (contour, scribble, and the open_nsfw scorer, which takes a GPU where the cluster has one)
    # had its actor alive at the same time, sharing the two GPUs
    gpu_pools = [s for s in run["invocation"]["stages"]["images"] if s["gpus_per_worker"] > 0]
    assert {"contour", "scribble"} <= {o for s in gpu_pools for o in s["operators"]}
    assert sum(s["gpus_per_worker"] for s in gpu_pools) <= 2 + 1e-9
    assert most == len(gpu_pools), f"{most} GPU actors alive at most\n{log[-3000:]}"
