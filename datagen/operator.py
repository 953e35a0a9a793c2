"""What every operator is: a plain class that turns a WorkBatch into a WorkBatch and knows nothing of Ray.
It declares its resources and batch size; `setup` loads models once per worker; `process` does the work."""

from __future__ import annotations

import enum
import logging
import time
from dataclasses import dataclass
from typing import Any, ClassVar

from pydantic import Field

from datagen.batch import WorkBatch
from datagen.config import EXECUTION_KEYS, Section, neutral_at_default

log = logging.getLogger(__name__)


class OperatorConfig(Section):
    enabled: bool = True
    optional: bool = Field(
        False,
        description="when the stage cannot run on its workers (checkpoint files, packages, CUDA missing), skip it "
        "(said in the log, counted under run.json's fallbacks) instead of failing the run before any work",
    )


class Role(enum.Enum):
    """Where an operator sits in a job's stage list, in running order. The runtime isolates a failure per input
    item for FEATURES/MAKE stages and per sample for the others; jobs check that their stage lists keep this order."""

    READ = 1  # decode inputs into items (source photos, pairs)
    FEATURES = 2  # per-image features for pairing; makes no samples
    MAKE = 3  # make samples from items (conditions, repainting, pairs)
    INSTRUCT = 4  # write instructions of finished samples
    COMPOSE = 5  # compose finished CUs into LCUs
    SCORE = 6  # judge finished samples (CUs and LCUs): add to provenance.scores, never drop
    FILTER = 7  # drop (or mark) samples whose scores fail the recipe's thresholds
    MIX = 8  # choose the task proportions of what ships
    WRITE = 9  # write side outputs (feature files) before the commit

    @property
    def per_item(self) -> bool:
        return self in (Role.FEATURES, Role.MAKE)


@dataclass(frozen=True)
class Resources:
    """What one worker of an operator needs. The runtime maps these onto Ray tasks or an actor pool."""

    num_cpus: float = 1.0
    num_gpus: float = 0.0
    gpu_memory_gb: float = 0.0
    batch_size: int = 16  # images per model call inside a partition
    concurrency: int | None = None  # most actors in the pool (None: as many as the cluster holds)
    # GPUs per actor when the cluster has any and num_gpus is 0 (a model that wants a GPU but runs on CPU too)
    gpus_if_available: float = 0.0
    # the actor's GPUs are its own: never scaled down to share a GPU with other stages (a vLLM engine takes a share
    # of the whole GPU's memory for its cache and must not meet another stage's model there)
    whole_gpus: bool = False


class Operator:
    name: ClassVar[str] = ""
    version: ClassVar[str] = "1"
    role: ClassVar[Role] = Role.MAKE
    Config: ClassVar[type[OperatorConfig]] = OperatorConfig
    # True when the operator holds a model or other state worth loading once: it then runs as an actor pool.
    stateful: ClassVar[bool] = False
    # the batch fields (datagen.batch.FIELDS) it needs and the ones it fills: a job refuses a stage list in which a
    # stage reads a field that neither the plan nor an earlier stage gives
    reads: ClassVar[tuple[str, ...]] = ()
    writes: ClassVar[tuple[str, ...]] = ()
    # True when the job has no point without this stage: when it is optional and cannot run, the whole job (and any
    # job that runs after it) is skipped rather than the stage alone (the features job's pairing encoder)
    essential: bool = False

    def __init__(self, config: OperatorConfig | None = None, **context: Any):
        self.config = config if config is not None else self.Config()
        self.context = context  # recipe-level facts (seed, recipe fingerprint, ...), never models

    def resources(self) -> Resources:
        return Resources()

    def setup(self) -> None:
        """Load models; runs on the worker, never on the driver."""

    def process(self, batch: WorkBatch) -> WorkBatch:
        raise NotImplementedError

    def params(self) -> dict[str, Any]:
        """Parameters recorded in every sample's provenance (part of its key): not how the stage ran."""
        return self.config.model_dump(
            mode="json", exclude={"enabled", *EXECUTION_KEYS, *neutral_at_default(self.config)}
        )

    def unavailable_reason(self) -> str | None:
        """Why this operator cannot run with its config on this machine (no checkpoint set or its files absent,
        a package missing). The runtime asks it on a worker of the kind the stage is placed on, before any data
        flows (datagen.probe): the run then fails naming the stage, or skips it when `optional` says so. None:
        it can run."""
        return None

    def optional(self) -> bool:
        """May the run go on without this stage when it cannot run (the recipe's `optional: true`)?"""
        return bool(getattr(self.config, "optional", False))

    def models(self) -> tuple[str, ...]:
        """The models `setup` loads, each named by what it is and where its weights are (e.g. "diffusers inpaint
        /models/sdxl-inpainting"). Neighbouring stages that name the same model run in one actor pool, whose process
        loads it once for all of them (datagen.worker_cache.per_process); the plan shows which models share an
        actor. Empty: nothing worth sharing."""
        return ()

    def describe(self) -> str:
        """One line for the logs: what algorithm or checkpoint this operator runs."""
        return f"{self.name} v{self.version}"

    def __call__(self, batch: WorkBatch) -> WorkBatch:
        """Run `process` and account for it in the batch's per-stage stats."""
        stats = batch.stage(self.name)
        items_before = len(batch.items)
        samples_before = len(batch.samples)
        t0 = time.perf_counter()
        out = self.process(batch)
        stats.seconds += time.perf_counter() - t0
        stats.items_in += items_before
        stats.samples_out += len(out.samples) - samples_before
        return out
