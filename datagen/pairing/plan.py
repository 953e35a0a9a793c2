"""The pairing's global step, cut into jobs (datagen/pairing/steps.py runs them): what each plans, and what its
partitions do. The kmeans job's plan reads the features files' row counts (parquet footers) and draws how many
sample rows each file gives; its one partition reads its own sample, takes the collection mean, normalises and trains,
and writes the K x d centroids. The assign job's partitions (runs of files) assign every row and bucket it by group of
clusters; the unionfind job's partitions (one per group) run the two-pass union-find. The pairs job's plan (here:
`plan_pairs`) merges the groups' pairs into OUT/pairs.parquet (one row group per partition of the pairs job) and
writes the summary. The driver never holds an embedding: plans send paths and counts. This module knows no
operator: the caller (pipelines/pairing.py) passes pass 1's band and centring and the routes."""

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
from datagen.pairing.kmeans import (
    Assigner,
    effective_clusters,
    normalize,
    normalize_inplace,
    train_spherical,
)
from datagen.pairing.parallel import parallel_map
from datagen.shards.commit import read_marker

log = logging.getLogger(__name__)

WORK_DIR = "_pairing"  # intermediate files of the global step, and its summary
SUMMARY_FILE = "summary.json"
FILES_FILE = "files.parquet"  # the features files, their rows, and the rows each gives to the K-means sample
KMEANS_FILE = "kmeans.npz"  # centroids and the centre (empty when not centring)
KMEANS_STATS = "kmeans.json"
BUCKETS_DIR = "buckets"  # g-GGGGG/FILE.parquet: the feature rows of one group of clusters, by assignment run
GROUPS_DIR = "groups"  # g-GGGGG.parquet (its pairs) and g-GGGGG.json (what it kept and dropped)
KMEANS_JOB, ASSIGN_JOB, UNIONFIND_JOB = "kmeans", "assign", "unionfind"
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


def train(
    items: list[tuple[str, int, int]], k: int, cfg: KMeansConfig, seed: int, center_on: bool, gpus: int
) -> tuple[np.ndarray, np.ndarray | None, float]:
    """The K-means training: reads its own seeded sample from the features files, takes the collection mean (when
    centring), normalises in place and trains with faiss on `gpus` GPUs. Returns (centroids, centre or None,
    objective): nothing of the sample's size leaves it."""
    _all_cores_for_faiss()
    x = read_sample(items, seed)
    center = x.mean(axis=0).astype(np.float32) if center_on else None
    normalize_inplace(x, center)
    centroids, objective = train_spherical(x, k, cfg.iterations, seed, gpus, cfg.init, cfg.init_size, cfg.redo)
    return centroids, center, objective


def work_dir(out_dir: Path) -> Path:
    return paths.safe_join(out_dir, WORK_DIR)


def save_kmeans(work: Path, centroids: np.ndarray, center: np.ndarray | None) -> None:
    tmp = work / f"{KMEANS_FILE}{paths.TMP_MARK}write.npz"
    np.savez(tmp, centroids=centroids, center=center if center is not None else np.zeros(0, np.float32))
    tmp.replace(work / KMEANS_FILE)


