"""Fault tolerance on a real Ray cluster on loopback: a multi-node run (and `ray job submit`) gives the keys of a
local run; a worker node killed mid-run and an actor killed mid-run still end with exactly those keys."""
import json
import os
from contextlib import contextmanager
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from pipelines import load_recipe
from pipelines import run
from datagen.shards.reader import read_index
from datagen.shards.validate import validate_dir

# `cluster` tests run in their own pytest process (see the Makefile): a Ray started in-process by other tests
# shares the machine's dashboard agents and node IP with these loopback clusters and confuses them.
pytestmark = [pytest.mark.slow, pytest.mark.cluster]
RAY = str(Path(sys.executable).with_name("ray"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _overrides(inp, out, *extra):
    return [f"input.path={inp}", f"output.dir={out}", "runtime.executor=ray", "runtime.progress=false",
            "input.images_per_partition=1",
            "input.max_side=96", *extra]


def _keys(out: Path) -> list[str]:
    return sorted(read_index(out).column("key").to_pylist())


@pytest.fixture
def reference(tmp_path, photo_dir):
    ref = tmp_path / "ref"
    run(load_recipe("tests/tiny_recipe.yaml", _overrides(photo_dir, ref, "runtime.executor=local")))
    return _keys(ref)


def _stop_cluster(temp_dir: str) -> None:
    """Kill only this cluster's processes (their command lines name its temp dir). `ray stop` would also kill
    any other Ray on the machine, such as the test session's own local Ray, and with it the pytest process."""
    procs = [p for p in psutil.process_iter(["cmdline"]) if p.pid != os.getpid()
             and any(temp_dir in a for a in (p.info["cmdline"] or []))]
    for p in procs:
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(procs, timeout=30)


# Two things made loopback clusters flaky on the shared 2-core machine (Ray 2.60):
# - Port: the dashboard agent's HTTP port defaults to 52365 on every node. When any other Ray on the machine holds it
#   (a colleague's test run, an embedded ray.init, another loopback cluster), this node's agent starts without HTTP
#   (dashboard_agent.log: "Agent port #52365 failed to bind"), never registers its address, and `ray job submit`
#   answers "No available agent to submit job" for as long as the cluster lives. 0 = a port the OS picks; the Ray
#   client server's default 10001 gets a free port for the same reason.
# - Start-up time: the raylet waits a fixed 15 s for the dashboard agent to report its ports and aborts when it
#   has not (raylet.err: "Timed out waiting for file .../dashboard_agent_listen_port_..."; RAY_agent_register_timeout_ms
#   does not govern this wait). On two cores loaded by other test runs the agent's imports alone can take longer,
#   and `ray start` fails. Such a start is retried in a fresh temp dir, a bounded number of times.
_NODE_PORTS = ["--dashboard-agent-listen-port=0"]
_START_ATTEMPTS = 3
# the dashboard head's subprocess modules (JobHead among them) get more than the default 30 s to come up
_CLUSTER_ENV = {"RAY_AUTH_MODE": "disabled", "RAY_DASHBOARD_SUBPROCESS_MODULE_WAIT_READY_TIMEOUT": "120"}


def _cluster_log_errors(temp_dir: str) -> str:
    """The lines of a cluster's logs that say why a node or its agent did not come up, for failure messages."""
    lines = []
    for f in sorted(Path(temp_dir).glob("session_*/logs/*")):
        if f.name.startswith("dashboard_agent") and f.suffix == ".log":
            keep = ("ERROR", "bind")
        elif f.name == "raylet.err":
            keep = ("Timed out", "Check failed")
        else:
            continue
        lines += [f"{f.name}: {ln.strip()[:300]}" for ln in f.read_text(errors="replace").splitlines()
                  if any(k in ln for k in keep)]
    return "\n".join(lines[-20:])


def _start_nodes(workers: int, temp_dir: str, env: dict) -> dict:
    port, dash, client = _free_port(), _free_port(), _free_port()
    subprocess.run([RAY, "start", "--head", f"--port={port}", "--num-cpus=1", "--node-ip-address=127.0.0.1",
                    "--include-dashboard=true", "--dashboard-host=127.0.0.1", f"--dashboard-port={dash}",
                    f"--ray-client-server-port={client}", *_NODE_PORTS, f"--temp-dir={temp_dir}",
                    "--disable-usage-stats"], check=True, env=env, capture_output=True, text=True, timeout=240)
    for _ in range(workers):
        subprocess.run([RAY, "start", f"--address=127.0.0.1:{port}", "--num-cpus=1", "--node-ip-address=127.0.0.1",
                        '--resources={"victim": 1}', *_NODE_PORTS, f"--temp-dir={temp_dir}", "--disable-usage-stats"],
                       check=True, env=env, capture_output=True, text=True, timeout=240)
    return {"address": f"127.0.0.1:{port}", "dashboard": f"http://127.0.0.1:{dash}", "env": env, "temp_dir": temp_dir}


@contextmanager
def _cluster(workers: int):
    """A head node and `workers` worker nodes (tagged with resource `victim`) on 127.0.0.1, in their own temp dir and
    on ports no other Ray on the machine uses. A start that fails is retried from scratch (see above)."""
    import tempfile

    env = {**os.environ, **_CLUSTER_ENV}
    env.pop("RAY_ADDRESS", None)
    failures = []
    for attempt in range(1, _START_ATTEMPTS + 1):
        temp_dir = tempfile.mkdtemp(prefix="rt", dir="/tmp")  # short: Ray's socket paths must stay under 108 bytes
        try:
            c = _start_nodes(workers, temp_dir, env)
            break
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as e:
            err = e.stderr if isinstance(e.stderr, str) else (e.stderr or b"").decode(errors="replace")
            failures.append(f"attempt {attempt}: {(err.strip().splitlines() or ['?'])[-1]}\n"
                            f"{_cluster_log_errors(temp_dir)}")
            _stop_cluster(temp_dir)
    else:
        pytest.fail(f"`ray start` failed {_START_ATTEMPTS} times:\n" + "\n".join(failures))
    if failures:
        print(f"`ray start` needed {len(failures) + 1} attempts:\n" + "\n".join(failures))
    try:
        yield c
    finally:
        _stop_cluster(temp_dir)


@pytest.fixture
def cluster():
    with _cluster(workers=1) as c:
        yield c


def _datagen(args, env, **kw):
    return subprocess.Popen([sys.executable, "-m", "pipelines.cli", "run", "tests/tiny_recipe.yaml", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)


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
    nodes = json.loads(subprocess.run([sys.executable, "-c", (
        "import ray, json; ray.init(address='%s', log_to_driver=False); "
        "print(json.dumps([n['Alive'] for n in ray.nodes()]))") % cluster["address"]],
        capture_output=True, text=True, env=cluster["env"], timeout=120).stdout.strip().splitlines()[-1])
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
        sub = subprocess.run([RAY, "job", "submit", "--address", cluster["dashboard"], "--", *entrypoint],
                             capture_output=True, text=True, env=cluster["env"], timeout=600, cwd=Path.cwd())
        if "No available agent" not in sub.stdout + sub.stderr:
            print(f"ray job submit: {attempt} attempt(s), {time.time() - t0:.0f} s")
            return sub
        if time.time() > deadline:
            pytest.fail(f"the head's job agent did not register within {agent_timeout:.0f} s; the cluster's logs say:\n"
                        + _cluster_log_errors(cluster["temp_dir"]))
        time.sleep(2)


def test_ray_job_submit_matches_local(tmp_path, photo_dir, reference):
    with _cluster(workers=0) as cluster:
        job_out = tmp_path / "job"
        sub = _job_submit(cluster, [sys.executable, "-m", "pipelines.cli", "run",
                                    str(Path("tests/tiny_recipe.yaml").resolve()), *_overrides(photo_dir, job_out)])
        assert sub.returncode == 0, (sub.stdout + sub.stderr)[-3000:]
        assert "succeeded" in sub.stdout + sub.stderr
        assert _keys(job_out) == reference
        assert validate_dir(job_out)[1] == []


def test_worker_node_killed_mid_run(tmp_path, photo_dir, reference, cluster):
    out = tmp_path / "out"
    proc = _datagen(_overrides(photo_dir, out) + ["--address", cluster["address"]], cluster["env"])
    _wait_markers(out, 2, proc)
    victims = [p for p in psutil.process_iter(["cmdline"]) if p.info["cmdline"] and "raylet" in p.info["cmdline"][0]
               and any("victim" in a for a in p.info["cmdline"]) and any(cluster["temp_dir"] in a for a in p.info["cmdline"])]
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
    proc = _datagen(_overrides(photo_dir, out, "runtime.num_cpus=2", "runtime.actor_pools=[canny]"), env,
                    start_new_session=True)
    _wait_markers(out, 2, proc)
    actors = [p for p in psutil.process_iter(["cmdline"])
              if p.info["cmdline"] and "_ActorStage" in " ".join(p.info["cmdline"])]
    assert actors, "no actor process found"
    for a in actors:
        a.send_signal(signal.SIGKILL)
    log, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, log[-3000:]
    assert _keys(out) == reference and validate_dir(out)[1] == []
