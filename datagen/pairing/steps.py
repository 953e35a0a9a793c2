"""The pairing's global work as jobs of their own, run and resumed like every job (datagen/run.py): each plans its
partitions once (frozen in OUT/_plan/JOB.json), each partition writes its files under OUT/_pairing/ and then the
job's commit writes its done-marker (datagen/shards/commit.py). A rerun of a finished job does nothing; a run killed
midway redoes only the partitions without a marker, and they write the same files under the same names.

    kmeans     after features   one partition: draw the seeded sample, train spherical K-means
                                (-> _pairing/kmeans.npz, kmeans.json); a GPU where the cluster has one
    assign     after kmeans     one partition per run of features files: assign every row, bucket it by group of
                                clusters (-> _pairing/buckets/g-GGGGG/FILE.parquet); a GPU where the cluster has one
    unionfind  after assign     one partition per group of clusters: two-pass union-find (-> _pairing/groups/
                                g-GGGGG.parquet and .json); CPUs only
    pairs      after unionfind  its plan merges the groups' pairs into OUT/pairs.parquet (pipelines/pairing.py)

The stages read their partition's `entries` (files, or the group) and make no samples. An error in one is the step's,
not an input's: it stops the job (StepFailed), and the partition stays without its marker for a resumed run to redo.
pipelines/pairing.py says with `Settings` whether pairing runs and with which band, centring and routes."""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np
import pyarrow.parquet as pq

from datagen import devices, paths
from datagen.batch import ENTRIES, WorkBatch
from datagen.config import Recipe
from datagen.isolation import BackendBroken, describe_error
from datagen.jobs import JobSpec
from datagen.operator import Operator, Resources, Role
from datagen.pairing import plan as P
from datagen.pairing.config import Band, PairingConfig, RouteConfig
from datagen.pairing.group import GroupTask, run_group
from datagen.pairing.kmeans import faiss_gpus


@dataclass(frozen=True)
class Settings:
    """What the pipeline decides for the pairing of a recipe: pass 1's band, centring, and the routes that run."""

    band: Band
    center: bool
    routes: list[tuple[str, RouteConfig]]


SettingsOf = Callable[[Recipe], Optional[Settings]]  # None: pairing is off for this recipe


class StepFailed(BackendBroken):
    """A pairing step failed with no input to blame: like a broken backend, it is never isolated to an item, so the
    job stops with the step's error and the partition gets no done-marker (a resumed run redoes it)."""


class _Step(Operator):
    role = Role.WRITE  # writes side outputs (under OUT/_pairing) before the commit; makes no samples
    reads = (ENTRIES,)
    writes = ()

    def __init__(self, recipe: Recipe, settings: Settings, **context: Any):
        super().__init__(None, seed=recipe.seed, **context)
        self.cfg: PairingConfig = recipe.section("pairing")
        self.settings = settings
        self.out_dir = Path(recipe.output.dir).resolve()
        self.seed = recipe.seed

    def params(self) -> dict[str, Any]:
        return {}

    def process(self, batch: WorkBatch) -> WorkBatch:
        try:
            self.step(batch)
        except BackendBroken:
            raise
        except Exception as err:  # noqa: BLE001 - re-raised as the step's failure, which stops the job
            raise StepFailed(f"{self.name}, partition {batch.partition}: {describe_error(err)}") from err
        return batch

    def step(self, batch: WorkBatch) -> None:
        raise NotImplementedError

    def unavailable_reason(self) -> str | None:
        try:
            from datagen.optional import require

            require("faiss")
        except ImportError as err:
            return str(err)
        return None


class _GpuStep(_Step):
    def resources(self) -> Resources:
        # a GPU where the cluster has one and the recipe lets faiss use it; the whole GPU (faiss's temporary memory
        # and the index are sized by the device, not by a share of it)
        gpu = self.cfg.kmeans.gpu is not False
        return Resources(num_cpus=1.0, gpus_if_available=1.0 if gpu else 0.0, whole_gpus=gpu)

    def gpus(self) -> int:
        """GPUs faiss uses here; a GPU-placed stage whose faiss has none runs on the CPU as a named fallback when the
        recipe asks for the GPU (kmeans.gpu: true), quietly for `auto`."""
        n = faiss_gpus(self.cfg.kmeans.gpu)
        if n == 0 and devices.assigned_gpus() and self.cfg.kmeans.gpu is True:
            devices.cpu_fallback("faiss has no GPU here (the faiss-cpu build, or CUDA not visible)")
        return n


