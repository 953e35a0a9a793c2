"""The global step of the pairs job, run once when the job is planned: draw a seeded sample of the embeddings, train
spherical K-means, assign every image and bucket it by group of clusters, run one union-find task per group, then
merge the groups' pairs into OUT/pairs.parquet (one row group per partition of the pairs job) and summarise.

Under runtime.executor=ray the driver never holds embeddings: it reads the files' row counts (parquet footers), draws
how many sample rows each file gives, and sends out paths and those counts. The training task reads its own sample,
takes the collection mean, normalises and trains, and returns the K x d centroids; the assignment tasks read their
runs of files and get the centroids once through the object store; the union-find tasks read their buckets. This
module knows no operator: the caller (pipelines/pairing.py) passes pass 1's band and centring and the routes."""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from datagen import paths, schema
from datagen.batch import derive_seed
from datagen.config import Recipe
from datagen.pairing.config import Band, KMeansConfig, PairingConfig, RouteConfig
from datagen.pairing.features import features_files
from datagen.pairing.group import GroupTask, run_group
from datagen.pairing.kmeans import (
    Assigner,
    effective_clusters,
    faiss_gpus,
    normalize,
    normalize_inplace,
    train_spherical,
)
from datagen.pairing.parallel import parallel_map, task_gpus

log = logging.getLogger(__name__)

WORK_DIR = "_pairing"  # intermediate files of the global step, and its summary
SUMMARY_FILE = "summary.json"
PREFIX = "pair"
ASSIGN_ROWS = 32_768  # rows per assignment task (a run of whole files): one centroid index per run, not per file
COUNT_FILES = 4_096  # features files whose footers one task reads for their row counts
READ_THREADS = 8  # file reads in flight inside the training task
_EXACT_MAX = 10**9  # numpy's multivariate hypergeometric sampler is exact below this many rows


def read_embeddings(path: str, rows: np.ndarray | None = None) -> np.ndarray:
    """float32 embeddings (n x d) of one features file, or of its `rows` only."""
    return _embedding_matrix(pq.read_table(path, columns=["embedding"]), rows)


def _embedding_matrix(table: pa.Table, rows: np.ndarray | None = None) -> np.ndarray:
    col = table.column("embedding").combine_chunks()
    n = len(col)
    if n == 0:
        return np.zeros((0, 0), np.float32)
    x = col.flatten().to_numpy(zero_copy_only=False).reshape(n, -1)  # float16, as stored
    return np.asarray(x if rows is None else x[rows], np.float32)


def _count_rows(files: list[str]) -> list[int]:
    return [pq.ParquetFile(f).metadata.num_rows for f in files]


