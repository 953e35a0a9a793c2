"""Fault tolerance on a real Ray cluster on loopback: a multi-node run (and `ray job submit`) gives the keys of a
local run; a worker node killed mid-run and an actor killed mid-run still end with exactly those keys."""

import json
import os
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import psutil
import pytest

from datagen.shards.reader import read_index
from datagen.shards.validate import validate_dir
from pipelines import load_recipe, run
from pipelines.rehearsal.loopback import RAY, cluster_log_errors, loopback_cluster

# `cluster` tests run in their own pytest process (see the Makefile): a Ray started in-process by other tests
# shares the machine's dashboard agents and node IP with these loopback clusters and confuses them.
pytestmark = [pytest.mark.slow, pytest.mark.cluster]


def _overrides(inp, out, *extra):
    return [
        f"input.path={inp}",
        f"output.dir={out}",
        "runtime.executor=ray",
        "runtime.progress=false",
        "input.images_per_partition=1",
        "input.max_side=96",
        *extra,
    ]


def _keys(out: Path) -> list[str]:
    return sorted(read_index(out).column("key").to_pylist())


@pytest.fixture
def reference(tmp_path, photo_dir):
    ref = tmp_path / "ref"
    run(load_recipe("tests/tiny_recipe.yaml", _overrides(photo_dir, ref, "runtime.executor=local")))
    return _keys(ref)


@contextmanager
def _cluster(workers: int):
    with loopback_cluster(num_cpus=1, workers=workers) as c:
        yield c


@pytest.fixture
def cluster():
    with _cluster(workers=1) as c:
        yield c


def _datagen(args, env, **kw):
    return subprocess.Popen(
        [sys.executable, "-m", "pipelines.cli", "run", "tests/tiny_recipe.yaml", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        **kw,
    )


def _wait_markers(out: Path, n: int, proc, timeout=300) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        if len(list((out / "_progress").glob("*.done.json"))) >= n:
            return
        time.sleep(0.05)


def test_multi_node_run_matches_local(tmp_path, photo_dir, reference, cluster):
    out = tmp_path / "multi"
    proc = _datagen(_overrides(photo_dir, out) + ["--address", cluster["address"]], cluster["env"])
    log, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, log[-3000:]
    assert _keys(out) == reference, (set(_keys(out)) ^ set(reference), log[-3000:])
    assert validate_dir(out)[1] == []
    nodes = json.loads(
        subprocess.run(
            [
                sys.executable,
                "-c",
                (
                    "import ray, json; ray.init(address='%s', log_to_driver=False); "
                    "print(json.dumps([n['Alive'] for n in ray.nodes()]))"
                )
                % cluster["address"],
            ],
            capture_output=True,
            text=True,
            env=cluster["env"],
            timeout=120,
        )
        .stdout.strip()
        .splitlines()[-1]
    )
    assert nodes == [True, True]


def _job_submit(cluster, entrypoint: list[str], agent_timeout: float = 150) -> subprocess.CompletedProcess:
    """`ray job submit` as a user types it. The head answers "No available agent to submit job" when its job module
    finds no registered dashboard agent on the head within 10 s: the agent registers its HTTP address in the GCS
    only after `ray start` has returned, later still on a loaded machine, and never when its port was taken (see
    _NODE_PORTS). Such answers are retried for at most `agent_timeout` s; then the test fails with the cluster's log
    errors instead of hanging."""
    t0 = time.time()
    deadline = t0 + agent_timeout
    attempt = 0
    while True:
        attempt += 1
        sub = subprocess.run(
            [RAY, "job", "submit", "--address", cluster["dashboard"], "--", *entrypoint],
            capture_output=True,
            text=True,
            env=cluster["env"],
            timeout=600,
            cwd=Path.cwd(),
        )
        if "No available agent" not in sub.stdout + sub.stderr:
            print(f"ray job submit: {attempt} attempt(s), {time.time() - t0:.0f} s")
            return sub
        if time.time() > deadline:
            pytest.fail(
                f"the head's job agent did not register within {agent_timeout:.0f} s; the cluster's logs say:\n"
                + cluster_log_errors(cluster["temp_dir"])
            )
        time.sleep(2)


def test_ray_job_submit_matches_local(tmp_path, photo_dir, reference):
    with _cluster(workers=0) as cluster:
        job_out = tmp_path / "job"
        sub = _job_submit(
            cluster,
            [
                sys.executable,
                "-m",
                "pipelines.cli",
                "run",
                str(Path("tests/tiny_recipe.yaml").resolve()),
                *_overrides(photo_dir, job_out),
            ],
        )
        assert sub.returncode == 0, (sub.stdout + sub.stderr)[-3000:]
        assert "succeeded" in sub.stdout + sub.stderr
        assert _keys(job_out) == reference
        assert validate_dir(job_out)[1] == []


def test_worker_node_killed_mid_run(tmp_path, photo_dir, reference, cluster):
    out = tmp_path / "out"
    proc = _datagen(_overrides(photo_dir, out) + ["--address", cluster["address"]], cluster["env"])
    _wait_markers(out, 2, proc)
    victims = [
        p
        for p in psutil.process_iter(["cmdline"])
        if p.info["cmdline"]
        and "raylet" in p.info["cmdline"][0]
        and any("victim" in a for a in p.info["cmdline"])
        and any(cluster["temp_dir"] in a for a in p.info["cmdline"])
    ]
    assert victims, "worker node's raylet not found"
    for v in victims:
        for child in v.children(recursive=True):
            child.kill()
        v.kill()
    log, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, log[-3000:]
    assert _keys(out) == reference and validate_dir(out)[1] == []


def test_actor_killed_mid_run(tmp_path, photo_dir, reference):
    out = tmp_path / "out"
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
    env.pop("RAY_ADDRESS", None)
    proc = _datagen(
        _overrides(photo_dir, out, "runtime.num_cpus=2", "runtime.actor_pools=[canny]"), env, start_new_session=True
    )
    _wait_markers(out, 2, proc)
    actors = [
        p
        for p in psutil.process_iter(["cmdline"])
        if p.info["cmdline"] and "_ActorStage" in " ".join(p.info["cmdline"])
    ]
    assert actors, "no actor process found"
    for a in actors:
        a.send_signal(signal.SIGKILL)
    log, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, log[-3000:]
    assert _keys(out) == reference and validate_dir(out)[1] == []
