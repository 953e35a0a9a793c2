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
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Optional

from datagen import devices
from datagen.batch import WorkBatch
from datagen.config import OutputConfig, RuntimeConfig
from datagen.isolation import OPERATOR_ERROR, describe_error, isolate, sample_uri
from datagen.operator import Operator, Role
from datagen.planning import ClusterShape, StagePlan, WavePlan, plan_wave
from datagen.shards.commit import commit_partition
from datagen.transfer import pack, unpack

log = logging.getLogger(__name__)


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
    skipped: dict[str, str] = dataclasses.field(default_factory=dict)  # optional stage -> why it cannot run
    allow_cpu_fallback: bool = False  # runtime.allow_cpu_fallback, told to every worker

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
        batch = WorkBatch(
            partition=spec["name"], spec=rest, seed=self.seed, recipe=self.recipe, entries=list(spec.get("entries", []))
        )
        for name, why in self.skipped.items():  # each partition done without an optional stage counts
            batch.stage(name).fallback(why)
        return batch


def setup_stages(ops: list[Operator]) -> None:
    """Load each stage's models, a CPU fallback counted against the stage it happens in (datagen.devices)."""
    for op in ops:
        with devices.stage(op.name):
            op.setup()


def run_stage(op: Operator, batch: WorkBatch) -> WorkBatch:
    """Run one operator on a batch; if it raises, isolate the failure to the item (FEATURES/MAKE roles) or sample
    that caused it, quarantine that one with the error (OPERATOR_ERROR), and keep the rest. A sample is never lost
    silently. Per item, the samples made before this stage are set aside, so a batch that failed halfway cannot
    leave half its samples behind to be made again by the retries. A BackendBroken (a model backend past its recipe's
    failure threshold) is not an item's fault: it propagates and fails the job, and the partition is not committed."""
    with devices.stage(op.name):
        batch = _run_stage(op, batch)
    fell_back = devices.fallbacks().get(op.name)
    if fell_back:  # this worker runs the stage on the CPU although it was given a GPU (allowed by the recipe)
        batch.stage(op.name).fallback(f"cpu: {fell_back}")
    return batch


def _run_stage(op: Operator, batch: WorkBatch) -> WorkBatch:
    where = f"partition {batch.partition}: "
    if op.role.per_item:
        before = batch.samples

        def make(items: list) -> tuple[list, list]:
            batch.items, batch.samples = items, []
            out = op(batch)
            return out.items, out.samples

        runs, failed = isolate(
            make, batch.items, stage=op.name, code=OPERATOR_ERROR, uri=lambda item: item.uri, where=where
        )
        batch.items = [it for _, (items, _) in runs for it in items]
        batch.samples = before + [s for _, (_, samples) in runs for s in samples]
    else:
        rules = op.role in RULE_ROLES
        if rules and batch.made is None:  # the funnel's `made`: what reaches the recipe's first rule
            batch.made = task_counts(batch.samples)
        rejected = batch.rejects

        def judge(samples: list) -> tuple[list, list]:
            # the rejects of this try alone: a try that raised halfway leaves none behind for the retries to repeat
            batch.samples, batch.rejects = samples, []
            out = op(batch)
            return out.samples, out.rejects

        runs, failed = isolate(
            judge,
            batch.samples,
            stage=op.name,
            code=OPERATOR_ERROR,
            uri=sample_uri,
            label=lambda s: f"sample {s.key}",
            where=where,
        )
        batch.samples = [s for _, (samples, _) in runs for s in samples]
        batch.rejects = rejected + [r for _, (_, rejects) in runs for r in rejects]
        if rules:  # a sample a rule raised on is dropped: quarantined with the error, and kept among the rejects
            for f in failed:
                batch.reject(f.item, op.name, [f"{f.code}: {describe_error(f.error)}"])
    batch.quarantine.extend(f.quarantine_row() for f in failed)
    return batch


# the stages whose drops are the recipe's rules: their dropped samples are rejects, counted in the funnel
RULE_ROLES = (Role.FILTER, Role.MIX)


def task_counts(samples: list) -> dict[str, int]:
    out: dict[str, int] = {}
    for s in samples:
        out[s.task] = out.get(s.task, 0) + 1
    return dict(sorted(out.items()))


def _run_stages(ops: list[Operator], batch: WorkBatch) -> WorkBatch:
    for op in ops:
        batch = run_stage(op, batch)
    return batch


