"""Where every stage of the jobs that run together goes on a cluster, decided before any work: which stages fuse into
tasks, which get actor pools, how many actors, and how many CPUs and GPUs each, so that every pool can be alive at
once, the GPUs are divided among the GPU stages by their weight, and the tasks always keep CPUs of their own.

The same plan serves `datagen plan` (against a declared shape or a live cluster) and `datagen run` (which logs it);
a recipe that cannot fit is refused here, with the stage and what is missing, before anything starts."""

from __future__ import annotations

import itertools
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
    """What a cluster offers: CPUs and GPUs in all, over `nodes` nodes, and optionally each GPU's memory (GiB; 0 when
    unknown). `per_node` lists each node's (CPUs, GPUs) when they differ (a live cluster: a CPU-only head beside GPU
    workers); without it the nodes are all alike, the totals split evenly among them."""

    cpus: float
    gpus: float = 0.0
    nodes: int = 1
    gpu_memory_gb: float = 0.0
    per_node: tuple[tuple[float, float], ...] = ()

    def __post_init__(self) -> None:
        if self.cpus <= 0 or self.gpus < 0 or self.nodes < 1:
            raise ConfigError(f"cluster shape needs cpus > 0, gpus >= 0, nodes >= 1; got {self.describe()}")
        if self.per_node:
            if len(self.per_node) != self.nodes or any(c < 0 or g < 0 for c, g in self.per_node):
                raise ConfigError(f"cluster shape: per_node lists {len(self.per_node)} nodes of {self.nodes}")
        elif abs(self.gpus / self.nodes - round(self.gpus / self.nodes)) > 1e-9:
            raise ConfigError(
                f"cluster shape: {self.gpus:g} GPUs do not divide among {self.nodes} nodes (a node has whole GPUs)"
            )

    @classmethod
    def of_nodes(cls, nodes: Sequence[tuple[float, float]], gpu_memory_gb: float = 0.0) -> "ClusterShape":
        """A cluster of these nodes, each (CPUs, GPUs)."""
        nodes = tuple((float(c), float(g)) for c, g in nodes)
        if len(set(nodes)) == 1:  # alike: the plain shape, as `--cluster` declares it
            return cls(
                cpus=sum(c for c, _ in nodes),
                gpus=sum(g for _, g in nodes),
                nodes=len(nodes),
                gpu_memory_gb=gpu_memory_gb,
            )
        return cls(
            cpus=sum(c for c, _ in nodes),
            gpus=sum(g for _, g in nodes),
            nodes=len(nodes),
            gpu_memory_gb=gpu_memory_gb,
            per_node=nodes,
        )

    @property
    def node_list(self) -> tuple[tuple[float, float], ...]:
        """Each node's (CPUs, GPUs)."""
        return self.per_node or ((self.cpus / self.nodes, self.gpus / self.nodes),) * self.nodes

    @property
    def gpus_per_node(self) -> float:
        """GPUs of the node with the most."""
        return max(g for _, g in self.node_list)

    @property
    def cpus_per_node(self) -> float:
        """CPUs of the node with the most."""
        return max(c for c, _ in self.node_list)

    def describe(self) -> str:
        mem = f", {self.gpu_memory_gb:g} GiB per GPU" if self.gpu_memory_gb else ""
        kinds = ""
        if self.per_node:
            counts: dict[tuple[float, float], int] = {}
            for n in self.per_node:
                counts[n] = counts.get(n, 0) + 1
            kinds = " (" + "; ".join(f"{k} x {c:g} CPUs + {g:g} GPUs" for (c, g), k in counts.items()) + ")"
        return f"{self.cpus:g} CPUs and {self.gpus:g} GPUs on {self.nodes} node(s){kinds}{mem}"

    @classmethod
    def parse(cls, text: str) -> "ClusterShape":
        """`gpus=8,cpus=96[,nodes=2][,gpu_memory_gb=80]`: totals over all nodes, which are alike."""
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


@dataclass(frozen=True)
class _Actor:
    """One actor the plan asks for at start: its CPUs, its GPUs (a share of one GPU, or whole GPUs of its own)."""

    pool: str
    cpus: float
    gpus: float
    whole: bool = False


