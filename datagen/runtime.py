"""Executors: run a job's stages over its partitions, either as a Ray Data streaming pipeline (default; stateful
operators become actor pools with their declared resources, the rest fused Ray tasks) or as a plain Python loop
over the same stage objects (debugging, and the baseline that measures Ray's overhead)."""

from __future__ import annotations

import dataclasses
import gc
import json
import logging
import os
import threading
import traceback
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Optional

from datagen.batch import QuarantineRow, WorkBatch
from datagen.config import OutputConfig, RuntimeConfig
from datagen.operator import Operator
from datagen.shards.commit import commit_partition

log = logging.getLogger(__name__)

OPERATOR_ERROR = "operator_error"


@dataclass
class Job:
    """One pass over a set of partitions: make a WorkBatch from each spec, run the stages, commit the shards."""

    name: str
    partitions: list[dict[str, Any]]
    stages: list[Operator]
    out_dir: Path
    output: OutputConfig
    seed: int
    recipe: str

    def for_workers(self) -> "Job":
        """What a worker needs to make and commit a batch: without the plan (every partition's entries: gigabytes at
        100M images, sent to every worker otherwise) and without the other groups' operators (their imports)."""
        return dataclasses.replace(self, partitions=[], stages=[])

    def complete(self, batch: WorkBatch) -> dict[str, Any]:
        """Commit a finished partition: its shards (if it made samples), quarantine rows, then its done-marker."""
        return commit_partition(batch, self.out_dir, self.output)

    def new_batch(self, spec: dict[str, Any]) -> WorkBatch:
        """The partition's plan entries become the batch's typed `entries`; the rest of the spec stays as planned."""
        rest = {k: v for k, v in spec.items() if k != "entries"}
        return WorkBatch(
            partition=spec["name"], spec=rest, seed=self.seed, recipe=self.recipe, entries=list(spec.get("entries", []))
        )


def _describe_error(op: Operator, err: BaseException) -> str:
    last = traceback.extract_tb(err.__traceback__)[-1] if err.__traceback__ else None
    where = f" at {os.path.basename(last.filename)}:{last.lineno}" if last else ""
    return f"{op.name}: {type(err).__name__}: {err}{where}"


def run_stage(op: Operator, batch: WorkBatch) -> WorkBatch:
    """Run one operator on a batch; if it raises, isolate the failure to the item or sample that caused it,
    quarantine that one with the error, and keep the rest. A sample is never lost silently."""
    try:
        return op(batch)
    except Exception as err:  # noqa: BLE001 - any operator error becomes a quarantine row, not a dead run
        log.warning("partition %s: %s; retrying item by item", batch.partition, _describe_error(op, err))
    if op.role.per_item:
        kept_samples = list(batch.samples)
        items, batch.items, batch.samples = batch.items, [], []
        out_items, out_samples = [], []
        for item in items:
            batch.items, batch.samples = [item], []
            try:
                op(batch)
            except Exception as err:  # noqa: BLE001
                batch.quarantine.append(QuarantineRow(item.uri, OPERATOR_ERROR, op.name, _describe_error(op, err)))
                continue
            out_items.extend(batch.items)
            out_samples.extend(batch.samples)
        batch.items, batch.samples = out_items, kept_samples + out_samples
        return batch
    samples, out_samples = batch.samples, []
    for s in samples:
        batch.samples = [s]
        try:
            op(batch)
        except Exception as err:  # noqa: BLE001
            uri = s.provenance.sources[0] if s.provenance.sources else s.key
            batch.quarantine.append(
                QuarantineRow(uri, OPERATOR_ERROR, op.name, f"sample {s.key}: {_describe_error(op, err)}")
            )
            continue
        out_samples.extend(batch.samples)
    batch.samples = out_samples
    return batch


def _run_stages(ops: list[Operator], batch: WorkBatch) -> WorkBatch:
    for op in ops:
        batch = run_stage(op, batch)
    return batch


# Stage plan ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class StagePlan:
    """How one group of stages runs on the cluster: fused Ray tasks, or an actor pool that autoscales between
    `min_size` and `max_size` actors (starting at `initial_size`), each with `num_cpus` CPUs and `num_gpus` GPUs."""

    ops: tuple[Operator, ...]
    kind: str  # "tasks" | "actors"
    num_cpus: float
    num_gpus: float = 0.0
    min_size: int = 1
    max_size: int = 1
    initial_size: int = 1
    commits: bool = False  # this group commits each finished partition (shards, quarantine, done-marker)

    @property
    def name(self) -> str:
        return "+".join(op.name for op in self.ops) or "commit"

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "stage": self.name,
            "operators": [op.name for op in self.ops],
            "kind": self.kind,
            "cpus_per_worker": self.num_cpus,
            "gpus_per_worker": self.num_gpus,
            "commits": self.commits,
        }
        if self.kind == "actors":
            d.update(pool_min=self.min_size, pool_max=self.max_size, pool_initial=self.initial_size)
        return d

    def describe(self) -> str:
        what = (
            f"{self.min_size}-{self.max_size} actors (start {self.initial_size})" if self.kind == "actors" else "tasks"
        )
        return f"{self.name}: {what}, {self.num_cpus:g} CPU + {self.num_gpus:g} GPU each" + (
            "; commits partitions" if self.commits else ""
        )