def sample_counts(counts: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """How many rows each file gives to a seeded uniform sample of `n` of all rows (without replacement): the
    per-file counts of such a sample, drawn directly (multivariate hypergeometric), so that the rows themselves are
    drawn inside each file and no global row index is ever built. Every row when `n` covers them all."""
    counts = np.asarray(counts, np.int64)
    total = int(counts.sum())
    if n >= total:
        return counts.copy()
    if total < _EXACT_MAX:
        return rng.multivariate_hypergeometric(counts, n)
    # numpy's exact sampler stops at 1e9 rows: halve the files until each part is below that, drawing the first
    # half's share from the normal approximation of the hypergeometric (its error is far below one row there);
    # the shares add up exactly, so the sample still has exactly n rows
    half = len(counts) // 2
    left, right = int(counts[:half].sum()), total - int(counts[:half].sum())
    mean = n * left / total
    sd = np.sqrt(n * (left / total) * (right / total) * (total - n) / (total - 1))
    m = int(np.clip(np.rint(rng.normal(mean, sd)), max(0, n - right), min(n, left)))
    return np.concatenate([sample_counts(counts[:half], m, rng), sample_counts(counts[half:], n - m, rng)])


def sample_rows(path: str, count: int, m: int, seed: int) -> np.ndarray | None:
    """The `m` rows (sorted) that the file at `path`, of `count` rows, gives to the sample; None: all of them.
    Seeded by the recipe's seed and the file's name."""
    if m >= count:
        return None
    rng = np.random.default_rng(derive_seed(seed, "kmeans_sample", Path(path).name))
    return np.sort(rng.choice(count, size=m, replace=False))


def read_sample(items: list[tuple[str, int, int]], seed: int, threads: int = READ_THREADS) -> np.ndarray:
    """The K-means training sample, float32, (sum of m) x d, in file order; each (path, row count, m) gives its m
    drawn rows. One array is allocated once and filled file by file (`threads` reads in flight): the sample exists
    once, at 4 bytes a value, never as a list of parts plus their concatenation."""
    if not items:
        return np.zeros((0, 0), np.float32)
    offsets = np.cumsum([0] + [m for _, _, m in items])

    def rows_of(i: int) -> np.ndarray:
        path, count, m = items[i]
        x = read_embeddings(path, sample_rows(path, count, m, seed))
        if len(x) != m:
            raise ValueError(
                f"{path}: {len(x)} embeddings read where {m} were drawn (did the file change while planning?)"
            )
        return x

    first = rows_of(0)
    out = np.empty((int(offsets[-1]), first.shape[1]), np.float32)
    out[: len(first)] = first
    del first

    def fill(i: int) -> None:
        out[offsets[i] : offsets[i + 1]] = rows_of(i)

    if len(items) > 1:
        with ThreadPoolExecutor(max(1, min(threads, len(items) - 1))) as pool:
            list(pool.map(fill, range(1, len(items))))
    return out


def _all_cores_for_faiss() -> None:
    """Ray starts a task with OMP_NUM_THREADS = its num_cpus (1). The training task runs alone in its step, so faiss
    may use every core of its node, as it did when training ran on the driver."""
    try:
        import faiss
    except ImportError:
        return
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if hasattr(faiss, "omp_set_num_threads"):
        faiss.omp_set_num_threads(max(1, cores))


def _train(
    items: list[tuple[str, int, int]], k: int, cfg: KMeansConfig, seed: int, center_on: bool
) -> tuple[np.ndarray, np.ndarray | None, float, int]:
    """The K-means training task: reads its own seeded sample from the features files, takes the collection mean
    (when centring), normalises in place and trains. Returns (centroids, centre or None, objective, GPUs used):
    nothing of the sample's size leaves the task. Runs where the GPU is (a Ray task on clusters)."""
    _all_cores_for_faiss()
    x = read_sample(items, seed)
    center = x.mean(axis=0).astype(np.float32) if center_on else None
    normalize_inplace(x, center)
    gpus = faiss_gpus(cfg.gpu)
    centroids, objective = train_spherical(x, k, cfg.iterations, seed, gpus, cfg.init, cfg.init_size, cfg.redo)
    return centroids, center, objective, gpus


def _assign_files(
    item: tuple[list[str], str],
    centroids: np.ndarray,
    center: np.ndarray | None,
    clusters_per_task: int,
    gpu: bool | str,
) -> dict[int, int]:
    """Cluster every row of a run of features files and write the rows into the buckets of their groups of clusters
    (one bucket file per group, named after the run's first file). One centroid index serves the whole run."""
    files, bucket_dir = item
    assign = Assigner(centroids, faiss_gpus(gpu))
    tables = []
    for path in files:
        table = pq.read_table(path)
        if table.num_rows == 0:
            continue
        ids, sims = assign(normalize(_embedding_matrix(table), center))
        tables.append(
            table.append_column("cluster", pa.array(ids.astype(np.int32))).append_column(
                "cluster_cosine", pa.array(sims.astype(np.float32))
            )
        )
    if not tables:
        return {}
    table = pa.concat_tables(tables)
    del tables
    groups = table.column("cluster").to_numpy() // clusters_per_task
    counts = {}
    for g in np.unique(groups):
        part = table.filter(pa.array(groups == g))
        paths.atomic_write_parquet(Path(bucket_dir) / f"g-{int(g):05d}" / Path(files[0]).name, part)
        counts[int(g)] = part.num_rows
    return counts


def runs_of_files(files: list[str], counts: np.ndarray, rows: int) -> list[list[str]]:
    """Consecutive files, about `rows` rows a run and at least one file: the work of one assignment task."""
    runs: list[list[str]] = []
    cur: list[str] = []
    n = 0
    for f, c in zip(files, counts):
        cur.append(f)
        n += int(c)
        if n >= rows:
            runs.append(cur)
            cur, n = [], 0
    if cur:
        runs.append(cur)
    return runs


def _run_group(task: GroupTask) -> dict[str, Any]:
    return run_group(task)


def _merge(group_files: list[Path], out_file: Path, per_partition: int) -> list[int]:
    """Concatenate the groups' pairs into one parquet whose row groups are exactly the partitions, streaming: the
    driver holds about one partition of pairs (plus one batch being read), never a whole group's."""
    sizes: list[int] = []
    tmp = out_file.with_name(out_file.name + paths.TMP_MARK + "merge")
    pending: list[pa.Table] = []
    n_pending = 0
    with pq.ParquetWriter(tmp, schema.PAIRS_SCHEMA) as writer:

        def flush(final: bool) -> None:
            nonlocal pending, n_pending
            table = pa.concat_tables(pending) if pending else schema.PAIRS_SCHEMA.empty_table()
            while table.num_rows >= per_partition or (final and table.num_rows):
                chunk = table.slice(0, per_partition)
                writer.write_table(chunk, row_group_size=per_partition)
                sizes.append(chunk.num_rows)
                table = table.slice(chunk.num_rows)
            pending, n_pending = ([table] if table.num_rows else []), table.num_rows

        for f in group_files:  # a partition's worth of rows at a time: a group's pairs can be millions of rows
            for batch in pq.ParquetFile(f).iter_batches(batch_size=per_partition):
                if batch.num_rows:
                    pending.append(pa.Table.from_batches([batch]))
                    n_pending += batch.num_rows
                if n_pending >= per_partition:
                    flush(False)
        flush(True)
    tmp.replace(out_file)
    return sizes


def plan_pairs(
    recipe: Recipe, out_dir: Path, *, band: Band, center: bool, routes: list[tuple[str, RouteConfig]]
) -> list[dict[str, Any]]:
    """Plan the pairs job: its partitions (one row group of OUT/pairs.parquet each). `band` and `center`: pass 1's
    cosine band and whether embeddings are centred on the collection mean (the recipe's, else the encoder's
    defaults); `routes`: the pass-2 routes that can run with this recipe. pipelines/pairing.py decides all three."""
    cfg: PairingConfig = recipe.section("pairing")
    out_dir = Path(out_dir)
    t0 = time.perf_counter()
    files = [str(p) for p in features_files(out_dir)]
    work = paths.safe_join(out_dir, WORK_DIR)
    if work.exists():
        shutil.rmtree(work)  # an interrupted plan: start the global step over (it is seeded, so it gives the same)
    work.mkdir(parents=True)
    chunks = [files[s : s + COUNT_FILES] for s in range(0, len(files), COUNT_FILES)]
    counts = np.asarray([c for part in parallel_map(_count_rows, chunks, recipe.runtime) for c in part], np.int64)
    n_total = int(counts.sum())
    summary: dict[str, Any] = {"images": n_total, "encoder": cfg.encoder, "routes": [n for n, _ in routes]}
    if n_total < 2 or not routes:
        log.warning("pairing: %d images with features and %d active routes; no pairs", n_total, len(routes))
        paths.atomic_write_parquet(out_dir / schema.PAIRS_FILE, schema.PAIRS_SCHEMA.empty_table())
        paths.atomic_write_json(work / SUMMARY_FILE, summary)
        return []
    gpu_tasks = task_gpus(recipe.runtime, cfg.kmeans.gpu)

    # 1. a seeded sample trains K-means (and gives the collection mean when centring); the driver only says how many
    # rows each file gives, the training task draws and reads them
    n_train = min(n_total, cfg.kmeans.train_sample)
    per_file = sample_counts(counts, n_train, np.random.default_rng(recipe.seed))
    items = [(f, int(c), int(m)) for f, c, m in zip(files, counts, per_file) if m]
    k = effective_clusters(n_total, cfg.kmeans.clusters, cfg.kmeans.min_cluster_size)
    t1 = time.perf_counter()
    centroids, center_vec, objective, gpus = parallel_map(
        _train,
        [items],
        recipe.runtime,
        num_gpus=gpu_tasks,
        always_remote=True,
        k=k,
        cfg=cfg.kmeans,
        seed=recipe.seed,
        center_on=center,
    )[0]
    del items, per_file
    k = len(centroids)
    t2 = time.perf_counter()
    np.savez(
        work / "kmeans.npz",
        centroids=centroids,
        center=center_vec if center_vec is not None else np.zeros(0, np.float32),
    )

    # 2. assign every image; bucket rows by group of clusters (one union-find task per group)
    bucket_dir = work / "buckets"
    runs = runs_of_files(files, counts, ASSIGN_ROWS)
    per_run = parallel_map(
        _assign_files,
        [(r, str(bucket_dir)) for r in runs],
        recipe.runtime,
        num_gpus=gpu_tasks,
        always_remote=True,
        centroids=centroids,
        center=center_vec,
        clusters_per_task=cfg.kmeans.clusters_per_task,
        gpu=cfg.kmeans.gpu,
    )
    group_sizes: dict[int, int] = {}
    for c in per_run:
        for g, n in c.items():
            group_sizes[g] = group_sizes.get(g, 0) + n
    t3 = time.perf_counter()

    # 3. two-pass union-find per group of clusters
    tasks = [
        GroupTask(
            group=g,
            files=sorted(str(p) for p in (bucket_dir / f"g-{g:05d}").glob("*.parquet")),
            out_file=str(work / "groups" / f"g-{g:05d}.parquet"),
            band=band,
            center=center_vec,
            config=cfg,
            routes=routes,
            seed=recipe.seed,
        )
        for g in sorted(group_sizes)
    ]
    # union-find is CPU work (the in-cluster search included: datagen/pairing/search.py): its tasks reserve CPUs only
    group_stats = parallel_map(_run_group, tasks, recipe.runtime, always_remote=True)
    t4 = time.perf_counter()

    # 4. one pairs file; its row groups are the pairs job's partitions
    sizes = _merge([Path(t.out_file) for t in tasks], out_dir / schema.PAIRS_FILE, cfg.pairs_per_partition)
    shutil.rmtree(bucket_dir, ignore_errors=True)  # copies of the features; pairs.parquet holds what is needed
    shutil.rmtree(work / "groups", ignore_errors=True)
    routes_summary: dict[str, dict[str, Any]] = {}
    for gs in group_stats:
        for name, rs in gs["routes"].items():
            agg = routes_summary.setdefault(
                name, {"links_kept": 0, "sets": 0, "largest_set": 0, "pairs": 0, "pairs_capped": 0, "skipped": {}}
            )
            for key in ("links_kept", "sets", "pairs", "pairs_capped"):
                agg[key] += rs[key]
            agg["largest_set"] = max(agg["largest_set"], rs["largest_set"])
            for r, n in rs["skipped"].items():
                agg["skipped"][r] = agg["skipped"].get(r, 0) + n
    summary.update(
        {
            "train_sample": int(n_train),
            "clusters": int(k),
            "clusters_asked": cfg.kmeans.clusters,
            "kmeans_objective": objective,
            "faiss_gpus": gpus,
            "pass1_band": band.describe(),
            "centered": center,
            "assign_tasks": len(runs),
            "groups": len(tasks),
            "largest_group": max(group_sizes.values(), default=0),  # images: what sizes a union-find task's memory
            "links_pass1": int(sum(g["links_pass1"] for g in group_stats)),
            "route_stats": routes_summary,
            "pairs": int(sum(sizes)),
            "seconds": {
                "sample_and_kmeans": round(t2 - t0, 3),
                "kmeans_train": round(t2 - t1, 3),
                "assign": round(t3 - t2, 3),
                "union_find": round(t4 - t3, 3),
                "total": round(time.perf_counter() - t0, 3),
            },
        }
    )
    paths.atomic_write_json(work / SUMMARY_FILE, summary)
    log.info("pairing: %s", json.dumps({k: summary[k] for k in ("images", "clusters", "links_pass1", "pairs")}))
    for name, agg in routes_summary.items():
        log.info(
            "pairing route %s: %d links kept, %d sets (largest %d), %d pairs; skipped %s",
            name,
            agg["links_kept"],
            agg["sets"],
            agg["largest_set"],
            agg["pairs"],
            agg["skipped"],
        )
    return [{"name": f"{PREFIX}-{i:05d}", "row_group": i, "pairs": n} for i, n in enumerate(sizes)]