# Plain loop ----------------------------------------------------------------------------------------------
def execute_local(job: Job) -> Iterator[dict[str, Any]]:
    devices.allow_cpu_fallback(job.allow_cpu_fallback)
    setup_stages(job.stages)
    for spec in job.partitions:
        batch = _run_stages(job.stages, job.new_batch(spec))
        yield job.complete(batch)


# Ray Data ------------------------------------------------------------------------------------------------
def _prepare_worker(allow_cpu_fallback: bool = False) -> None:
    """Before any stage runs in a Ray worker: tell datagen.devices which GPUs Ray gave it (before any model loads),
    and keep OpenCV to the CPUs the task asked for. Ray sets OMP_NUM_THREADS to a task's num_cpus, which torch and
    OpenMP follow, but OpenCV's own thread pool takes every core of the machine: on 2 cores, two one-CPU tasks then
    ran four OpenCV threads and spent the difference switching between them."""
    import ray

    devices.assign_gpus(ray.get_gpu_ids())
    devices.allow_cpu_fallback(allow_cpu_fallback)
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
            _prepare_worker(self.job.allow_cpu_fallback)
            setup_stages(self.ops)
            self._ready = True
        batch = self.job.new_batch(json.loads(row["spec"])) if self.first else unpack(row["batch"])
        batch = _run_stages(self.ops, batch)
        if self.last:
            return {"result": json.dumps(self.job.complete(batch))}
        return {"batch": pack(batch)}  # to the next pool: each distinct image once, compressed (datagen.transfer)


class _ActorStage:
    """A pool of Ray actors for a stateful operator (and the stateless stages fused behind it): `setup` (model
    loading) runs once per actor, after the actor learnt which GPUs Ray assigned it."""

    def __init__(self, ops: list[Operator], job: Job, first: bool, last: bool):
        _prepare_worker(job.allow_cpu_fallback)
        self.inner = _TaskStages(ops, job, first, last)
        setup_stages(ops)
        self.inner._ready = True

    def __call__(self, row: dict[str, Any]) -> dict[str, Any]:
        return self.inner(row)


def init_ray(runtime: RuntimeConfig) -> None:
    import ray

    if ray.is_initialized():
        return
    # the recipe's environment (by default: the Hugging Face libraries offline) for the driver and every worker
    os.environ.update(runtime.env)
    env = {"env_vars": dict(runtime.env)} if runtime.env else None
    address = runtime.address or os.environ.get("RAY_ADDRESS")
    if address:
        log.info("joining Ray cluster at %s", address)
        ray.init(address=address, log_to_driver=True, runtime_env=env)
    else:
        log.info("starting an embedded local Ray (%s CPUs)", runtime.num_cpus or "all")
        # Ray Data's import (most of a second) overlaps the seconds ray.init waits for its processes
        threading.Thread(target=lambda: __import__("ray.data"), name="import-ray-data", daemon=True).start()
        ray.init(num_cpus=runtime.num_cpus, include_dashboard=False, log_to_driver=True, runtime_env=env)


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


def plan_jobs(jobs: list[Job], runtime: RuntimeConfig, shape: Optional[ClusterShape] = None) -> WavePlan:
    """The plan of jobs that run at once (datagen.planning), on the cluster the runtime runs on unless a shape is
    given; the plain loop runs every job's stages in one process."""
    if runtime.executor == "local":
        shape = shape or live_shape(runtime)
        return WavePlan(shape, {j.name: [StagePlan(tuple(j.stages), "local", 1.0, commits=True)] for j in jobs})
    return plan_wave([(j.name, j.stages, len(j.partitions)) for j in jobs], runtime, shape or live_shape(runtime))


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
    if any(plans is None for _, plans in jobs):
        wave = plan_jobs([job for job, _ in jobs], runtime)
        jobs = [(job, plans or wave.jobs[job.name]) for job, plans in jobs]
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


def live_shape(runtime: RuntimeConfig) -> ClusterShape:
    """The shape of the cluster the runtime runs on (the local machine for the plain loop): each alive node's CPUs
    and GPUs (nodes without CPUs run no stage), so that the plan packs actors onto nodes as Ray will."""
    if runtime.executor == "local":
        return ClusterShape(cpus=float(os.cpu_count() or 1))
    import ray

    init_ray(runtime)
    nodes = [n["Resources"] for n in ray.nodes() if n.get("Alive") and n.get("Resources", {}).get("CPU", 0) > 0]
    return ClusterShape.of_nodes([(float(r.get("CPU", 0)), float(r.get("GPU", 0))) for r in nodes])
