"""Where every stage of the jobs that run together goes on a cluster, decided before any work: which stages fuse into
tasks, which get actor pools, how many actors, and how many CPUs and GPUs each, so that every pool can be alive at
once, the GPUs are divided among the GPU stages by their weight, and the tasks always keep CPUs of their own.

The same plan serves `datagen plan` (against a declared shape or a live cluster) and `datagen run` (which logs it);
a recipe that cannot fit is refused here, with the stage and what is missing, before anything starts."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

from datagen.config import ConfigError, RuntimeConfig
from datagen.operator import Operator

# The smallest GPU share an actor is given when GPU stages share GPUs: below it a model would hold a GPU's memory
# while getting almost none of its time, and Ray's fractional resources lose their meaning.
MIN_GPU_SHARE = 0.05
# The smallest CPU share of an actor when CPUs run short: the actor mostly waits on its GPU or its model.
MIN_CPU_SHARE = 0.1


class PlanError(ConfigError):
    """The recipe's stages cannot all run on this cluster; the message names the stage and what is missing."""


@dataclass(frozen=True)
class ClusterShape:
    """What a cluster offers: CPUs and GPUs in all, over `nodes` nodes of the same kind, and optionally each GPU's
    memory (GiB; 0 when unknown)."""

    cpus: float
    gpus: float = 0.0
    nodes: int = 1
    gpu_memory_gb: float = 0.0

    def __post_init__(self) -> None:
        if self.cpus <= 0 or self.gpus < 0 or self.nodes < 1:
            raise ConfigError(f"cluster shape needs cpus > 0, gpus >= 0, nodes >= 1; got {self.describe()}")

    @property
    def gpus_per_node(self) -> float:
        return self.gpus / self.nodes

    @property
    def cpus_per_node(self) -> float:
        return self.cpus / self.nodes

    def describe(self) -> str:
        mem = f", {self.gpu_memory_gb:g} GiB per GPU" if self.gpu_memory_gb else ""
        return f"{self.cpus:g} CPUs and {self.gpus:g} GPUs on {self.nodes} node(s){mem}"

    @classmethod
    def parse(cls, text: str) -> "ClusterShape":
        """`gpus=8,cpus=96[,nodes=2][,gpu_memory_gb=80]`: totals over all nodes."""
        keys = {"cpus": float, "gpus": float, "nodes": int, "gpu_memory_gb": float}
        values: dict[str, Any] = {}
        for part in filter(None, (p.strip() for p in text.split(","))):
            m = re.fullmatch(r"([a-z_]+)=([0-9.]+)", part)
            if not m or m.group(1) not in keys:
                raise ConfigError(
                    f"--cluster: {part!r} is not one of {sorted(keys)}=NUMBER (e.g. gpus=8,cpus=96,nodes=2)"
                )
            values[m.group(1)] = keys[m.group(1)](float(m.group(2)))
        if "cpus" not in values:
            raise ConfigError(f"--cluster {text!r}: cpus=N is required (e.g. gpus=8,cpus=96,nodes=2)")
        return cls(**values)


@dataclass(frozen=True)
class StagePlan:
    """How one group of stages runs on the cluster: fused Ray tasks, or an actor pool that autoscales between
    `min_size` and `max_size` actors (starting at `initial_size`), each with `num_cpus` CPUs and `num_gpus` GPUs."""

    ops: tuple[Operator, ...]
    kind: str  # "tasks" | "actors" | "local"
    num_cpus: float
    num_gpus: float = 0.0
    min_size: int = 1
    max_size: int = 1
    initial_size: int = 1
    commits: bool = False  # this group commits each finished partition (shards, quarantine, done-marker)

    @property
    def name(self) -> str:
        return "+".join(op.name for op in self.ops) or "commit"

    @property
    def models(self) -> tuple[str, ...]:
        """The models its workers load, each once per worker however many of its stages use it."""
        return tuple(dict.fromkeys(m for op in self.ops for m in op.models()))

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "stage": self.name,
            "operators": [op.name for op in self.ops],
            "kind": self.kind,
            "cpus_per_worker": self.num_cpus,
            "gpus_per_worker": self.num_gpus,
            "commits": self.commits,
            "models": list(self.models),
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


