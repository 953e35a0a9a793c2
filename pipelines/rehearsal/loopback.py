"""A Ray cluster on 127.0.0.1 for tests and `datagen rehearse`: a head, optional nodes of the same kind (a declared
shape over N nodes) and optional worker nodes tagged with resource `victim` (fault tests), in a temp dir of its own,
declaring the CPUs and GPUs asked for (Ray only counts them: GPUs here are logical), stopped by killing exactly its
own processes (`ray stop` would also kill any other Ray on the machine, the test session's own among them).

Two things made loopback clusters flaky on the shared 2-core machine (Ray 2.60):
- Port: the dashboard agent's HTTP port defaults to 52365 on every node. When any other Ray on the machine holds it,
  this node's agent starts without HTTP (dashboard_agent.log: "Agent port #52365 failed to bind"), never registers,
  and `ray job submit` answers "No available agent to submit job" for as long as the cluster lives. 0 = a port the OS
  picks; the Ray client server's default 10001 gets a free port for the same reason.
- Start-up time: the raylet waits a fixed 15 s for the dashboard agent to report its ports and aborts when it has not
  (raylet.err: "Timed out waiting for file .../dashboard_agent_listen_port_..."). On two loaded cores the agent's
  imports alone can take longer, so a failed start is retried in a fresh temp dir, a bounded number of times."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Optional

import psutil

RAY = str(Path(sys.executable).with_name("ray"))
START_ATTEMPTS = 3
NODE_PORTS = ["--dashboard-agent-listen-port=0"]
# the dashboard head's subprocess modules (JobHead among them) get more than the default 30 s to come up
CLUSTER_ENV = {"RAY_AUTH_MODE": "disabled", "RAY_DASHBOARD_SUBPROCESS_MODULE_WAIT_READY_TIMEOUT": "120"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def kill_cluster(temp_dir: str) -> None:
    """Kill the processes whose command lines name this cluster's temp dir."""
    procs = [
        p
        for p in psutil.process_iter(["cmdline"])
        if p.pid != os.getpid() and any(temp_dir in a for a in (p.info["cmdline"] or []))
    ]
    for p in procs:
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(procs, timeout=30)


def cluster_log_errors(temp_dir: str) -> str:
    """The lines of a cluster's logs that say why a node or its agent did not come up, for failure messages."""
    lines = []
    for f in sorted(Path(temp_dir).glob("session_*/logs/*")):
        if f.name.startswith("dashboard_agent") and f.suffix == ".log":
            keep = ("ERROR", "bind")
        elif f.name == "raylet.err":
            keep = ("Timed out", "Check failed")
        else:
            continue
        lines += [
            f"{f.name}: {ln.strip()[:300]}"
            for ln in f.read_text(errors="replace").splitlines()
            if any(k in ln for k in keep)
        ]
    return "\n".join(lines[-20:])


def _start_nodes(num_cpus: float, num_gpus: float, workers: int, temp_dir: str, env: dict, nodes: int = 1) -> dict:
    port, dash, client = free_port(), free_port(), free_port()
    common = ["--node-ip-address=127.0.0.1", *NODE_PORTS, f"--temp-dir={temp_dir}", "--disable-usage-stats"]
    subprocess.run(
        [
            RAY,
            "start",
            "--head",
            f"--port={port}",
            f"--num-cpus={_per_node(num_cpus, nodes)}",
            f"--num-gpus={_per_node(num_gpus, nodes)}",
            "--include-dashboard=true",
            "--dashboard-host=127.0.0.1",
            f"--dashboard-port={dash}",
            f"--ray-client-server-port={client}",
            *common,
        ],
        check=True,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    for _ in range(nodes - 1):  # the declared shape's other nodes, the head's twins
        subprocess.run(
            [
                RAY,
                "start",
                f"--address=127.0.0.1:{port}",
                f"--num-cpus={_per_node(num_cpus, nodes)}",
                f"--num-gpus={_per_node(num_gpus, nodes)}",
                *common,
            ],
            check=True,
            env=env,
            capture_output=True,
            text=True,
            timeout=240,
        )
    for _ in range(workers):
        subprocess.run(
            [RAY, "start", f"--address=127.0.0.1:{port}", "--num-cpus=1", '--resources={"victim": 1}', *common],
            check=True,
            env=env,
            capture_output=True,
            text=True,
            timeout=240,
        )
    return {"address": f"127.0.0.1:{port}", "dashboard": f"http://127.0.0.1:{dash}", "env": env, "temp_dir": temp_dir}


def _per_node(total: float, nodes: int) -> int:
    """Ray declares whole CPUs and GPUs per node: a shape's total must divide among its nodes."""
    if total % nodes:
        raise ValueError(f"{total:g} does not divide among {nodes} nodes")
    return int(total // nodes)


@contextmanager
def loopback_cluster(
    num_cpus: float = 1,
    num_gpus: float = 0,
    workers: int = 0,
    extra_env: Optional[dict[str, str]] = None,
    nodes: int = 1,
) -> Iterator[dict]:
    """Yields {"address", "dashboard", "env", "temp_dir"}; `env` is what drivers of this cluster should run with."""
    env = {**os.environ, **CLUSTER_ENV, **(extra_env or {})}
    env.pop("RAY_ADDRESS", None)
    failures = []
    for attempt in range(1, START_ATTEMPTS + 1):
        temp_dir = tempfile.mkdtemp(prefix="rt", dir="/tmp")  # short: Ray's socket paths must stay under 108 bytes
        try:
            c = _start_nodes(num_cpus, num_gpus, workers, temp_dir, env, nodes)
            break
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as e:
            err = e.stderr if isinstance(e.stderr, str) else (e.stderr or b"").decode(errors="replace")
            failures.append(
                f"attempt {attempt}: {(err.strip().splitlines() or ['?'])[-1]}\n{cluster_log_errors(temp_dir)}"
            )
            kill_cluster(temp_dir)
    else:
        raise RuntimeError(f"`ray start` failed {START_ATTEMPTS} times:\n" + "\n".join(failures))
    if failures:
        print(f"`ray start` needed {len(failures) + 1} attempts:\n" + "\n".join(failures))
    try:
        yield c
    finally:
        kill_cluster(temp_dir)
