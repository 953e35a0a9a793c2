"""Executors: run a job's stages over its partitions, either as a Ray Data streaming pipeline (default; stateful
operators become actor pools with their declared resources, the rest fused Ray tasks) or as a plain Python loop
over the same stage objects (debugging, and the baseline that measures Ray's overhead)."""
from __future__ import annotations

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
    if getattr(op, "role", "") == "maker":
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


# Plain loop ----------------------------------------------------------------------------------------------
def execute_local(job: Job) -> Iterator[dict[str, Any]]:
    for op in job.stages:
        op.setup()
    for spec in job.partitions:
        batch = _run_stages(job.stages, job.new_batch(spec))
        yield job.complete(batch)


# Ray Data ------------------------------------------------------------------------------------------------
class _TaskStages:
    """Consecutive stateless stages fused into one Ray task per partition."""

    def __init__(self, ops: list[Operator], job: Job, first: bool, last: bool):
        self.ops, self.job, self.first, self.last = ops, job, first, last
        self._ready = False

    def __call__(self, row: dict[str, Any]) -> dict[str, Any]:
        if not self._ready:
            for op in self.ops:
                op.setup()
            self._ready = True
        batch = self.job.new_batch(json.loads(row["spec"])) if self.first else row["batch"]
        batch = _run_stages(self.ops, batch)
        if self.last:
            return {"result": json.dumps(self.job.complete(batch))}
        return {"batch": batch}


class _ActorStage:
    """A stateful operator held by a pool of Ray actors: `setup` (model loading) runs once per actor."""

    def __init__(self, op: Operator, job: Job, first: bool, last: bool):
        self.inner = _TaskStages([op], job, first, last)
        op.setup()
        self.inner._ready = True

    def __call__(self, row: dict[str, Any]) -> dict[str, Any]:
        return self.inner(row)


def _groups(stages: list[Operator], actor_pools: tuple[str, ...] = ()) -> list[tuple[bool, list[Operator]]]:
    """Split the stage list into (stateful?, ops) runs: stateless neighbours fuse, each stateful op stands alone."""
    groups: list[tuple[bool, list[Operator]]] = []
    for op in stages:
        if op.stateful or op.resources().num_gpus > 0 or op.name in actor_pools:
            groups.append((True, [op]))
        elif groups and not groups[-1][0]:
            groups[-1][1].append(op)
        else:
            groups.append((False, [op]))
    return groups


def actor_cpu_plan(stateful: list[Operator], total_cpus: float) -> dict[str, tuple[float, int]]:
    """CPUs per actor and pool size for each stateful operator. Actor pools that claim every CPU starve the
    read and write tasks and the pipeline hangs, so pools get at most total-1 CPUs and shrink to fit."""
    budget = max(0.5, total_cpus - 1.0)
    wants = {}
    for op in stateful:
        r = op.resources()
        n = r.concurrency or (1 if r.num_gpus == 0 else 1)
        wants[op.name] = (r.num_cpus, n)
    need = sum(c * n for c, n in wants.values())
    if need <= budget or need == 0:
        return wants
    scale = budget / need
    log.info("actor pools want %.1f CPUs of %.1f; scaling their CPU requests by %.2f so tasks can run", need, total_cpus, scale)
    return {k: (max(0.05, round(c * scale, 3)), n) for k, (c, n) in wants.items()}


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


def execute_ray(job: Job, runtime: RuntimeConfig) -> Iterator[dict[str, Any]]:
    import ray

    init_ray(runtime)
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = runtime.progress
    ctx.verbose_progress = False
    total_cpus = float(ray.cluster_resources().get("CPU", 1))
    groups = _groups(job.stages, tuple(runtime.actor_pools))
    plan = actor_cpu_plan([g[1][0] for g in groups if g[0]], total_cpus)
    ds = ray.data.from_items([{"spec": json.dumps(p)} for p in job.partitions], override_num_blocks=len(job.partitions))
    # commit (the shard write) always runs as a task after the last stage
    if not groups or groups[-1][0]:
        groups.append((False, []))
    # Retry limits have no named parameter in Ray Data; they travel as remote args, which Ray flags as deprecated.
    warnings.filterwarnings("ignore", message=".*ray_remote_args.*deprecated", category=DeprecationWarning)
    for gi, (stateful, ops) in enumerate(groups):
        first, last = gi == 0, gi == len(groups) - 1
        name = "+".join(op.name for op in ops) or "commit"
        if stateful:
            op = ops[0]
            r = op.resources()
            cpus, n = plan[op.name]
            ds = ds.map(
                _ActorStage,
                fn_constructor_kwargs={"op": op, "job": job, "first": first, "last": last},
                compute=ray.data.ActorPoolStrategy(min_size=1, max_size=n),
                num_cpus=cpus,
                num_gpus=r.num_gpus,
                max_restarts=runtime.max_task_retries,
                max_task_retries=runtime.max_task_retries,
            )
        else:
            cpus = max([op.resources().num_cpus for op in ops] + [1.0])
            ds = ds.map(_TaskStages(ops, job, first, last), num_cpus=min(cpus, total_cpus), max_retries=runtime.max_task_retries)
        log.debug("stage group %d: %s (%s)", gi, name, "actors" if stateful else "tasks")
    for row in ds.iter_rows():
        yield json.loads(row["result"])


def execute(job: Job, runtime: RuntimeConfig) -> Iterator[dict[str, Any]]:
    if runtime.executor == "local":
        return execute_local(job)
    return execute_ray(job, runtime)