@dataclass
class WavePlan:
    """The plan of the jobs that run at once: each job's stage plans, and what the planner had to do to fit them."""

    shape: ClusterShape
    jobs: dict[str, list[StagePlan]]
    notes: list[str] = field(default_factory=list)
    task_cpus: float = 1.0  # CPUs no actor may hold: the fused tasks' own

    def table(self) -> str:
        rows = [("job", "stage", "kind", "actors", "CPU/worker", "GPU/worker", "operators")]
        for job, plans in self.jobs.items():
            for sp in plans:
                actors = f"{sp.min_size}-{sp.max_size} (start {sp.initial_size})" if sp.kind == "actors" else "-"
                ops = ", ".join(op.name for op in sp.ops) or "(commit)"
                shared = [m for m in sp.models if sum(m in op.models() for op in sp.ops) > 1]
                ops += f" (sharing {'; '.join(shared)})" if shared else ""
                rows.append(
                    (
                        job,
                        sp.name if len(sp.ops) <= 1 else "+".join(o.name for o in sp.ops[:1]) + "+...",
                        sp.kind,
                        actors,
                        f"{sp.num_cpus:g}",
                        f"{sp.num_gpus:g}",
                        ops,
                    )
                )
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
        lines = ["  ".join(c.ljust(w) for c, w in zip(r[:-1], widths)) + "  " + r[-1] for r in rows]
        gpu_held = sum(sp.num_gpus * sp.min_size for plans in self.jobs.values() for sp in plans if sp.kind == "actors")
        lines.append(
            f"cluster: {self.shape.describe()}; at start the pools hold {gpu_held:.2f} GPUs; "
            f"{self.task_cpus:g} CPUs are kept for tasks"
        )
        return "\n".join(lines + [f"note: {n}" for n in self.notes])


# Grouping ----------------------------------------------------------------------------------------------------------
def declared_gpus(op: Operator, cluster_gpus: float) -> float:
    """GPUs per actor the operator asks for on this cluster (a share below 1, or whole GPUs)."""
    r = op.resources()
    if r.num_gpus > 0:
        return float(r.num_gpus)
    return float(r.gpus_if_available) if cluster_gpus > 0 else 0.0


def group_stages(stages: Sequence[Operator], runtime: RuntimeConfig, cluster_gpus: float) -> list[tuple[bool, list]]:
    """(is a pool, operators) in running order. Stateless neighbours fuse into one task; an operator that holds a
    model (stateful), wants a GPU, or is named in runtime.actor_pools gets a pool of its own, so its `setup` runs
    once per actor, unless it loads a model (Operator.models) that the pool just before it loads: then it joins
    that pool (remove, replace and background change share one inpainting pipeline per actor). The stateless
    stages after the last pool run inside it, commit included, when it holds no GPU
    (the commit then always has a reserved CPU); behind a GPU pool they stay a task so the GPU never waits for JPEG
    encoding (pipelines keep CPU work before their GPU stages)."""
    groups: list[tuple[bool, list[Operator]]] = []
    for op in stages:
        if groups and groups[-1][0] and set(op.models()) & {m for o in groups[-1][1] for m in o.models()}:
            groups[-1][1].append(op)  # it loads a model the pool before it holds: one load per actor serves both
        elif op.stateful or declared_gpus(op, cluster_gpus) > 0 or op.name in runtime.actor_pools:
            groups.append((True, [op]))
        elif groups and not groups[-1][0]:
            groups[-1][1].append(op)
        else:
            groups.append((False, [op]))
    if len(groups) >= 2 and not groups[-1][0] and groups[-2][0] and declared_gpus(groups[-2][1][0], cluster_gpus) == 0:
        tail = groups.pop()[1]
        groups[-1][1].extend(tail)
    return groups


# GPU division ------------------------------------------------------------------------------------------------------
def _pack(shares: list[float], bins: int) -> bool:
    """Whether actors of these GPU shares (each <= 1) fit on `bins` GPUs in whatever order Ray places them. Ray gives
    a fractional actor its share of one GPU, the first with room: an actor finds no GPU only when every GPU has less
    room than its share, so it always fits if all the others together hold at most bins x (1 - share). (Packing them
    largest first is not enough: the order actors start in is Ray's; on 4 GPUs the rehearsal's last SigLIP actor
    once waited for a 0.36 share while 0.48 of a GPU was free in pieces.)"""
    whole = [s for s in shares if s >= 1 - 1e-9]  # a whole GPU each, which first fit leaves untouched for them
    rest = [s for s in shares if s < 1 - 1e-9]
    bins -= len(whole)
    if bins < 0 or (rest and bins < 1):
        return False
    total = sum(rest)
    return all(total - s <= bins * (1 - s) + 1e-9 for s in rest)


@dataclass
class _Pool:
    job: str
    index: int  # position in the job's group list
    ops: list[Operator]
    gpus: float  # declared GPUs per actor
    cpus: float
    concurrency: Optional[int]
    weight: float
    whole: bool = False  # its GPUs are its own: never scaled down, never shared
    share: float = 0.0  # GPUs per actor after division
    most: int = 1

    @property
    def name(self) -> str:
        return "+".join(op.name for op in self.ops)


