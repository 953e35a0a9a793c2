"""The global step of the pairs job, run once when the job is planned: draw a seeded sample of the embeddings, train
spherical K-means, assign every image and bucket it by group of clusters, run one union-find task per group, then
merge the groups' pairs into OUT/pairs.parquet (one row group per partition of the pairs job) and summarise."""
from __future__ import annotations

import json
import logging
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from datagen import paths, registry, schema
from datagen.config import Recipe
from datagen.pairing.config import SCORE_FACE, Band, KMeansConfig, PairingConfig, RouteConfig
from datagen.pairing.features import features_files
from datagen.pairing.group import GroupTask, run_group
from datagen.pairing.kmeans import Assigner, effective_clusters, faiss_gpus, normalize, train_spherical
from datagen.pairing.parallel import parallel_map, task_gpus

log = logging.getLogger(__name__)

WORK_DIR = "_pairing"  # intermediate files of the global step, and its summary
SUMMARY_FILE = "summary.json"
PREFIX = "pair"


def encoder_defaults(cfg: PairingConfig) -> tuple[Band, bool]:
    """Pass-1 band and centring: the recipe's, else the encoder's own defaults."""
    cls = registry.get_operator(cfg.encoder)
    band = cfg.pass1.band if cfg.pass1.band is not None else cls.default_band
    center = cfg.pass1.center if cfg.pass1.center is not None else cls.default_center
    return band, bool(center)


def active_routes(recipe: Recipe) -> list[tuple[str, RouteConfig]]:
    """Enabled routes whose task score can be computed with this recipe (the face route needs a face model pack)."""
    cfg: PairingConfig = recipe.section("pairing")
    out = []
    for name, route in cfg.routes.items():
        if not route.enabled:
            continue
        if route.score == SCORE_FACE:
            from operators.face_features import FaceFeatures

            op = FaceFeatures(recipe.operators.get("face_features"))
            why = op.unavailable_reason()
            if why:
                log.warning("pairing route %s is OFF: %s", name, why)
                continue
        out.append((name, route))
    return out


def _embeddings(path: str, rows: np.ndarray | None = None) -> np.ndarray:
    col = pq.read_table(path, columns=["embedding"]).column("embedding").combine_chunks()
    if rows is not None:
        col = col.take(pa.array(rows))
    n = len(col)
    flat = np.asarray(col.flatten().to_numpy(zero_copy_only=False), np.float32)
    return flat.reshape(n, -1) if n else np.zeros((0, 0), np.float32)


def _sample_file(item: tuple[str, np.ndarray]) -> np.ndarray:
    path, rows = item
    return _embeddings(path, rows)


def _train(sample: np.ndarray, k: int, cfg: KMeansConfig, seed: int) -> tuple[np.ndarray, float, int]:
    """(centroids, objective, GPUs used): runs wherever the GPU is (a Ray task on clusters)."""
    gpus = faiss_gpus(cfg.gpu)
    centroids, objective = train_spherical(sample, k, cfg.iterations, seed, gpus, cfg.init, cfg.init_size, cfg.redo)
    return centroids, objective, gpus


def _assign_file(item: tuple[str, str], centroids: np.ndarray, center: np.ndarray | None, clusters_per_task: int, gpu: bool | str) -> dict[int, int]:
    """Cluster every row of one features file and write it into the bucket of its group of clusters."""
    path, bucket_dir = item
    table = pq.read_table(path)
    if table.num_rows == 0:
        return {}
    ids, sims = Assigner(centroids, faiss_gpus(gpu))(normalize(_embeddings(path), center))
    table = table.append_column("cluster", pa.array(ids.astype(np.int32))).append_column("cluster_cosine", pa.array(sims.astype(np.float32)))
    groups = ids // clusters_per_task
    counts = {}
    for g in np.unique(groups):
        part = table.filter(pa.array(groups == g))
        paths.atomic_write_parquet(Path(bucket_dir) / f"g-{int(g):05d}" / Path(path).name, part)
        counts[int(g)] = part.num_rows
    return counts


def _run_group(task: GroupTask) -> dict[str, Any]:
    return run_group(task)


def _merge(group_files: list[Path], out_file: Path, per_partition: int) -> list[int]:
    """Concatenate the groups' pairs into one parquet whose row groups are exactly the partitions."""
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

        for f in group_files:
            t = pq.read_table(f)
            if t.num_rows:
                pending.append(t)
                n_pending += t.num_rows
            if n_pending >= per_partition:
                flush(False)
        flush(True)
    tmp.replace(out_file)
    return sizes