def _gpus(op: Operator, cluster_gpus: float) -> float:
    r = op.resources()
    if r.num_gpus > 0:
        return float(r.num_gpus)
    return float(r.gpus_if_available) if cluster_gpus > 0 else 0.0


def plan_stages(
    stages: list[Operator], runtime: RuntimeConfig, cluster_cpus: float, cluster_gpus: float, partitions: int
) -> list[StagePlan]:
    """Group the stage list for Ray Data and size every actor pool from the cluster.
    - Stateless neighbours fuse into one task; an operator that holds a model (stateful), wants a GPU, or is named in
      runtime.actor_pools gets an actor pool of its own, so its `setup` runs once per actor.
    - A pool's largest size is the operator's `concurrency`, else what the cluster holds: its GPUs / GPUs per actor,
      or for CPU pools the CPUs left after one for tasks / CPUs per actor. GPU pools start at that size (capped by
      the partitions to do: loading more models than there is work is waste) and all load before data flows; CPU
      pools start at one and grow. Pools shrink when their input is consumed.
    - The stateless stages after the last pool run inside that pool, commit included, when it is a CPU pool: the
      commit then always has a reserved CPU, and finished partitions land while upstream work goes on (a separate
      commit task starves behind the upstream tasks on a small machine). Behind a GPU pool they stay a task of their
      own so the GPU never waits for JPEG encoding; pipelines keep CPU work before their GPU stages."""
    groups: list[tuple[bool, list[Operator]]] = []
    for op in stages:
        if op.stateful or _gpus(op, cluster_gpus) > 0 or op.name in runtime.actor_pools:
            groups.append((True, [op]))
        elif groups and not groups[-1][0]:
            groups[-1][1].append(op)
        else:
            groups.append((False, [op]))
    # the stateless tail runs inside the last actor pool when that pool holds no GPU (a GPU would idle meanwhile)
    if len(groups) >= 2 and not groups[-1][0] and groups[-2][0] and _gpus(groups[-2][1][0], cluster_gpus) == 0:
        tail = groups.pop()[1]
        groups[-1][1].extend(tail)
    task_budget = 1.0  # CPUs kept for the fused tasks (read, decode, classical conditions)
    cpu_pools = [g[1][0] for g in groups if g[0] and _gpus(g[1][0], cluster_gpus) == 0]
    want = sum(op.resources().num_cpus for op in cpu_pools)
    room = max(0.5, cluster_cpus - task_budget)
    scale = min(1.0, room / want) if want else 1.0
    if scale < 1.0:
        log.info(
            "CPU actor pools want %.1f CPUs of %.1f; scaling their CPU requests by %.2f so tasks can run",
            want,
            cluster_cpus,
            scale,
        )
    plans: list[StagePlan] = []
    for i, (stateful, ops) in enumerate(groups):
        last = i == len(groups) - 1
        if not stateful:
            cpus = max([op.resources().num_cpus for op in ops] + [1.0])
            plans.append(StagePlan(tuple(ops), "tasks", min(cpus, max(cluster_cpus, 0.5)), commits=last))
            continue
        head = ops[0]
        r = head.resources()
        gpus = _gpus(head, cluster_gpus)
        if gpus > 0:
            cpus = float(r.num_cpus)
            fits = max(1, int(cluster_gpus / gpus + 1e-9))
        else:
            cpus = max(0.05, round(r.num_cpus * scale, 3))
            fits = max(1, int(room / cpus + 1e-9))
        # a declared concurrency may exceed what the cluster holds now: an autoscaling cluster adds nodes
        most = r.concurrency or fits
        initial = max(1, min(most, fits, partitions)) if gpus > 0 else 1
        plans.append(StagePlan(tuple(ops), "actors", cpus, gpus, 1, most, initial, commits=last))
    if not plans:
        plans.append(StagePlan((), "tasks", 1.0, commits=True))
    return plans


# Plain loop ----------------------------------------------------------------------------------------------
def execute_local(job: Job) -> Iterator[dict[str, Any]]:
    for op in job.stages:
        op.setup()
    for spec in job.partitions:
        batch = _run_stages(job.stages, job.new_batch(spec))
        yield job.complete(batch)


