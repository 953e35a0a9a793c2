"""`datagen rehearse RECIPE --cluster gpus=G,cpus=C[,nodes=N]`: the whole recipe, end to end, on a loopback Ray
cluster of that shape, with a tiny checkpoint of the real architecture for every model it names (built here, loaded
through the operators' own loaders), on a few of the shipped photos. The cluster's GPUs are logical (Ray counts
them; models compute on this machine's CPU), which is the one run where a GPU-placed stage may compute on the CPU,
and it says so. It is the test that the recipe plans, fits and runs on that shape, and a dry run before renting GPUs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from datagen.planning import ClusterShape

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Outcome:
    returncode: int
    out_dir: Path
    log: str
    run: dict[str, Any] = field(default_factory=dict)
    gpu_actors_at_once: int = 0  # the most actors holding a GPU share alive at the same time
    rehearsal_notes: list[str] = field(default_factory=list)
    waves: list[list[str]] = field(default_factory=list)  # the jobs that run at once, wave by wave

    def gpu_pools(self, jobs: Optional[list[str]] = None) -> list[dict[str, Any]]:
        """The GPU pools of these jobs (all by default), as planned (run.json's invocation.stages)."""
        stages = self.run.get("invocation", {}).get("stages", {})
        return [
            sp
            for job, plans in stages.items()
            if jobs is None or job in jobs
            for sp in plans
            if sp.get("kind") == "actors" and sp.get("gpus_per_worker", 0) > 0
        ]

    def gpu_actors_planned(self) -> int:
        """The most actors holding a GPU share that one wave starts (each pool's initial actors, all pools at once)."""
        per_wave = [sum(sp["pool_initial"] for sp in self.gpu_pools(w)) for w in self.waves or [None]]
        return max(per_wave, default=0)

    def table(self) -> str:
        """Per stage: how it ran (tasks, or its pool's actors and GPU share), items in, seconds, what it skipped."""
        plans: dict[str, tuple[str, dict[str, Any]]] = {}
        for job, sps in self.run.get("invocation", {}).get("stages", {}).items():
            for sp in sps:
                for op in sp["operators"]:  # a stage of several jobs (the scorers, images and pairs): both named
                    plans[op] = (f"{plans[op][0]}, {job}", plans[op][1]) if op in plans else (job, sp)
        rows = [("stage", "job", "runs as", "items", "seconds", "skipped / fallbacks")]
        stats = self.run.get("stages", {})
        order = [op for op in plans if op in stats] + [op for op in stats if op not in plans]
        for name in order:
            st = stats[name]
            job, sp = plans.get(name, ("?", {}))
            if sp.get("kind") == "actors":
                how = f"{sp['pool_min']}-{sp['pool_max']} actors, {sp['gpus_per_worker']:g} GPU"
            else:
                how = sp.get("kind", "?")
            skipped = ", ".join(f"{k}: {v}" for k, v in sorted(st.get("skipped", {}).items()))
            rows.append((name, job, how, str(st.get("items_in", 0)), f"{st.get('seconds', 0):.2f}", skipped[:80]))
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
        lines = ["  ".join(c.ljust(w) for c, w in zip(r[:-1], widths)) + "  " + r[-1] for r in rows]
        fallbacks = self.run.get("fallbacks") or {}
        for stage, reasons in sorted(fallbacks.items()):
            lines.append(f"fallback {stage}: " + ", ".join(f"{k} x{v}" for k, v in sorted(reasons.items())))
        waves = "; ".join(f"{len(self.gpu_pools(w))} ({', '.join(w)})" for w in self.waves if self.gpu_pools(w))
        lines.append(
            f"GPU pools per wave: {waves or len(self.gpu_pools())}; actors holding a GPU share alive at once, at "
            f"most: {self.gpu_actors_at_once} (a wave starts {self.gpu_actors_planned()})"
        )
        return "\n".join(lines)


def _watch_gpu_actors(dashboard: str, stop: threading.Event, seen: list[int]) -> None:
    from ray.util.state import list_actors

    while not stop.is_set():
        try:
            actors = list_actors(
                address=dashboard, filters=[("state", "=", "ALIVE")], detail=True, raise_on_missing_output=False
            )
            seen.append(sum(1 for a in actors if (a.get("required_resources") or {}).get("GPU", 0) > 0))
        except Exception:  # noqa: BLE001 - the state API may not answer while the cluster is busy starting
            pass
        stop.wait(0.5)


def rehearse(
    recipe_path: str,
    shape: ClusterShape,
    overrides: Optional[list[str]] = None,
    photos: int = 8,
    keep: Optional[Path] = None,
    timeout_s: int = 1800,
    echo: bool = True,
) -> Outcome:
    """Build the tiny models, start the loopback cluster, run the recipe on it, and read what happened."""
    from datagen.run import waves
    from pipelines import JOBS, load_recipe
    from pipelines.rehearsal.loopback import loopback_cluster
    from pipelines.rehearsal.models import tiny_models_for

    overrides = list(overrides or [])
    recipe = load_recipe(recipe_path, overrides)
    work = Path(keep) if keep else Path(tempfile.mkdtemp(prefix="datagen-rehearsal-"))
    work.mkdir(parents=True, exist_ok=True)
    say = print if echo else (lambda *a, **k: None)
    say(f"rehearsal of {recipe_path} on {shape.describe()} (logical GPUs: models compute on this machine's CPU)")
    t0 = time.perf_counter()
    r = tiny_models_for(recipe, work / "models")
    say(f"built tiny models for {len(r.models)} model keys in {time.perf_counter() - t0:.0f} s:")
    for key, what in r.models:
        say(f"  {key}: stands for {what}")
    for note in r.notes:
        say(f"  note: {note}")
    out = work / "out"
    args = [
        *overrides,
        *r.overrides,
        f"output.dir={out}",
        "input.path=builtin:photos",
        f"input.limit={photos}",
        "input.max_side=128",
        "input.images_per_partition=2",
        "runtime.progress=false",
        # the cluster's GPUs are logical: GPU-placed stages compute on this machine's CPU, counted as fallbacks
        "runtime.allow_cpu_fallback=true",
    ]
    hook = work / "hook"
    hook.mkdir(exist_ok=True)
    lines = "\n".join("    " + ln for ln in r.worker_hooks) or "    pass"
    (hook / "sitecustomize.py").write_text(
        "import sys\nif sys.argv and sys.argv[0].endswith('default_worker.py'):\n" + lines + "\n"
    )
    env = {"PYTHONPATH": os.pathsep.join([str(hook), str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}
    log_file = work / "run.log"
    seen: list[int] = []
    with loopback_cluster(num_cpus=shape.cpus, num_gpus=shape.gpus, nodes=shape.nodes, extra_env=env) as c:
        stop = threading.Event()
        watcher = threading.Thread(target=_watch_gpu_actors, args=(c["dashboard"], stop, seen), daemon=True)
        watcher.start()
        cmd = [sys.executable, "-m", "pipelines.cli", "run", str(recipe_path), *args, "--address", c["address"]]
        with open(log_file, "w") as f:
            try:
                proc = subprocess.run(
                    cmd, env=c["env"], cwd=ROOT, stdout=f, stderr=subprocess.STDOUT, timeout=timeout_s
                )
                rc = proc.returncode
            except subprocess.TimeoutExpired:
                rc = 124
        stop.set()
        watcher.join(timeout=5)
    log = log_file.read_text(errors="replace")
    outcome = Outcome(rc, out, log, gpu_actors_at_once=max(seen, default=0), rehearsal_notes=r.notes)
    outcome.waves = [[spec.name for spec in wave] for wave in waves(JOBS, recipe.runtime.concurrent_jobs)]
    if (out / "run.json").exists():
        outcome.run = json.loads((out / "run.json").read_text())
    say(f"run {'finished' if rc == 0 else f'FAILED (exit {rc})'} in {time.perf_counter() - t0:.0f} s; log: {log_file}")
    if outcome.run:
        say(outcome.table())
    if rc != 0:
        say(log[-4000:])
    return outcome