def _divide_gpus(pools: list[_Pool], shape: ClusterShape, notes: list[str]) -> None:
    """Give every GPU pool one actor that fits beside all the others' first actors, then spread what is left by
    weight. Declared shares up to one GPU may shrink (the stages then share GPUs); whole-GPU actors (tensor
    parallelism) keep theirs and must fit on one node."""
    if not pools:
        return
    if shape.gpus <= 0:
        need = ", ".join(f"{p.name} ({p.gpus:g})" for p in pools)
        raise PlanError(
            f"the cluster has no GPU; these stages need GPUs per actor: {need}. Give them `device: cpu` "
            f"(and num_gpus: 0) to run them on the CPU, or plan for a shape with GPUs"
        )
    per_node = shape.gpus_per_node
    whole = [p for p in pools if p.whole]
    frac = [p for p in pools if not p.whole]
    for p in whole:
        if p.gpus != int(p.gpus):
            raise PlanError(f"stage {p.name}: {p.gpus:g} GPUs per actor; its GPUs must be whole (its own)")
        if p.gpus > per_node + 1e-9:
            raise PlanError(
                f"stage {p.name} needs {p.gpus:g} GPUs per actor on one node; the nodes have "
                f"{per_node:g} each (short by {p.gpus - per_node:g})"
            )
        p.share = p.gpus
    whole_gpus = sum(p.gpus for p in whole)
    left = math.floor(shape.gpus - whole_gpus + 1e-9)
    if frac and left < 1:
        raise PlanError(
            f"stages {', '.join(p.name for p in whole)} hold {whole_gpus:g} whole GPUs of "
            f"{shape.gpus:g}; none is left for {', '.join(p.name for p in frac)} (short by "
            f"{1 - (shape.gpus - whole_gpus):g} GPU)"
        )
    if whole_gpus > shape.gpus + 1e-9:
        raise PlanError(
            f"whole-GPU stages need {whole_gpus:g} GPUs at once ({', '.join(p.name for p in whole)}); "
            f"the cluster has {shape.gpus:g} (short by {whole_gpus - shape.gpus:g})"
        )
    if frac:
        want = sum(p.gpus for p in frac)

        def shares(scale: float) -> list[float]:
            return [min(p.gpus, max(MIN_GPU_SHARE, p.gpus * scale)) for p in frac]

        if not _pack(shares(0.0), left):
            raise PlanError(
                f"{len(frac)} GPU stages cannot each hold {MIN_GPU_SHARE} of a GPU at once on {left} GPUs (they ask "
                f"for {want:.2f} GPUs): give some of them `device: cpu`, or more GPUs"
            )
        scale = 1.0
        if not _pack(shares(1.0), left):  # the largest scale whose shares pack in any order, by bisection
            lo, hi = 0.0, 1.0
            for _ in range(30):
                mid = (lo + hi) / 2
                lo, hi = (mid, hi) if _pack(shares(mid), left) else (lo, mid)
            scale = lo
        for p, share in zip(frac, shares(scale)):
            p.share = math.floor(share * 10_000) / 10_000
        if scale < 1.0:
            notes.append(
                f"GPU stages ask for {want + whole_gpus:.2f} GPUs at once, the cluster has {shape.gpus:g}: each "
                f"actor's share is scaled by {scale:.2f} (at least {MIN_GPU_SHARE}), so every GPU stage runs from "
                f"the start and stages share GPUs"
            )
    # what is left after every pool's first actor goes to the pools by weight
    spare = shape.gpus - sum(p.share for p in pools)
    total_weight = sum(p.weight for p in pools)
    for p in pools:
        extra = int(spare * p.weight / total_weight / p.share + 1e-9) if spare > 0 else 0
        p.most = 1 + extra