class TrainKMeans(_GpuStep):
    """The kmeans job's stage: reads its seeded sample from the features files (the rows each file gives, drawn by the
    plan), takes the collection mean when centring, normalises and trains; writes the centroids and the centre."""

    name = "kmeans_train"

    def describe(self) -> str:
        k = self.cfg.kmeans
        return f"kmeans_train: spherical K-means (K <= {k.clusters}, {k.iterations} iterations, gpu {k.gpu})"

    def step(self, batch: WorkBatch) -> None:
        t0 = time.perf_counter()
        table = pq.read_table(batch.entries[0]["files"]).to_pydict()
        items = [(f, int(c), int(m)) for f, c, m in zip(table["path"], table["rows"], table["sample"]) if m]
        centroids, center, objective = P.train(
            items, int(batch.spec["k"]), self.cfg.kmeans, self.seed, self.settings.center, self.gpus()
        )
        work = P.work_dir(self.out_dir)
        P.save_kmeans(work, centroids, center)
        stats = {
            "train_sample": sum(m for _, _, m in items),
            "clusters": len(centroids),
            "kmeans_objective": objective,
            "faiss_gpus": faiss_gpus(self.cfg.kmeans.gpu),
            "seconds": round(time.perf_counter() - t0, 3),
        }
        paths.atomic_write_json(work / P.KMEANS_STATS, stats)


@lru_cache(maxsize=1)
def _kmeans(path: str, mtime_ns: int) -> tuple[np.ndarray, Optional[np.ndarray]]:
    return P.load_kmeans(Path(path))


class AssignClusters(_GpuStep):
    """The assign job's stage: every row of its run of features files goes to its nearest centroid and into the bucket
    of its group of clusters (one file per group, named after the run's first file)."""

    name = "assign_clusters"

    def describe(self) -> str:
        return f"assign_clusters: nearest centroid, buckets of {self.cfg.kmeans.clusters_per_task} clusters"

    def step(self, batch: WorkBatch) -> None:
        f = P.work_dir(self.out_dir) / P.KMEANS_FILE
        centroids, center = _kmeans(str(f), f.stat().st_mtime_ns)  # read once per worker
        P.assign_files(
            [e["path"] for e in batch.entries],
            P.work_dir(self.out_dir) / P.BUCKETS_DIR,
            centroids,
            center,
            self.cfg.kmeans.clusters_per_task,
            self.gpus(),
        )


class UnionFindGroup(_Step):
    """The unionfind job's stage: the two-pass union-find of one group of clusters (datagen/pairing/group.py) writes
    the group's pairs and what it kept and dropped. CPU work, the in-cluster search included: it asks for no GPU."""

    name = "union_find"

    def resources(self) -> Resources:
        return Resources(num_cpus=1.0)

    def describe(self) -> str:
        routes = ", ".join(n for n, _ in self.settings.routes)
        return f"union_find: pass 1 in band {self.settings.band.describe()}, pass 2 and sets per route ({routes})"

    def step(self, batch: WorkBatch) -> None:
        work = P.work_dir(self.out_dir)
        g = int(batch.entries[0]["group"])
        f = work / P.KMEANS_FILE
        _, center = _kmeans(str(f), f.stat().st_mtime_ns)
        task = GroupTask(
            group=g,
            files=sorted(str(p) for p in (work / P.BUCKETS_DIR / P.group_name(g)).glob("*.parquet")),
            out_file=str(P.group_pairs_file(work, g)),
            band=self.settings.band,
            center=center if self.settings.center else None,
            config=self.cfg,
            routes=self.settings.routes,
            seed=self.seed,
        )
        stats = run_group(task)
        paths.atomic_write_json(P.group_pairs_file(work, g).with_suffix(".json"), stats)
        batch.stage(self.name).items_in += stats["images"]


def jobs(settings: SettingsOf) -> tuple[JobSpec, JobSpec, JobSpec]:
    """The kmeans, assign and unionfind jobs, off when `settings` says pairing is off for the recipe."""

    def stages(cls: type[_Step]) -> Callable[[Recipe], list[Operator]]:
        def make(recipe: Recipe) -> list[Operator]:
            s = settings(recipe)
            return [] if s is None else [cls(recipe, s)]

        return make

    def plan_kmeans(recipe: Recipe, out: Path) -> list[dict[str, Any]]:
        s = settings(recipe)
        return P.plan_kmeans(recipe, out, bool(s and s.routes))

    given = (ENTRIES,)  # each partition's files, or its group
    return (
        JobSpec(P.KMEANS_JOB, plan_kmeans, stages(TrainKMeans), after=("features",), given=given),
        JobSpec(P.ASSIGN_JOB, P.plan_assign, stages(AssignClusters), after=(P.KMEANS_JOB,), given=given),
        JobSpec(P.UNIONFIND_JOB, P.plan_unionfind, stages(UnionFindGroup), after=(P.ASSIGN_JOB,), given=given),
    )
