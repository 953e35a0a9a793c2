"""Executors: run a job's stages over its partitions, either as a Ray Data streaming pipeline (default; stateful
operators become actor pools with their declared resources, the rest fused Ray tasks) or as a plain Python loop
over the same stage objects (debugging, and the baseline that measures Ray's overhead)."""
from __future__ import annotations

import dataclasses
import json
import logging
import os
import traceback
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

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
        return WorkBatch(partition=spec["name"], spec=spec, seed=self.seed, recipe=self.recipe)


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
            batch.quarantine.append(QuarantineRow(uri, OPERATOR_ERROR, op.name, f"sample {s.key}: {_describe_error(op, err)}"))
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
        d: dict[str, Any] = {"stage": self.name, "operators": [op.name for op in self.ops], "kind": self.kind,
                             "cpus_per_worker": self.num_cpus, "gpus_per_worker": self.num_gpus, "commits": self.commits}
        if self.kind == "actors":
            d.update(pool_min=self.min_size, pool_max=self.max_size, pool_initial=self.initial_size)
        return d

    def describe(self) -> str:
        what = (f"{self.min_size}-{self.max_size} actors (start {self.initial_size})" if self.kind == "actors" else "tasks")
        return (f"{self.name}: {what}, {self.num_cpus:g} CPU + {self.num_gpus:g} GPU each"
                + ("; commits partitions" if self.commits else ""))


def _gpus(op: Operator, cluster_gpus: float) -> float:
    r = op.resources()
    if r.num_gpus > 0:
        return float(r.num_gpus)
    return float(r.gpus_if_available) if cluster_gpus > 0 else 0.0


def plan_stages(stages: list[Operator], runtime: RuntimeConfig, cluster_cpus: float, cluster_gpus: float,
                partitions: int) -> list[StagePlan]:
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
        log.info("CPU actor pools want %.1f CPUs of %.1f; scaling their CPU requests by %.2f so tasks can run", want, cluster_cpus, scale)
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
def _assign_worker_gpus() -> None:
    """Tell datagen.devices which GPUs Ray gave this worker, before any model loads."""
    import ray

    from datagen import devices

    devices.assign_gpus(ray.get_gpu_ids())


class _TaskStages:
    """Consecutive stateless stages fused into one Ray task per partition."""

    def __init__(self, ops: list[Operator], job: Job, first: bool, last: bool):
        self.ops, self.job, self.first, self.last = ops, job, first, last
        self._ready = False

    def __call__(self, row: dict[str, Any]) -> dict[str, Any]:
        if not self._ready:
            _assign_worker_gpus()
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
        _assign_worker_gpus()
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
        ray.init(num_cpus=runtime.num_cpus, include_dashboard=False, log_to_driver=True)


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


def execute_ray(job: Job, runtime: RuntimeConfig, plans: list[StagePlan] | None = None) -> Iterator[dict[str, Any]]:
    import ray

    init_ray(runtime)
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = runtime.progress
    ctx.verbose_progress = False
    plans = plans or stage_plan(job, runtime)
    # A GPU pool's first actors all load their model before data flows, so they share the work from the first
    # partition (otherwise the first actor up eats the queue while the others still load); a cluster that cannot place
    # them in time fails with Ray's "not enough resources for the requested actor pool". CPU-only jobs don't wait:
    # their tasks start while the pools load.
    ctx.wait_for_min_actors_s = runtime.actor_start_timeout_s if any(sp.num_gpus > 0 for sp in plans) else -1
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
                compute=ray.data.ActorPoolStrategy(min_size=sp.min_size, max_size=sp.max_size, initial_size=sp.initial_size),
                num_cpus=sp.num_cpus,
                num_gpus=sp.num_gpus,
                max_restarts=runtime.max_task_retries,
                max_task_retries=runtime.max_task_retries,
            )
        else:
            ds = ds.map(_TaskStages(list(sp.ops), slim, first, last), num_cpus=sp.num_cpus, max_retries=runtime.max_task_retries)
    for row in ds.iter_rows():
        yield json.loads(row["result"])


def execute(job: Job, runtime: RuntimeConfig, plans: list[StagePlan] | None = None) -> Iterator[dict[str, Any]]:
    if runtime.executor == "local":
        return execute_local(job)
    return execute_ray(job, runtime, plans)