def _hosts(node: tuple[float, float], a: _Actor) -> bool:
    """Whether an empty node (CPUs actors may hold, GPUs) has room for the actor."""
    cpus, gpus = node
    if a.cpus > cpus + 1e-9:
        return False
    return a.gpus <= 0 or gpus >= (a.gpus if a.whole else 1.0) - 1e-9


def _can_block(a: _Actor, others: Sequence[_Actor], nodes: Sequence[tuple[float, float]]) -> bool:
    """Whether Ray could place `others` so that `a` finds no node: every node that could host it has too few CPUs
    left, or no GPU with room for its share. Ray picks the node (and the GPU on it), so the plan must hold for every
    placement. A node is full for `a` by CPUs when the others there hold more than its CPUs less a's, by GPUs when
    they hold more than its GPUs x (1 - a's share) (each GPU then has less room than the share; a whole-GPU actor:
    more than its GPUs less a's, fractional shares filling GPUs first-fit). Some nodes full by CPUs and the rest by
    GPUs: the others are split, those with the fewest GPUs per CPU filling the first (a relaxation that lets actors
    split, so the answer errs towards "could block")."""
    hosts = [n for n in nodes if _hosts(n, a)]
    if not hosts:
        return True
    inf = float("inf")
    kinds: dict[tuple[float, float], int] = {}
    for cpus, gpus in hosts:
        room_gpu = inf if a.gpus <= 0 else (gpus - a.gpus if a.whole else gpus * (1 - a.gpus))
        key = (cpus - a.cpus, room_gpu)
        kinds[key] = kinds.get(key, 0) + 1
    # what each other actor takes of a node's GPU room for `a`: a whole GPU of its own takes a fractional a's room
    # on that GPU only (1 - a's share of it)
    cost = {id(o): o.gpus * (1 - a.gpus) if o.whole and not a.whole and a.gpus > 0 else o.gpus for o in others}
    by_ratio = sorted(others, key=lambda o: cost[id(o)] / o.cpus if o.cpus > 0 else inf)
    total_gpu = sum(cost.values())
    for counts in itertools.product(*(range(k + 1) for k in kinds.values())):
        cpu_cap = sum(n * room[0] for n, room in zip(counts, kinds))  # the nodes full by CPUs
        gpu_cap = sum((k - n) * room[1] for n, k, room in zip(counts, kinds.values(), kinds) if k > n)
        if gpu_cap == inf:
            continue  # a node without a's GPU share to fill cannot be made full by GPUs
        cpu_full, gpu_full = sum(counts) > 0, any(k > n for n, k in zip(counts, kinds.values()))
        cpu_held, gpu_left = 0.0, total_gpu
        for o in by_ratio if cpu_full else ():  # fill the CPU-full nodes with what costs the GPU-full ones least
            if cpu_held > cpu_cap + 1e-9:
                break
            take = 1.0 if o.cpus <= 0 else min(1.0, (cpu_cap + 2e-9 - cpu_held) / o.cpus)
            cpu_held += o.cpus * take
            gpu_left -= cost[id(o)] * take
        if (not cpu_full or cpu_held > cpu_cap + 1e-9) and (not gpu_full or gpu_left > gpu_cap + 1e-9):
            return True
    return False


def _first_stuck(actors: Sequence[_Actor], nodes: Sequence[tuple[float, float]]) -> Optional[_Actor]:
    """An actor that some placement of the others leaves without a node, or None when all of them always fit."""
    seen: set[tuple[float, float, bool]] = set()
    for i, a in enumerate(actors):
        if (a.cpus, a.gpus, a.whole) in seen:
            continue
        seen.add((a.cpus, a.gpus, a.whole))
        if _can_block(a, [o for j, o in enumerate(actors) if j != i], nodes):
            return a
    return None


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