# Ray Data ------------------------------------------------------------------------------------------------
def _prepare_worker() -> None:
    """Before any stage runs in a Ray worker: tell datagen.devices which GPUs Ray gave it (before any model loads),
    and keep OpenCV to the CPUs the task asked for. Ray sets OMP_NUM_THREADS to a task's num_cpus, which torch and
    OpenMP follow, but OpenCV's own thread pool takes every core of the machine: on 2 cores, two one-CPU tasks then
    ran four OpenCV threads and spent the difference switching between them."""
    import ray

    from datagen import devices

    devices.assign_gpus(ray.get_gpu_ids())
    threads = os.environ.get("OMP_NUM_THREADS", "")
    if threads.isdigit() and int(threads) > 0:
        import cv2

        cv2.setNumThreads(int(threads))


class _TaskStages:
    """Consecutive stateless stages fused into one Ray task per partition."""

    def __init__(self, ops: list[Operator], job: Job, first: bool, last: bool):
        self.ops, self.job, self.first, self.last = ops, job, first, last
        self._ready = False

    def __call__(self, row: dict[str, Any]) -> dict[str, Any]:
        if not self._ready:
            _prepare_worker()
            for op in self.ops:
                op.setup()
            self._ready = True
        batch = self.job.new_batch(json.loads(row["spec"])) if self.first else row["batch"]
        batch = _run_stages(self.ops, batch)
        if self.last:
            return {"result": json.dumps(self.job.complete(batch))}
        return {"batch": batch}


class _ActorStage:
    """A pool of Ray actors for a stateful operator (and the stateless stages fused behind it): `setup` (model
    loading) runs once per actor, after the actor learnt which GPUs Ray assigned it."""

    def __init__(self, ops: list[Operator], job: Job, first: bool, last: bool):
        _prepare_worker()
        self.inner = _TaskStages(ops, job, first, last)
        for op in ops:
            op.setup()
        self.inner._ready = True

    def __call__(self, row: dict[str, Any]) -> dict[str, Any]:
        return self.inner(row)


def init_ray(runtime: RuntimeConfig) -> None:
    import ray

    if ray.is_initialized():
        return
    address = runtime.address or os.environ.get("RAY_ADDRESS")
    if address:
        log.info("joining Ray cluster at %s", address)
        ray.init(address=address, log_to_driver=True)
    else:
        log.info("starting an embedded local Ray (%s CPUs)", runtime.num_cpus or "all")
        # Ray Data's import (most of a second) overlaps the seconds ray.init waits for its processes
        threading.Thread(target=lambda: __import__("ray.data"), name="import-ray-data", daemon=True).start()
        ray.init(num_cpus=runtime.num_cpus, include_dashboard=False, log_to_driver=True)


def _warm(ops: list[Operator]) -> None:
    _prepare_worker()
    import ray.data  # noqa: F401 - what the partition's map task imports first (half a second): done while Ray Data starts up

    for op in ops:
        try:
            op.setup()
        except Exception:  # noqa: BLE001 - the partition's own task sets up again and reports the error there
            pass


_WARMING: list = []  # the warm-up tasks in flight (their refs), awaited before the driver lets go of Ray
_WARMED: set = set()  # Ray sessions (driver job ids) whose workers were warmed


def warm_workers(plans: list[StagePlan], runtime: RuntimeConfig) -> int:
    """On an embedded local Ray, start one task per CPU that imports and sets up the stages that run as tasks
    (their models load once per worker process: see datagen.worker_cache), while the driver still builds the
    datasets: a fresh worker's imports and model loads then no longer delay the first partitions. Once per Ray
    session (the workers stay warm for later jobs); returns the tasks started (none on a cluster, where start-up is
    small next to the run). `settle_warm_up` waits for them."""
    if runtime.executor != "ray" or runtime.address or os.environ.get("RAY_ADDRESS"):
        return 0
    import ray

    ops = [op for sp in plans if sp.kind == "tasks" for op in sp.ops if not op.stateful]
    if not ops or not ray.is_initialized():
        return 0
    session = ray.get_runtime_context().get_job_id()
    if session in _WARMED:
        return 0
    _WARMED.add(session)
    n = int(ray.cluster_resources().get("CPU", 0))
    warm = ray.remote(num_cpus=1, max_retries=0)(_warm)
    _WARMING.extend(warm.remote(ops) for _ in range(n))
    return n


