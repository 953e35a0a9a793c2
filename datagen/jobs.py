"""What a job is: one pass over a set of partitions. A job plans its partitions once (it may do global work first,
such as clustering, and write under OUT), names the stages of a partition in running order, and may add a section
to the run summary. pipelines/ defines the jobs and their order; the core runs whatever list it is given."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

from datagen.batch import FIELDS
from datagen.config import ConfigError, Recipe
from datagen.operator import Operator

Summarize = Callable[[Recipe, Path], Optional[dict[str, Any]]]


@dataclass(frozen=True)
class JobSpec:
    name: str  # also the name of its plan file: OUT/_plan/NAME.json
    plan: Callable[[Recipe, Path], list[dict[str, Any]]]  # partitions: [{"name": "PREFIX-00000", ...}, ...]
    stages: Callable[[Recipe], list[Operator]]  # in running order; an empty list: the job is off for this recipe
    summarize: Optional[Summarize] = None  # (recipe, out) -> {key: value} added to run.json after every job ran
    # jobs whose output this job's plan or stages read: it starts when they have finished. Jobs with nothing between
    # them run at the same time (runtime.concurrent_jobs), so one job's last partitions don't leave the cluster idle
    after: tuple[str, ...] = ()
    # True for the one job whose partitions count the run's input photos (entries read, photos decoded): later jobs
    # read the same photos again and would count them twice
    counts_inputs: bool = False
    given: tuple[str, ...] = ()  # the batch fields (datagen.batch.FIELDS) its plan fills in every partition


def check_stage_order(job: str, stages: list[Operator], given: tuple[str, ...] = ()) -> list[Operator]:
    """Stages must keep the order of their roles (read, features, make, instruct, compose, score, filter, mix, write),
    and each stage may read only fields that the plan gives (`given`) or an earlier stage writes: a stage list that
    breaks either is a bug in the pipeline module, said before any work."""
    for a, b in zip(stages, stages[1:]):
        if b.role.value < a.role.value:
            raise ConfigError(
                f"job {job}: stage {b.name} ({b.role.name.lower()}) cannot run after {a.name} ({a.role.name.lower()})"
            )
    written = set(given)
    for op in stages:
        for name in (*op.reads, *op.writes):
            if name not in FIELDS:
                raise ConfigError(f"job {job}: stage {op.name} declares {name!r}, not a batch field ({sorted(FIELDS)})")
        missing = [name for name in op.reads if name not in written]
        if missing:
            raise ConfigError(
                f"job {job}: stage {op.name} reads {', '.join(missing)}, which no earlier stage of the job writes"
                + (f" (the plan gives {', '.join(sorted(given))})" if given else "")
            )
        written.update(op.writes)
    return stages