def _divide_gpus(pools: list[_Pool], shape: ClusterShape, notes: list[str], most_scale: float = 1.0) -> float:
    """Give every GPU pool one actor that fits beside all the others' first actors, then spread what is left by
    weight. Declared shares up to one GPU may shrink (the stages then share GPUs); whole-GPU actors (tensor
    parallelism) keep theirs and must fit on one node. `most_scale` caps the scale of the shares (the nodes'
    CPUs, or whole-GPU actors beside the shares, may ask for smaller ones). Returns the scale of the shares."""
    if not pools:
        return most_scale
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
    scale = most_scale
    if frac:
        want = sum(p.gpus for p in frac)

        def shares(scale: float) -> list[float]:
            return [min(p.gpus, max(MIN_GPU_SHARE, p.gpus * scale)) for p in frac]

        if not _pack(shares(0.0), left):
            raise PlanError(
                f"{len(frac)} GPU stages cannot each hold {MIN_GPU_SHARE} of a GPU at once on {left} GPUs (they ask "
                f"for {want:.2f} GPUs): give some of them `device: cpu`, or more GPUs"
            )
        scale = most_scale
        if not _pack(shares(scale), left):  # the largest scale whose shares pack in any order, by bisection
            lo, hi = 0.0, scale
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
    return scale


class _NoNode(PlanError):
    """Some first actor may find no node; `gpu_bound` when smaller GPU shares could make room."""

    def __init__(self, message: str, gpu_bound: bool):
        super().__init__(message)
        self.gpu_bound = gpu_bound


def _cap_pools(gpu_pools: list[_Pool], cpu_pools: list[_Pool], work: dict[str, Optional[int]]) -> None:
    for p in gpu_pools:  # a declared concurrency caps the pool; it never takes more than its share of the GPUs
        p.most = min(p.concurrency, p.most) if p.concurrency else p.most
    for p in cpu_pools:
        p.most = p.concurrency or 10**9
    for p in gpu_pools + cpu_pools:  # no more actors than partitions to do: loading a model costs
        parts = work[p.job]
        p.most = max(1, min(p.most, parts) if parts else p.most)


def _check_nodes(pools: list[_Pool], declared: dict[int, float], nodes: Sequence[tuple[float, float]]) -> None:
    """An actor must fit on one node: its CPUs beside its GPUs."""
    for p in pools:
        where = [c for c, g in nodes if _hosts((float("inf"), g), _Actor(p.name, 0.0, p.share, p.whole))]
        kind = " with a GPU" if p.share else ""
        if not where:
            raise PlanError(f"stage {p.name} needs {p.share:g} GPU per actor on one node; no node has a GPU")
        if declared[id(p)] > max(where) + 1e-9:
            raise PlanError(
                f"stage {p.name} needs {declared[id(p)]:g} CPUs per actor on one node; the largest node{kind} has "
                f"{max(where):g} (short by {declared[id(p)] - max(where):g})"
            )


