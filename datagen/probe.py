"""Whether each stage can run, asked where it will run and before any data flows: on a Ray worker with the stage's
placement (its CPUs and GPU share) on the cluster of the run, or in-process for the plain loop. A stage that cannot
run fails the run (StageUnavailable, naming the stage and why) unless the recipe marks it optional: then it is skipped.

What the recipe gets wrong is refused earlier, on the driver (datagen.config); this asks what a worker lacks:
checkpoint files, packages, CUDA for a stage given a GPU."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Optional

from datagen import devices
from datagen.config import ConfigError, RuntimeConfig
from datagen.operator import Operator
from datagen.planning import StagePlan

log = logging.getLogger(__name__)


class StageUnavailable(ConfigError):
    """A stage the recipe enables cannot run on its workers, and the recipe does not mark it optional."""


@dataclass(frozen=True)
class Unavailable:
    job: str
    stage: str
    reason: str
    optional: bool


def check_ops(ops: list[Operator], gpus: float, allow_cpu_fallback: bool) -> dict[str, str]:
    """stage name -> why it cannot run in this process, for the stages that cannot. `gpus`: what the stage was
    placed with; a stage given a GPU must find CUDA here unless its device says cpu or the recipe allows the CPU."""
    devices.allow_cpu_fallback(allow_cpu_fallback)
    out: dict[str, str] = {}
    for op in ops:
        with devices.stage(op.name):
            try:
                why = op.unavailable_reason()
                if not why and gpus > 0 and getattr(op.config, "device", "auto") != "cpu":
                    devices.has_gpu()  # a CPUFallbackError unless CUDA is here or the recipe allows the CPU
            except devices.CPUFallbackError as err:
                why = str(err)
            except Exception as err:  # noqa: BLE001 - a check that breaks is a reason, said with its error
                why = f"its check failed: {type(err).__name__}: {err}"
        if why:
            out[op.name] = why
    return out


def _check_on_worker(ops: list[Operator], allow_cpu_fallback: bool) -> dict[str, str]:
    import ray

    gpus = ray.get_gpu_ids()
    devices.assign_gpus(gpus)
    return check_ops(ops, float(len(gpus)), allow_cpu_fallback)


def _local_ray(runtime: RuntimeConfig) -> bool:
    return not (runtime.address or os.environ.get("RAY_ADDRESS"))


def check_plans(plans: dict[str, list[StagePlan]], runtime: RuntimeConfig) -> list[Unavailable]:
    """Ask every stage of `plans` (job -> its stage plans) whether it can run, each on a worker of its placement.
    On an embedded local Ray, a stage placed without a GPU is asked in-process: the same machine and environment,
    without a worker's start-up."""
    allow = runtime.allow_cpu_fallback
    found: dict[tuple[str, str], str] = {}
    remote: list[tuple[str, StagePlan]] = []
    for job, sps in plans.items():
        for sp in sps:
            ops = list(sp.ops)
            if runtime.executor == "local" or (sp.num_gpus == 0 and _local_ray(runtime)):
                gpus = 0.0 if runtime.executor == "local" else sp.num_gpus
                found.update({(job, k): v for k, v in check_ops(ops, gpus, allow).items()})
            elif ops:
                remote.append((job, sp))
    if remote:
        import ray

        refs = []
        for job, sp in remote:
            task = ray.remote(num_cpus=sp.num_cpus, num_gpus=sp.num_gpus or 0, max_retries=0)(_check_on_worker)
            refs.append((job, sp, task.remote(list(sp.ops), allow)))
        for job, sp, ref in refs:
            try:
                answer = ray.get(ref, timeout=runtime.actor_start_timeout_s)
            except ray.exceptions.GetTimeoutError:
                raise StageUnavailable(
                    f"stage {sp.name} (job {job}): no worker with {sp.num_cpus:g} CPU + {sp.num_gpus:g} GPU started "
                    f"within runtime.actor_start_timeout_s={runtime.actor_start_timeout_s}s to check it"
                ) from None
            found.update({(job, k): v for k, v in answer.items()})
    ops = {(job, op.name): op for job, sps in plans.items() for sp in sps for op in sp.ops}
    return [Unavailable(job, name, why, ops[(job, name)].optional()) for (job, name), why in found.items()]


def refuse_required(unavailable: list[Unavailable]) -> None:
    """Raise StageUnavailable naming every stage that cannot run and is not optional."""
    required = [u for u in unavailable if not u.optional]
    if required:
        lines = "\n".join(f"  {u.stage} (job {u.job}): {u.reason}" for u in required)
        raise StageUnavailable(
            f"{len(required)} stage(s) the recipe enables cannot run on their workers; fix them, disable them, or mark "
            f"them `optional: true` to run without them:\n{lines}"
        )


def skipped_reason(u: Unavailable) -> str:
    return f"skipped (optional): {u.reason}"


def remaining(stages: list[Operator], skipped: dict[str, str]) -> Optional[list[Operator]]:
    """The stage list without the skipped stages, or None when a skipped stage is one the job cannot do without
    (Operator.essential: the pairing encoder of the features job)."""
    if any(getattr(op, "essential", False) for op in stages if op.name in skipped):
        return None
    return [op for op in stages if op.name not in skipped]