def plan_pairs(recipe: Recipe, out_dir: Path) -> list[dict[str, Any]]:
    cfg: PairingConfig = recipe.section("pairing")
    out_dir = Path(out_dir)
    t0 = time.perf_counter()
    files = [str(p) for p in features_files(out_dir)]
    work = paths.safe_join(out_dir, WORK_DIR)
    if work.exists():
        shutil.rmtree(work)  # an interrupted plan: start the global step over (it is seeded, so it gives the same)
    work.mkdir(parents=True)
    routes = active_routes(recipe)
    counts = [pq.ParquetFile(f).metadata.num_rows for f in files]
    n_total = int(sum(counts))
    summary: dict[str, Any] = {"images": n_total, "encoder": cfg.encoder, "routes": [n for n, _ in routes]}
    if n_total < 2 or not routes:
        log.warning("pairing: %d images with features and %d active routes; no pairs", n_total, len(routes))
        paths.atomic_write_parquet(out_dir / schema.PAIRS_FILE, schema.PAIRS_SCHEMA.empty_table())
        paths.atomic_write_json(work / SUMMARY_FILE, summary)
        return []
    band, center_on = encoder_defaults(cfg)
    gpu_tasks = task_gpus(recipe.runtime, cfg.kmeans.gpu)

    # 1. a seeded sample trains K-means (and gives the collection mean when centring)
    rng = np.random.default_rng(recipe.seed)
    n_train = min(n_total, cfg.kmeans.train_sample)
    chosen = np.sort(rng.choice(n_total, size=n_train, replace=False))
    bounds = np.cumsum([0] + counts)
    items = [(f, chosen[(chosen >= lo) & (chosen < hi)] - lo) for f, lo, hi in zip(files, bounds[:-1], bounds[1:])]
    items = [(f, r) for f, r in items if len(r)]
    sample = np.concatenate(parallel_map(_sample_file, items, recipe.runtime), axis=0)
    center = sample.mean(axis=0).astype(np.float32) if center_on else None
    k = effective_clusters(n_total, cfg.kmeans.clusters, cfg.kmeans.min_cluster_size)
    t1 = time.perf_counter()
    centroids, objective, gpus = parallel_map(_train, [normalize(sample, center)], recipe.runtime, num_gpus=gpu_tasks,
                                              k=k, cfg=cfg.kmeans, seed=recipe.seed)[0]
    k = len(centroids)
    t2 = time.perf_counter()
    np.savez(work / "kmeans.npz", centroids=centroids, center=center if center is not None else np.zeros(0, np.float32))

    # 2. assign every image; bucket rows by group of clusters (one union-find task per group)
    bucket_dir = work / "buckets"
    per_file = parallel_map(_assign_file, [(f, str(bucket_dir)) for f in files], recipe.runtime, num_gpus=gpu_tasks,
                            centroids=centroids, center=center, clusters_per_task=cfg.kmeans.clusters_per_task, gpu=cfg.kmeans.gpu)
    group_sizes: dict[int, int] = {}
    for c in per_file:
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
            center=center,
            config=cfg,
            routes=routes,
            seed=recipe.seed,
            gpu=cfg.kmeans.gpu,
        )
        for g in sorted(group_sizes)
    ]
    group_stats = parallel_map(_run_group, tasks, recipe.runtime, num_gpus=gpu_tasks)
    t4 = time.perf_counter()

    # 4. one pairs file; its row groups are the pairs job's partitions
    sizes = _merge([Path(t.out_file) for t in tasks], out_dir / schema.PAIRS_FILE, cfg.pairs_per_partition)
    shutil.rmtree(bucket_dir, ignore_errors=True)  # copies of the features; pairs.parquet holds what is needed
    shutil.rmtree(work / "groups", ignore_errors=True)
    routes_summary: dict[str, dict[str, Any]] = {}
    for gs in group_stats:
        for name, rs in gs["routes"].items():
            agg = routes_summary.setdefault(name, {"links_kept": 0, "sets": 0, "largest_set": 0, "pairs": 0, "pairs_capped": 0, "skipped": {}})
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
            "centered": center_on,
            "groups": len(tasks),
            "links_pass1": int(sum(g["links_pass1"] for g in group_stats)),
            "route_stats": routes_summary,
            "pairs": int(sum(sizes)),
            "seconds": {"sample_and_kmeans": round(t2 - t0, 3), "kmeans_train": round(t2 - t1, 3), "assign": round(t3 - t2, 3),
                        "union_find": round(t4 - t3, 3), "total": round(time.perf_counter() - t0, 3)},
        }
    )
    paths.atomic_write_json(work / SUMMARY_FILE, summary)
    log.info("pairing: %s", json.dumps({k: summary[k] for k in ("images", "clusters", "links_pass1", "pairs")}))
    for name, agg in routes_summary.items():
        log.info("pairing route %s: %d links kept, %d sets (largest %d), %d pairs; skipped %s",
                 name, agg["links_kept"], agg["sets"], agg["largest_set"], agg["pairs"], agg["skipped"])
    return [{"name": f"{PREFIX}-{i:05d}", "row_group": i, "pairs": n} for i, n in enumerate(sizes)]
