"""Registry of the jobs a run executes in order (images, pairs, chains, ...). A job plans its partitions once
(it may do global work first, such as clustering, and write under OUT) and names the stages of a partition."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from datagen.config import Recipe
from datagen.operator import Operator


@dataclass(frozen=True)
class JobSpec:
    name: str  # also the prefix-free name of its plan file: OUT/_plan/NAME.json
    order: int  # jobs run by ascending order; a later job may read what an earlier one wrote
    plan: Callable[[Recipe, Path], list[dict[str, Any]]]  # partitions: [{"name": "img-00000", ...}, ...]
    stages: Callable[[Recipe], list[Operator]]  # empty list: the job is off for this recipe


_JOBS: dict[str, JobSpec] = {}


def register_job(spec: JobSpec) -> JobSpec:
    if spec.name in _JOBS and _JOBS[spec.name] != spec:
        raise ValueError(f"job {spec.name!r} registered twice")
    _JOBS[spec.name] = spec
    return spec


def registered_jobs() -> list[JobSpec]:
    from datagen import registry

    registry.discover()
    return sorted(_JOBS.values(), key=lambda j: (j.order, j.name))