def _fit_cpus(
    gpu_pools: list[_Pool],
    cpu_pools: list[_Pool],
    declared: dict[int, float],
    rooms: Sequence[tuple[float, float]],
    task_cpus: float,
    shape: ClusterShape,
    notes: list[str],
) -> float:
    """The scale of every actor's CPUs. Every pool's first actor must fit on some node wherever Ray has put the other
    first actors, beside the CPUs every node keeps for the tasks, and the GPU pools at full size must leave the tasks
    their CPUs: the CPUs per actor shrink (a GPU actor mostly waits on its GPU) rather than the pools, then the pools.
    Raises _NoNode when even the smallest CPU shares leave some first actor without a node."""
    room = sum(c for c, _ in rooms)
    pools = gpu_pools + cpu_pools
    if room < len(pools) * MIN_CPU_SHARE - 1e-9:
        raise PlanError(
            f"{len(pools)} actor pools and the tasks need at least {task_cpus + len(pools) * MIN_CPU_SHARE:g} CPUs; "
            f"the cluster has {shape.cpus:g}"
        )

    def cpus_at(p: _Pool, scale: float) -> float:
        return max(MIN_CPU_SHARE, math.floor(declared[id(p)] * scale * 1000) / 1000)

    def first_actors(scale: float) -> list[_Actor]:
        return [_Actor(p.name, cpus_at(p, scale), p.share, p.whole or p.share >= 1 - 1e-9) for p in gpu_pools] + [
            _Actor(p.name, cpus_at(p, scale), 0.0) for p in cpu_pools
        ]

    def held(scale: float) -> float:
        return sum(cpus_at(p, scale) * p.most for p in gpu_pools) + sum(cpus_at(p, scale) for p in cpu_pools)

    def fits(scale: float) -> bool:
        return held(scale) <= room + 1e-9 and _first_stuck(first_actors(scale), rooms) is None

    lowest = MIN_CPU_SHARE / max([1.0, *declared.values()])
    while not fits(lowest):
        shrinkable = [q for q in gpu_pools if q.most > 1]
        if not shrinkable:
            acts = first_actors(lowest)
            cpus = sum(a.cpus for a in acts)
            if cpus > room + 1e-9:
                raise _NoNode(
                    f"the first actor of every pool needs {cpus:g} CPUs beside the tasks' {task_cpus:g}; the "
                    f"cluster has {shape.cpus:g} (short by {cpus - room:g})",
                    gpu_bound=False,
                )
            stuck = _first_stuck(acts, rooms)
            raise _NoNode(
                f"stage {stuck.pool}'s actor ({stuck.cpus:g} CPU, {stuck.gpus:g} GPU) may find no node with room: the "
                f"pools' first actors hold {cpus:g} CPUs and {sum(a.gpus for a in acts):g} GPUs; the nodes leave "
                f"the actors {', '.join(f'{c:g} CPUs + {g:g} GPUs' for c, g in rooms)} beside the tasks' CPUs",
                gpu_bound=True,
            )
        biggest = max(shrinkable, key=lambda q: q.most * cpus_at(q, lowest))
        biggest.most -= 1
    if fits(1.0):
        return 1.0
    lo, hi = lowest, 1.0  # the largest scale at which every first actor always finds a node, by bisection
    for _ in range(30):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if fits(mid) else (lo, mid)
    want = sum(declared[id(p)] * p.most for p in gpu_pools) + sum(declared[id(p)] for p in cpu_pools)
    keep = f" ({task_cpus / len(rooms):g} per node)" if len(rooms) > 1 else ""
    notes.append(
        f"actor pools want {want:g} CPUs at full size and the tasks keep {task_cpus:g}{keep} of {shape.cpus:g}: "
        f"each actor asks for {lo:.2f} of its CPUs, so tasks never starve and every first actor finds a node "
        f"wherever Ray puts the others"
    )
    return lo


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
    nodes = shape.node_list
    has_tasks = any(not is_pool for groups in grouped.values() for is_pool, _ in groups)
    # CPUs: the tasks (read, decode, classical stages, commits) keep a share of every node's; the pools the rest
    keep = [min(c, max(1.0, round(c * runtime.task_cpu_share, 2))) if has_tasks else 0.0 for c, _ in nodes]
    task_cpus = round(sum(keep), 2)
    rooms = [(c - k, g) for (c, g), k in zip(nodes, keep)]  # what the actors may hold on each node
    declared = {id(p): p.cpus for p in gpu_pools + cpu_pools}
    gpu_scale, shrunk = 1.0, False
    while True:
        trial: list[str] = []
        gpu_scale = _divide_gpus(gpu_pools, shape, trial, gpu_scale)
        _cap_pools(gpu_pools, cpu_pools, work)
        _check_nodes(gpu_pools + cpu_pools, declared, nodes)
        try:
            cpu_scale = _fit_cpus(gpu_pools, cpu_pools, declared, rooms, task_cpus, shape, trial)
            break
        except _NoNode as err:
            # a first actor may find no node: smaller GPU shares leave more GPUs free on every node
            if all(p.whole or p.share <= MIN_GPU_SHARE + 1e-9 for p in gpu_pools) or not err.gpu_bound:
                raise PlanError(str(err)) from None
            gpu_scale, shrunk = gpu_scale * 0.8, True
    notes.extend(trial)
    if shrunk:
        notes.append(
            f"the GPU shares are scaled down to {gpu_scale:.2f} of what they ask for so that every first actor "
            f"finds a node with a GPU of room wherever Ray puts the others"
        )
    room = sum(c for c, _ in rooms)
    for p in gpu_pools + cpu_pools:
        p.cpus = max(MIN_CPU_SHARE, math.floor(declared[id(p)] * cpu_scale * 1000) / 1000)
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