def settle_warm_up() -> None:
    """Wait for the warm-up tasks (long finished by the time the jobs are): none may still be in flight when Ray
    shuts down, or their results arrive at a driver that has already let go of its core worker."""
    if _WARMING:
        import ray

        refs, _WARMING[:] = list(_WARMING), []
        ray.wait(refs, num_returns=len(refs), timeout=60)


def release_ray() -> Optional[threading.Thread]:
    """Disconnect from Ray (and stop an embedded local Ray) on a background thread, for a driver that is done with
    it while it still has driver-only work to do (the summary, the report): the second or two Ray's shutdown takes
    then overlaps that work. Returns the thread to join, or None when Ray is not running."""
    import ray

    if not ray.is_initialized():
        return None
    settle_warm_up()
    gc.collect()  # ObjectRefs of finished datasets let go now, on a live core worker, not after the shutdown
    t = threading.Thread(target=ray.shutdown, name="ray-shutdown")
    t.start()
    return t


def cluster_resources(runtime: RuntimeConfig) -> tuple[float, float]:
    """(CPUs, GPUs) of the cluster the runtime runs on; (local CPUs, 0) for the plain loop."""
    if runtime.executor == "local":
        return float(os.cpu_count() or 1), 0.0
    import ray

    init_ray(runtime)
    res = ray.cluster_resources()
    return float(res.get("CPU", 1)), float(res.get("GPU", 0))


def stage_plan(job: Job, runtime: RuntimeConfig) -> list[StagePlan]:
    if runtime.executor == "local":
        return [StagePlan(tuple(job.stages), "local", 1.0, commits=True)]
    cpus, gpus = cluster_resources(runtime)
    return plan_stages(job.stages, runtime, cpus, gpus, len(job.partitions))


def job_dataset(job: Job, runtime: RuntimeConfig, plans: list[StagePlan]):
    """The job as a lazy Ray dataset: one row per partition spec in, one commit result per partition out."""
    import ray

    ds = ray.data.from_items([{"spec": json.dumps(p)} for p in job.partitions], override_num_blocks=len(job.partitions))
    slim = job.for_workers()
    # Retry limits have no named parameter in Ray Data; they travel as remote args, which Ray flags as deprecated.
    warnings.filterwarnings("ignore", message=".*ray_remote_args.*deprecated", category=DeprecationWarning)
    for gi, sp in enumerate(plans):
        first, last = gi == 0, gi == len(plans) - 1
        if sp.kind == "actors":
            ds = ds.map(
                _ActorStage,
                fn_constructor_kwargs={"ops": list(sp.ops), "job": slim, "first": first, "last": last},
                compute=ray.data.ActorPoolStrategy(
                    min_size=sp.min_size, max_size=sp.max_size, initial_size=sp.initial_size
                ),
                num_cpus=sp.num_cpus,
                num_gpus=sp.num_gpus,
                max_restarts=runtime.max_task_retries,
                max_task_retries=runtime.max_task_retries,
            )
        else:
            ds = ds.map(
                _TaskStages(list(sp.ops), slim, first, last), num_cpus=sp.num_cpus, max_retries=runtime.max_task_retries
            )
    return ds


def execute_ray(jobs: list[tuple[Job, list[StagePlan] | None]], runtime: RuntimeConfig) -> Iterator[dict[str, Any]]:
    """Run jobs as one Ray Data streaming execution (a union of their pipelines: their partitions interleave on the
    cluster) and yield each partition's commit result as it lands."""
    import ray

    init_ray(runtime)
    jobs = [(job, plans or stage_plan(job, runtime)) for job, plans in jobs]
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = runtime.progress
    ctx.verbose_progress = False
    # A GPU pool's first actors all load their model before data flows, so they share the work from the first
    # partition (otherwise the first actor up eats the queue while the others still load); a cluster that cannot place
    # them in time fails with Ray's "not enough resources for the requested actor pool". CPU-only jobs don't wait:
    # their tasks start while the pools load.
    gpu_pools = any(sp.num_gpus > 0 for _, plans in jobs for sp in plans)
    ctx.wait_for_min_actors_s = runtime.actor_start_timeout_s if gpu_pools else -1
    datasets = [job_dataset(job, runtime, plans) for job, plans in jobs]
    ds = datasets[0].union(*datasets[1:]) if len(datasets) > 1 else datasets[0]
    for row in ds.iter_rows():
        yield json.loads(row["result"])


def execute_jobs(jobs: list[tuple[Job, list[StagePlan] | None]], runtime: RuntimeConfig) -> Iterator[dict[str, Any]]:
    """Each partition's commit result of every job given, as it lands: on Ray all at once (see execute_ray); in the
    plain loop one job after another."""
    if runtime.executor == "local":
        for job, _ in jobs:
            yield from execute_local(job)
        return
    yield from execute_ray(jobs, runtime)
