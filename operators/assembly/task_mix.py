"""Task mix: keep samples in the proportions the recipe asks for (per task name, task group, or `lcu` for all
multi-turn samples), dropping the surplus of over-supplied tasks with a seeded choice. The run reports achieved
against target."""

from __future__ import annotations

from collections import defaultdict
from typing import ClassVar, Literal

from pydantic import Field, field_validator

from datagen import schema
from datagen.batch import SAMPLES, WorkBatch
from datagen.operator import Operator, OperatorConfig, Role
from datagen.schema import Sample


class TaskMixConfig(OperatorConfig):
    weights: dict[str, float] = Field(default_factory=dict, description="task name, task group or 'lcu' -> weight")
    others: Literal["keep", "drop"] = "keep"

    @field_validator("weights")
    @classmethod
    def _known(cls, v: dict[str, float]) -> dict[str, float]:
        allowed = set(schema.TASKS) | set(schema.TASK_GROUPS) | {"lcu"}
        bad = sorted(set(v) - allowed)
        if bad:
            raise ValueError(
                f"unknown mix keys {bad}; allowed: 'lcu', task groups {list(schema.TASK_GROUPS)} or task names"
            )
        if any(w < 0 for w in v.values()):
            raise ValueError("weights must be >= 0")
        return v


def mix_bucket(task: str, kind: str, weights: dict[str, float]) -> str | None:
    """Which weight a sample counts against: lcu first, then its task name, then its task group."""
    if kind == schema.KIND_LCU and "lcu" in weights:
        return "lcu"
    if task in weights:
        return task
    group = schema.TASKS[task].group
    return group if group in weights else None


def mix_report(weights: dict[str, float], rows: list[dict]) -> dict[str, dict[str, float]]:
    """Target share against achieved share per weight key, over index rows with `task` and `kind`."""
    total_w = sum(weights.values())
    counts: dict[str, int] = defaultdict(int)
    for r in rows:
        b = mix_bucket(r["task"], r["kind"], weights)
        if b is not None:
            counts[b] += 1
    n = sum(counts.values())
    return {
        k: {
            "target": round(w / total_w, 4) if total_w else 0.0,
            "achieved": round(counts[k] / n, 4) if n else 0.0,
            "samples": counts[k],
        }
        for k, w in sorted(weights.items())
    }


class TaskMix(Operator):
    name = "task_mix"
    version = "1"
    role = Role.MIX  # the last stage before commit
    reads = (SAMPLES,)
    writes = (SAMPLES,)
    Config: ClassVar[type[TaskMixConfig]] = TaskMixConfig

    def describe(self) -> str:
        return f"task_mix: target weights {self.config.weights}, others {self.config.others}"

    def process(self, batch: WorkBatch) -> WorkBatch:
        w = {k: v for k, v in self.config.weights.items()}
        stats = batch.stage(self.name)
        buckets: dict[str | None, list[Sample]] = defaultdict(list)
        for s in batch.samples:
            buckets[mix_bucket(s.task, s.kind, w)].append(s)
        total_w = sum(w[b] for b in buckets if b is not None)
        keep: list[Sample] = []
        if total_w > 0:
            # the largest total that no weighted bucket present here is too small for
            n_total = min(len(buckets[b]) / (w[b] / total_w) for b in buckets if b is not None and w[b] > 0)
            rng = batch.rng(batch.partition, self.name)
            for b, samples in buckets.items():
                if b is None:
                    continue
                want = int(round(n_total * w[b] / total_w))
                samples = sorted(samples, key=lambda s: s.key)
                if want < len(samples):
                    idx = set(rng.choice(len(samples), size=want, replace=False).tolist())
                    stats.skip(f"over mix: {b}", len(samples) - want)
                    for i, s in enumerate(samples):
                        if i not in idx:
                            batch.reject(s, self.name, [f"over mix: {b}"])
                    samples = [samples[i] for i in sorted(idx)]
                keep.extend(samples)
        else:
            for b, samples in buckets.items():
                if b is not None:
                    stats.skip(f"weight 0: {b}", len(samples))
                    for s in samples:
                        batch.reject(s, self.name, [f"weight 0: {b}"])
        if self.config.others == "keep":
            keep.extend(buckets.get(None, []))
        else:
            stats.skip("not in mix", len(buckets.get(None, [])))
            for s in buckets.get(None, []):
                batch.reject(s, self.name, ["not in mix"])
        batch.samples = keep
        return batch