def load_kmeans(path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    with np.load(path) as z:
        centroids, center = z["centroids"], z["center"]
    return centroids, (center if center.size else None)


def group_name(g: int) -> str:
    return f"g-{g:05d}"


def group_pairs_file(work: Path, g: int) -> Path:
    return work / GROUPS_DIR / f"{group_name(g)}.parquet"


def assign_files(
    files: list[str],
    bucket_dir: Path,
    centroids: np.ndarray,
    center: np.ndarray | None,
    clusters_per_task: int,
    gpus: int,
) -> dict[int, int]:
    """Cluster every row of a run of features files and write the rows into the buckets of their groups of clusters
    (one bucket file per group, named after the run's first file, so a run done again replaces its own files).
    One centroid index serves the whole run. Returns rows per group."""
    assign = Assigner(centroids, gpus)
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
        paths.atomic_write_parquet(Path(bucket_dir) / group_name(int(g)) / Path(files[0]).name, part)
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


def _files_table(work: Path) -> dict[str, list]:
    f = work / FILES_FILE
    return pq.read_table(f).to_pydict() if f.exists() else {"path": [], "rows": [], "sample": []}


def plan_kmeans(recipe: Recipe, out_dir: Path, routes: bool) -> list[dict[str, Any]]:
    """The kmeans job's partition (none when there is nothing to pair): the features files' row counts, and how many
    rows each gives to a seeded uniform sample of `kmeans.train_sample` (in OUT/_pairing/files.parquet); K."""
    cfg: PairingConfig = recipe.section("pairing")
    files = [str(p) for p in features_files(Path(out_dir))]
    work = work_dir(out_dir)
    if work.exists():
        shutil.rmtree(work)  # the kmeans job was never planned here: whatever is left is an older run's
    work.mkdir(parents=True)
    chunks = [files[s : s + COUNT_FILES] for s in range(0, len(files), COUNT_FILES)]
    counts = np.asarray([c for part in parallel_map(_count_rows, chunks, recipe.runtime) for c in part], np.int64)
    n_total = int(counts.sum())
    n_train = min(n_total, cfg.kmeans.train_sample)
    per_file = sample_counts(counts, n_train, np.random.default_rng(recipe.seed)) if n_total else np.zeros(0, np.int64)
    table = pa.table(
        {
            "path": pa.array(files, pa.string()),
            "rows": pa.array(counts, pa.int64()),
            "sample": pa.array(per_file, pa.int64()),
        }
    )
    paths.atomic_write_parquet(work / FILES_FILE, table)
    if n_total < 2 or not routes:
        log.warning("pairing: %d images with features and %s; no pairs", n_total, "routes" if routes else "no route")
        return []
    k = effective_clusters(n_total, cfg.kmeans.clusters, cfg.kmeans.min_cluster_size)
    entry = {"files": str(work / FILES_FILE), "images": n_total, "train_sample": int(n_train)}
    return [{"name": f"{KMEANS_JOB}-00000", "entries": [entry], "k": int(k)}]


def plan_assign(recipe: Recipe, out_dir: Path) -> list[dict[str, Any]]:
    """The assign job's partitions: runs of whole features files, about ASSIGN_ROWS rows each (none without K-means)."""
    work = work_dir(out_dir)
    if not (work / KMEANS_FILE).exists():
        return []
    t = _files_table(work)
    runs = runs_of_files(t["path"], np.asarray(t["rows"], np.int64), ASSIGN_ROWS)
    return [{"name": f"{ASSIGN_JOB}-{i:05d}", "entries": [{"path": f} for f in r]} for i, r in enumerate(runs)]


def plan_unionfind(recipe: Recipe, out_dir: Path) -> list[dict[str, Any]]:
    """The unionfind job's partitions: one per group of clusters that got rows (its bucket folder)."""
    buckets = work_dir(out_dir) / BUCKETS_DIR
    groups = sorted(int(d.name[2:]) for d in buckets.glob("g-*") if d.is_dir()) if buckets.exists() else []
    return [{"name": f"{UNIONFIND_JOB}-{i:05d}", "entries": [{"group": g}]} for i, g in enumerate(groups)]


def _stage_seconds(out_dir: Path, job: str, stage: str) -> float:
    """Seconds the job's partitions spent in `stage`, from their done-markers."""
    f = paths.plan_file(out_dir, job)
    if not f.exists():
        return 0.0
    total = 0.0
    for part in json.loads(f.read_text())["partitions"]:
        m = read_marker(out_dir, part["name"])
        total += (m or {}).get("stages", {}).get(stage, {}).get("seconds", 0.0)
    return round(total, 3)


def plan_pairs(
    recipe: Recipe, out_dir: Path, *, band: Band, center: bool, routes: list[tuple[str, RouteConfig]]
) -> list[dict[str, Any]]:
    """Plan the pairs job: merge the unionfind job's group files into OUT/pairs.parquet, whose row groups are its
    partitions, and write OUT/_pairing/summary.json. `band` and `center`: pass 1's cosine band and whether
    embeddings are centred on the collection mean; `routes`: the pass-2 routes that ran. pipelines/pairing.py
    decides all three. The group files stay (the unionfind job's committed output); the buckets, copies of the
    features that only the unionfind job reads, go."""
    cfg: PairingConfig = recipe.section("pairing")
    out_dir = Path(out_dir)
    t0 = time.perf_counter()
    work = work_dir(out_dir)
    n_total = int(sum(_files_table(work)["rows"]))
    summary: dict[str, Any] = {"images": n_total, "encoder": cfg.encoder, "routes": [n for n, _ in routes]}
    if not (work / KMEANS_FILE).exists():
        paths.atomic_write_parquet(out_dir / schema.PAIRS_FILE, schema.PAIRS_SCHEMA.empty_table())
        paths.atomic_write_json(work / SUMMARY_FILE, summary)
        return []
    kmeans = json.loads((work / KMEANS_STATS).read_text())
    groups = [int(p["entries"][0]["group"]) for p in plan_unionfind(recipe, out_dir)]
    group_stats = [json.loads(group_pairs_file(work, g).with_suffix(".json").read_text()) for g in groups]
    t1 = time.perf_counter()
    sizes = _merge([group_pairs_file(work, g) for g in groups], out_dir / schema.PAIRS_FILE, cfg.pairs_per_partition)
    t2 = time.perf_counter()
    shutil.rmtree(work / BUCKETS_DIR, ignore_errors=True)  # copies of the features; pairs.parquet holds what is needed
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
    assign_plan = paths.plan_file(out_dir, ASSIGN_JOB)
    summary.update(
        {
            "train_sample": kmeans["train_sample"],
            "clusters": kmeans["clusters"],
            "clusters_asked": cfg.kmeans.clusters,
            "kmeans_objective": kmeans["kmeans_objective"],
            "faiss_gpus": kmeans["faiss_gpus"],
            "pass1_band": band.describe(),
            "centered": center,
            "assign_tasks": len(json.loads(assign_plan.read_text())["partitions"]) if assign_plan.exists() else 0,
            "groups": len(groups),
            # images: what sizes a union-find task's memory
            "largest_group": max((g["images"] for g in group_stats), default=0),
            "links_pass1": int(sum(g["links_pass1"] for g in group_stats)),
            "route_stats": routes_summary,
            "pairs": int(sum(sizes)),
            # the steps ran as jobs of their own: K-means's wall time, the other two's task seconds summed
            "seconds": {
                "kmeans_train": kmeans["seconds"],
                "assign_tasks": _stage_seconds(out_dir, ASSIGN_JOB, "assign_clusters"),
                "union_find_tasks": round(sum(g["seconds"] for g in group_stats), 3),
                "merge": round(t2 - t1, 3),
                "plan_pairs": round(time.perf_counter() - t0, 3),
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