def plan_wave(
    jobs: Sequence[tuple[str, Sequence[Operator], Optional[int]]],
    runtime: RuntimeConfig,
    shape: ClusterShape,
) -> WavePlan:
    """The plan of jobs that run at once: (job name, its stages in order, partitions to do or None when unknown).
    Every actor pool of every job can be alive beside all the others, and data flows when each pool's first actor
    is up; GPU pools hold their weighted share of the GPUs, CPU pools grow into the CPUs the tasks leave. Raises
    PlanError when the stages cannot fit."""
    notes: list[str] = []
    grouped = {name: group_stages(stages, runtime, shape.gpus) for name, stages, _ in jobs}
    work = {name: parts for name, _, parts in jobs}
    weights = runtime.gpu_weights
    gpu_pools: list[_Pool] = []
    cpu_pools: list[_Pool] = []
    for name, groups in grouped.items():
        for i, (is_pool, ops) in enumerate(groups):
            if not is_pool:
                continue
            r = ops[0].resources()  # a pool of stages sharing a model: the most any of them asks for
            g = max(declared_gpus(op, shape.gpus) for op in ops)
            cpus = max(op.resources().num_cpus for op in ops)
            w = float(weights.get(ops[0].name, g or 1.0))
            p = _Pool(name, i, ops, g, cpus, r.concurrency, w, whole=r.whole_gpus or g > 1)
            (gpu_pools if g > 0 else cpu_pools).append(p)
    _divide_gpus(gpu_pools, shape, notes)
    for p in gpu_pools:
        if p.cpus > shape.cpus_per_node + 1e-9:
            raise PlanError(f"stage {p.name} needs {p.cpus:g} CPUs per actor; the nodes have {shape.cpus_per_node:g}")
    # CPUs: the tasks (read, decode, classical stages, commits) keep some; the pools share the rest
    has_tasks = any(not is_pool for groups in grouped.values() for is_pool, _ in groups)
    task_cpus = max(1.0, round(shape.cpus * runtime.task_cpu_share, 2)) if has_tasks else 0.0
    room = shape.cpus - task_cpus
    for p in gpu_pools:  # a declared concurrency caps the pool; it never takes more than its share of the GPUs
        p.most = min(p.concurrency, p.most) if p.concurrency else p.most
    for p in cpu_pools:
        p.most = p.concurrency or 10**9
    for p in gpu_pools + cpu_pools:  # no more actors than partitions to do: loading a model costs
        parts = work[p.job]
        p.most = max(1, min(p.most, parts) if parts else p.most)
    if room < len(gpu_pools + cpu_pools) * MIN_CPU_SHARE - 1e-9:
        raise PlanError(
            f"{len(gpu_pools + cpu_pools)} actor pools and the tasks need at least "
            f"{task_cpus + len(gpu_pools + cpu_pools) * MIN_CPU_SHARE:g} CPUs; the cluster has "
            f"{shape.cpus:g}"
        )
    # GPU pools at full size must leave the tasks their CPUs: shrink the CPUs per GPU actor (it mostly waits on its
    # GPU) rather than the pools
    gpu_full = sum(p.cpus * p.most for p in gpu_pools)
    cpu_first = sum(p.cpus for p in cpu_pools)
    cpu_scale = 1.0
    if gpu_full + cpu_first > room + 1e-9:
        cpu_scale = max(MIN_CPU_SHARE / max(p.cpus for p in gpu_pools + cpu_pools), room / (gpu_full + cpu_first))
        notes.append(
            f"actor pools want {gpu_full + cpu_first:g} CPUs at full size and the tasks keep {task_cpus:g} "
            f"of {shape.cpus:g}: each actor asks for {cpu_scale:.2f} of its CPUs, so tasks never starve"
        )
    for p in gpu_pools + cpu_pools:
        p.cpus = max(MIN_CPU_SHARE, math.floor(p.cpus * cpu_scale * 1000) / 1000)
    while sum(p.cpus * p.most for p in gpu_pools) + sum(p.cpus for p in cpu_pools) > room + 1e-9:
        biggest = max(gpu_pools, key=lambda q: q.most * q.cpus)
        if biggest.most <= 1:
            break
        biggest.most -= 1
    if sum(p.cpus for p in gpu_pools + cpu_pools) > room + 1e-9:
        raise PlanError(
            f"the first actor of every pool needs {sum(p.cpus for p in gpu_pools + cpu_pools):g} CPUs "
            f"beside the tasks' {task_cpus:g}; the cluster has {shape.cpus:g}"
        )
    cpu_room = room - sum(p.cpus * p.most for p in gpu_pools)
    for p in cpu_pools:  # each CPU pool may grow into all the CPUs left (Ray Data shrinks idle pools)
        p.most = max(1, min(p.most, int(cpu_room / p.cpus + 1e-9)))
    plans: dict[str, list[StagePlan]] = {}
    by_key = {(p.job, p.index): p for p in gpu_pools + cpu_pools}
    for name, groups in grouped.items():
        out: list[StagePlan] = []
        for i, (is_pool, ops) in enumerate(groups):
            last = i == len(groups) - 1
            if not is_pool:
                cpus = max([op.resources().num_cpus for op in ops] + [1.0])
                out.append(StagePlan(tuple(ops), "tasks", min(cpus, max(task_cpus, 0.5)), commits=last))
                continue
            p = by_key[(name, i)]
            # GPU pools ask for all their actors at once (they share the first partitions instead of one actor eating
            # the queue while the others load), but data flows as soon as the first is up (min_size 1: Ray Data
            # waits for min_size only); CPU pools start at one and grow
            initial = p.most if p.share > 0 else 1
            out.append(StagePlan(tuple(ops), "actors", p.cpus, p.share, 1, p.most, initial, commits=last))
        if not out:
            out.append(StagePlan((), "tasks", 1.0, commits=True))
        plans[name] = out
    return WavePlan(shape, plans, notes, task_cpus)
