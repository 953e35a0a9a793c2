"""Pairing at scale on synthetic clustered embeddings (unit vectors: topics -> groups of related images -> images):
faiss spherical K-means (what the pairs job runs) against scikit-learn's MiniBatchKMeans, compared at the same K on
the same partition-quality measures, and in-cluster band search + union-find against the all-pairs peer (exact
blockwise cosine over the whole collection, then union-find). Prints one table per size, the trend, and peak memory.

    python bench/bench_pairing_scale.py [--sizes 20000,100000,300000,1000000] [--dim 768] [--allpairs-max 50000]

--plan-memory N runs the pairing's real global step instead (the kmeans, assign and unionfind jobs and the pairs
job's plan, executor=ray, an embedded local Ray) on a features folder written as the features job writes it
(float16 embeddings in parquet, 256 rows a file), with the whole folder as the K-means training sample, and samples
the resident memory of the driver and of every Ray worker by what it runs (its process title) every 0.1 s; the
steps now run as Ray Data tasks and pools, so per-step figures come from --group-memory:

    python bench/bench_pairing_scale.py --plan-memory 1000000 [--dim 1152] [--plan-k 512] [--plan-iters 4]

--group-memory N1,N2,... measures one union-find task (the unionfind job's stage, datagen.pairing.group.run_group) on
a group of N images with ace_full's per-image features (1152-d float16 embedding, 300 ORB keypoints and descriptors,
an ArcFace embedding, dHash, edge map; random bytes of the real sizes), clusters of about 2,000 images: the peak
resident memory of a fresh process that runs only the task, over its resident memory after the imports:

    python bench/bench_pairing_scale.py --group-memory 5000,20000,50000
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import psutil  # noqa: E402

from datagen.pairing.config import Band  # noqa: E402
from datagen.pairing.kmeans import Assigner, train_spherical  # noqa: E402
from datagen.pairing.search import band_links  # noqa: E402
from datagen.pairing.unionfind import UnionFind  # noqa: E402

BAND = Band(low=0.75, high=0.97)  # the SigLIP default band of the pairing recipe


def synthetic(n: int, dim: int, group_size: int = 4, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """n unit vectors shaped like a photo collection's embeddings: groups of `group_size` related images (pairwise
    cosine ~0.85, inside BAND) around group centres; groups belong to topics of very unequal sizes (log-normal), and
    topics to a few broad themes, so that clusters touch as real ones do. Returns (x float32, group id)."""
    rng = np.random.default_rng(seed)
    n_groups = n // group_size
    n_topics = max(2, n_groups // 100)
    n_themes = max(1, n_topics // 50)
    themes = rng.standard_normal((n_themes, dim), dtype=np.float32)
    themes /= np.linalg.norm(themes, axis=1, keepdims=True)
    topics = themes[rng.integers(0, n_themes, n_topics)] + 1.2 * rng.standard_normal(
        (n_topics, dim), dtype=np.float32
    ) / np.sqrt(dim)
    topics /= np.linalg.norm(topics, axis=1, keepdims=True)
    weights = rng.lognormal(0.0, 1.0, n_topics)
    weights /= weights.sum()
    x = np.empty((n_groups * group_size, dim), np.float32)
    gid = np.repeat(np.arange(n_groups), group_size)
    chunk = 16384
    for s in range(0, n_groups, chunk):
        e = min(n_groups, s + chunk)
        gc_ = topics[rng.choice(n_topics, e - s, p=weights)] + rng.standard_normal(
            (e - s, dim), dtype=np.float32
        ) / np.sqrt(dim)
        gc_ /= np.linalg.norm(gc_, axis=1, keepdims=True)
        m = np.repeat(gc_, group_size, axis=0) + 0.42 * rng.standard_normal(
            ((e - s) * group_size, dim), dtype=np.float32
        ) / np.sqrt(dim)
        m /= np.linalg.norm(m, axis=1, keepdims=True)
        x[s * group_size : e * group_size] = m
    return x, gid


def partition_quality(x: np.ndarray, labels: np.ndarray, k: int) -> tuple[float, float]:
    """(inertia per point: mean squared distance to the cluster's mean, mean cosine to the cluster's direction) of
    a partition, so that methods whose centroids are scaled differently are judged on the same footing."""
    import scipy.sparse as sp

    n = len(x)
    onehot = sp.csr_matrix((np.ones(n, np.float32), (labels, np.arange(n))), shape=(k, n))
    counts = np.asarray(onehot.sum(axis=1)).ravel()
    sums = onehot @ x
    means = sums / np.maximum(counts, 1)[:, None]
    inertia = (
        (1.0 - (np.linalg.norm(means, axis=1) ** 2)) @ counts / n
    )  # sum ||x - mean||^2 = count (1 - |mean|^2) for unit x
    cos = np.linalg.norm(sums, axis=1).sum() / n
    return float(inertia), float(cos)


def rss_gb() -> float:
    return psutil.Process().memory_info().rss / 2**30


def faiss_kmeans(x: np.ndarray, k: int, iters: int, per_cluster: int, redo: int = 1) -> np.ndarray:
    """What the pairs job runs: spherical K-means (k-means++ seeding) on a seeded sample, then every row assigned."""
    rng = np.random.default_rng(0)
    n_train = min(len(x), per_cluster * k)
    train = x if n_train == len(x) else x[np.sort(rng.choice(len(x), size=n_train, replace=False))]
    c, _ = train_spherical(train, k, iters, seed=0, redo=redo)
    labels, _ = Assigner(c)(x)
    return labels


# faiss settings tried in turn until its inertia is at most scikit-learn's: (training rows per cluster, runs)
LADDER = [(256, 1), (512, 1), (1024, 1), (10**9, 1), (10**9, 3)]


def sklearn_kmeans(x: np.ndarray, k: int) -> np.ndarray:
    from sklearn.cluster import MiniBatchKMeans

    km = MiniBatchKMeans(n_clusters=k, batch_size=4096, random_state=0, n_init=1)
    km.fit(x)
    return km.labels_


def in_cluster_pairing(x: np.ndarray, labels: np.ndarray) -> tuple[set[tuple[int, int]], int]:
    order = np.argsort(labels, kind="stable")
    lab = labels[order]
    starts = np.flatnonzero(np.r_[True, lab[1:] != lab[:-1]])
    ends = np.r_[starts[1:], len(lab)]
    links = []
    for s, e in zip(starts, ends):
        i, j, _ = band_links(x[order[s:e]], BAND, "range", 16)
        links.append(np.stack([order[s:e][i], order[s:e][j]], axis=1))
    li = np.concatenate(links) if links else np.zeros((0, 2), np.int64)
    uf = UnionFind(len(x))
    uf.union_all(li.tolist())
    return {(int(min(a, b)), int(max(a, b))) for a, b in li}, len(uf.sets())


def all_pairs(x: np.ndarray, block: int = 4096) -> tuple[set[tuple[int, int]], int]:
    """The peer: every pair of the collection scored (blockwise x @ x.T), band kept, union-find."""
    links = []
    for s in range(0, len(x), block):
        sims = x[s : s + block] @ x.T
        r, c = np.nonzero((sims >= BAND.low) & (sims < BAND.high))
        r = r + s
        keep = r < c
        links.append(np.stack([r[keep], c[keep]], axis=1))
    li = np.concatenate(links)
    uf = UnionFind(len(x))
    uf.union_all(li.tolist())
    return {(int(a), int(b)) for a, b in li}, len(uf.sets())


# --- the global step's memory (--plan-memory) ------------------------------------------------------------------------


def write_features_folder(out: Path, n: int, dim: int, rows_per_file: int, seed: int = 0) -> int:
    """OUT/features/feat-NNNNN.parquet as the features job writes them (schema.FEATURES_SCHEMA, float16 embeddings),
    `rows_per_file` rows each, embeddings shaped as `synthetic` makes them (groups of 4 related images in topics of
    unequal sizes), made a few thousand rows at a time so the writer never holds the collection. Returns bytes."""
    import pyarrow.parquet as pq

    from tests.pairing.features_folder import features_table  # the same table the pairing tests write

    d = out / "features"
    d.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    n_topics = max(2, n // 400)
    topics = rng.standard_normal((n_topics, dim), dtype=np.float32)
    topics /= np.linalg.norm(topics, axis=1, keepdims=True)
    weights = rng.lognormal(0.0, 1.0, n_topics)
    weights /= weights.sum()
    size = 0
    per_chunk = rows_per_file * 16
    for s in range(0, n, per_chunk):
        rows = min(per_chunk, n - s)
        groups = -(-rows // 4)
        g = topics[rng.choice(n_topics, groups, p=weights)] + rng.standard_normal(
            (groups, dim), dtype=np.float32
        ) / np.sqrt(dim)
        g /= np.linalg.norm(g, axis=1, keepdims=True)
        x = np.repeat(g, 4, axis=0)[:rows] + 0.42 * rng.standard_normal((rows, dim), dtype=np.float32) / np.sqrt(dim)
        x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float16)
        for f in range(0, rows, rows_per_file):
            path = d / f"feat-{(s + f) // rows_per_file:06d}.parquet"
            pq.write_table(features_table(x[f : f + rows_per_file], s + f), path)
            size += path.stat().st_size
    return size


KEYPOINTS = 300  # ORB keypoints a photo keeps (operators/features/object_keypoints.py's default)


def write_group_bucket(path: Path, n: int, dim: int, per_cluster: int = 2_000, seed: int = 0) -> None:
    """One union-find task's input: n feature rows (random bytes of ace_full's sizes) with their cluster ids."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from tests.pairing.features_folder import features_table

    rng = np.random.default_rng(seed)
    parts = []
    for s in range(0, n, 4_096):
        m = min(4_096, n - s)
        x = rng.standard_normal((m, dim), dtype=np.float32)
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        t = features_table(x.astype(np.float16), s)
        face = rng.standard_normal((m, 512)).astype(np.float16)
        blobs = lambda size: pa.array([rng.bytes(size) for _ in range(m)], pa.binary())  # noqa: E731
        cols = {
            "face_count": pa.array(np.ones(m, np.int16)),
            "face_embedding": pa.FixedSizeListArray.from_arrays(pa.array(face.reshape(-1)), 512).cast(
                pa.list_(pa.float16())
            ),
            "keypoints": blobs(KEYPOINTS * 8),
            "descriptors": blobs(KEYPOINTS * 32),
            "dhash": blobs(32),
            "edges": blobs(96 * 96 // 8),
        }
        for name, col in cols.items():
            t = t.set_column(t.schema.get_field_index(name), name, col)
        t = t.append_column("cluster", pa.array(((s + np.arange(m)) // per_cluster).astype(np.int32)))
        parts.append(t.append_column("cluster_cosine", pa.array(np.ones(m, np.float32))))
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.concat_tables(parts), path)


def group_task(args) -> None:
    """The measured union-find task, in a process of its own: prints one JSON line."""
    import psutil as ps

    from datagen.pairing.config import PairingConfig
    from datagen.pairing.group import GroupTask, run_group

    cfg = PairingConfig.model_validate(
        {
            "enabled": True,
            "pass1": {"band": {"low": BAND.low, "high": BAND.high}, "center": True, "search": "knn"},
            "routes": {
                "general_editing": {"score": "none", "band": {"low": BAND.low, "high": BAND.high}},
                "reference_generation": {"enabled": False},
            },
        }
    )
    bucket = Path(args.group_dir) / "bucket.parquet"
    base = ps.Process().memory_info().rss
    t = time.perf_counter()
    stats = run_group(
        GroupTask(
            0,
            [str(bucket)],
            str(Path(args.group_dir) / "pairs.parquet"),
            cfg.pass1.band,
            None,
            cfg,
            [("general_editing", cfg.routes.general_editing)],
            0,
        )
    )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(
        "GROUP "
        + json.dumps({"images": stats["images"], "base": base, "peak": peak, "seconds": time.perf_counter() - t}),
        flush=True,
    )


def group_memory(args) -> None:
    sizes = [int(v) for v in args.group_memory.split(",")]
    rows = []
    for n in sizes:
        d = Path(tempfile.mkdtemp(prefix="bench_group_memory_"))
        try:
            write_group_bucket(d / "bucket.parquet", n, args.dim)
            env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
            cmd = [
                sys.executable,
                __file__,
                "--group-memory",
                str(n),
                "--group-task",
                "--group-dir",
                str(d),
                "--dim",
                str(args.dim),
            ]
            res = subprocess.run(cmd, capture_output=True, text=True, env=env)
            line = next((ln for ln in res.stdout.splitlines() if ln.startswith("GROUP ")), None)
            if res.returncode or line is None:
                raise SystemExit(res.stderr[-3000:])
            r = json.loads(line[6:])
            r["bucket_bytes"] = (d / "bucket.parquet").stat().st_size
            rows.append(r)
        finally:
            shutil.rmtree(d, ignore_errors=True)
    head = ("images", "bucket MiB", "RSS base MiB", "peak MiB", "task MiB", "KiB/image", "s")
    print(" ".join(f"{h:>12}" for h in head))
    for r in rows:
        task = r["peak"] - r["base"]
        vals = (r["images"], r["bucket_bytes"] / 2**20, r["base"] / 2**20, r["peak"] / 2**20, task / 2**20)
        vals += (task / r["images"] / 1024, r["seconds"])
        print(" ".join(f"{v:>12.1f}" if isinstance(v, float) else f"{v:>12}" for v in vals))
    if len(rows) >= 2:
        n = np.array([r["images"] for r in rows], np.float64)
        y = np.array([r["peak"] for r in rows], np.float64)
        slope, icpt = np.polyfit(n, y, 1)
        print(f"fit: peak = {icpt / 2**20:.0f} MiB + {slope / 1024:.1f} KiB x images")


def plan_driver(args) -> None:
    """The measured driver: plan_pairs on the folder with executor=ray; prints one JSON line."""
    import ray

    from datagen.config import Recipe, RuntimeConfig
    from datagen.pairing.config import PairingConfig
    from tests.pairing.features_folder import run_pairing

    cfg = PairingConfig.model_validate(
        {
            "enabled": True,
            "kmeans": {
                "clusters": args.plan_k,
                "min_cluster_size": 1,
                "train_sample": args.plan_memory,
                "iterations": args.plan_iters,
                "init": "random",
                "clusters_per_task": args.plan_k_per_task,
                "gpu": False,
            },
            "pass1": {
                "band": {"low": BAND.low, "high": BAND.high},
                "center": True,
                "search": "knn",
                "max_neighbors": 16,
            },
            "routes": {
                "general_editing": {"score": "none", "band": {"low": BAND.low, "high": BAND.high}},
                "reference_generation": {"enabled": False},
            },
        }
    )
    ray.init(num_cpus=args.plan_cpus, include_dashboard=False, log_to_driver=False)
    rss0 = psutil.Process().memory_info().rss
    recipe = Recipe(
        seed=0,
        runtime=RuntimeConfig(executor="ray", num_cpus=args.plan_cpus, progress=False),
        sections={"pairing": cfg},
    )
    t = time.perf_counter()
    # the kmeans, assign and unionfind jobs, then the pairs job's plan, as a run does them
    parts, _ = run_pairing(Path(args.plan_dir), cfg, "ray", seed=recipe.seed)
    wall = time.perf_counter() - t
    summary = json.loads((Path(args.plan_dir) / "_pairing" / "summary.json").read_text())
    print(
        "PLAN "
        + json.dumps(
            {
                "wall_s": wall,
                "partitions": len(parts),
                "driver_rss_after_ray_init": rss0,
                "driver_maxrss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
                "summary": summary,
            }
        ),
        flush=True,
    )


def _role(cmd: list[str], driver: int, pid: int) -> str:
    if pid == driver:
        return "driver"
    head = cmd[0] if cmd else ""
    if head.startswith("ray::"):
        return head.split()[0]  # ray::_count_rows, Ray Data's map workers, ray::IDLE (a worker between tasks)
    return "ray daemons"  # raylet (with the object store), GCS, log monitor, ...


def plan_memory(args) -> None:
    work = Path(args.plan_workdir or tempfile.mkdtemp(prefix="bench_plan_memory_"))
    folder = work / "out"
    t = time.perf_counter()
    if not (folder / "features").exists():
        size = write_features_folder(folder, args.plan_memory, args.dim, args.rows_per_file)
        print(
            f"features folder: {args.plan_memory} rows x {args.dim} float16, {args.rows_per_file} rows a file, "
            f"{size / 2**30:.2f} GiB, written in {time.perf_counter() - t:.0f} s",
            flush=True,
        )
    cmd = [
        sys.executable,
        __file__,
        "--plan-memory",
        str(args.plan_memory),
        "--plan-driver",
        "--plan-dir",
        str(folder),
        "--plan-k",
        str(args.plan_k),
        "--plan-iters",
        str(args.plan_iters),
        "--plan-k-per-task",
        str(args.plan_k_per_task),
        "--plan-cpus",
        str(args.plan_cpus),
    ]
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    others = psutil.getloadavg()[0]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    peaks: dict[str, int] = {}
    total_peak = [0]
    stop = threading.Event()

    def sample() -> None:
        # only the driver and what it started (its embedded Ray): other Ray clusters on the machine are not ours
        while not stop.is_set():
            total = 0
            try:
                driver = psutil.Process(proc.pid)
                tree = [driver, *driver.children(recursive=True)]
            except psutil.NoSuchProcess:
                break
            for p in tree:
                try:
                    role, rss = _role(p.cmdline(), proc.pid, p.pid), p.memory_info().rss
                except psutil.Error:
                    continue
                total += rss
                peaks[role] = max(peaks.get(role, 0), rss)
            total_peak[0] = max(total_peak[0], total)
            stop.wait(0.1)

    th = threading.Thread(target=sample, daemon=True)
    th.start()
    out, err = proc.communicate()
    stop.set()
    th.join()
    line = next((ln for ln in out.splitlines() if ln.startswith("PLAN ")), None)
    if proc.returncode or line is None:
        print(err[-4000:])
        raise SystemExit(f"driver failed (exit {proc.returncode})")
    res = json.loads(line[5:])
    s = res["summary"]
    gib = lambda b: f"{b / 2**30:.2f}"  # noqa: E731
    print(
        f"\nplan_pairs, executor=ray, {args.plan_cpus} CPUs, load average before start {others:.1f}: {s['images']} "
        f"images x {args.dim}, "
        f"train sample {s['train_sample']}, K={s['clusters']}, {args.plan_iters} iterations, {s['assign_tasks']} "
        f"assignment tasks, "
        f"{s['groups']} union-find tasks (largest {s.get('largest_group', '?')} images), {s['pairs']} pairs; wall "
        f"{res['wall_s']:.0f} s {s['seconds']}"
    )
    sample_gib = s["train_sample"] * args.dim * 4 / 2**30
    print(f"training sample as float32: {sample_gib:.2f} GiB")
    print(f"{'process':<24} {'peak RSS GiB':>12}")
    print(
        f"{'driver (getrusage)':<24} {gib(res['driver_maxrss']):>12}   (after ray.init: "
        f"{gib(res['driver_rss_after_ray_init'])})"
    )
    for role in sorted(peaks):
        print(f"{role:<24} {gib(peaks[role]):>12}")
    print(f"{'all of the above at once':<24} {gib(total_peak[0]):>12}")
    if not args.plan_workdir:
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--sizes", default="20000,100000,300000,1000000")
    ap.add_argument("--dim", type=int, default=768)
    ap.add_argument("--per-cluster", type=int, default=1000, help="K = n / this (tens of thousands at 100M images)")
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument(
        "--allpairs-max",
        type=int,
        default=50000,
        help="largest n for the all-pairs peer (quadratic; extrapolated above)",
    )
    ap.add_argument(
        "--ladder-max-s", type=float, default=300, help="stop trying costlier faiss settings after one takes this long"
    )
    ap.add_argument(
        "--sklearn-max", type=int, default=1000000, help="largest n for scikit-learn (its time grows fastest)"
    )
    ap.add_argument(
        "--plan-memory", type=int, default=0, help="measure plan_pairs' memory on a features folder of this many rows"
    )
    ap.add_argument("--plan-k", type=int, default=512, help="K of the --plan-memory run")
    ap.add_argument("--plan-iters", type=int, default=4, help="K-means iterations of the --plan-memory run")
    ap.add_argument(
        "--plan-k-per-task", type=int, default=128, help="clusters per union-find task of the --plan-memory run"
    )
    ap.add_argument("--plan-cpus", type=int, default=os.cpu_count() or 1, help="CPUs of the embedded Ray")
    ap.add_argument(
        "--rows-per-file", type=int, default=256, help="rows per features file (ace_full: images_per_partition)"
    )
    ap.add_argument("--plan-workdir", default=None, help="keep (and reuse) the features folder here")
    ap.add_argument("--plan-driver", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--group-memory", default="", help="images per union-find task, comma-separated")
    ap.add_argument("--group-task", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--group-dir", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--plan-dir", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.group_memory:
        return group_task(args) if args.group_task else group_memory(args)
    if args.plan_memory:
        if "--dim" not in sys.argv:
            args.dim = 1152  # SigLIP SO400M, what ace_full pairs with
        return plan_driver(args) if args.plan_driver else plan_memory(args)
    sizes = [int(s) for s in args.sizes.split(",")]
    avail = psutil.virtual_memory().available / 2**30
    print(f"threads: {os.cpu_count()} cores; memory available {avail:.1f} GiB; dim {args.dim}; band {BAND.describe()}")
    rows = []
    allpairs_rate = None
    for n in sizes:
        need = n * args.dim * 4 * 2.5 / 2**30
        if need > avail * 0.8:
            print(f"n={n}: needs ~{need:.1f} GiB, skipped (largest that fits is below)")
            continue
        gc.collect()
        x, gid = synthetic(n, args.dim)
        n = len(x)
        k = max(1, n // args.per_cluster)
        r: dict = {"n": n, "k": k}
        if n <= args.sklearn_max:
            t = time.perf_counter()
            sk = sklearn_kmeans(x, k)
            r["sk_s"] = time.perf_counter() - t
            r["sk_inertia"], r["sk_cos"] = partition_quality(x, sk, k)
            del sk
        for step, (per_cluster, redo) in enumerate(LADDER):
            t = time.perf_counter()
            lab = faiss_kmeans(x, k, args.iters, per_cluster, redo)
            sec = time.perf_counter() - t
            inertia, cos = partition_quality(x, lab, k)
            if step == 0:
                labels = lab  # the recipe's settings drive the pairing below
                r["faiss_s"], r["faiss_inertia"], r["faiss_cos"] = sec, inertia, cos
            r["match"] = (f"{min(per_cluster * k, n)} rows x{redo}", sec, inertia, cos)
            if "sk_inertia" not in r or inertia <= r["sk_inertia"] or sec > args.ladder_max_s:
                break
        t = time.perf_counter()
        ours, r["sets"] = in_cluster_pairing(x, labels)
        r["pair_s"] = time.perf_counter() - t
        r["links"] = len(ours)
        truth = {
            (int(a), int(b))
            for g in range(n // 4)
            for a, b in [(4 * g + i, 4 * g + j) for i in range(4) for j in range(i + 1, 4)]
        }
        r["true_recall"] = len(ours & truth) / len(truth)
        if n <= args.allpairs_max:
            t = time.perf_counter()
            peer, r["peer_sets"] = all_pairs(x)
            r["allpairs_s"] = time.perf_counter() - t
            allpairs_rate = r["allpairs_s"] / n**2
            r["recall_vs_allpairs"] = len(ours & peer) / max(1, len(peer))
        elif allpairs_rate is not None:
            r["allpairs_s_est"] = allpairs_rate * n**2
        r["peak_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
        rows.append(r)
        del x, gid, labels
        print(
            f"n={n:>8} k={k:>5}: faiss {r['faiss_s']:.1f}s inertia {r['faiss_inertia']:.4f} | sklearn "
            + (f"{r['sk_s']:.1f}s inertia {r['sk_inertia']:.4f}" if "sk_s" in r else "-")
            + f" | pairing {r['pair_s']:.1f}s links {r['links']} | all-pairs "
            + (
                f"{r['allpairs_s']:.1f}s"
                if "allpairs_s" in r
                else (f"~{r['allpairs_s_est']:.0f}s (est.)" if "allpairs_s_est" in r else "-")
            )
            + f" | peak {r['peak_gb']:.1f} GiB",
            flush=True,
        )
    print("\nK-means at the same K (partition inertia = mean squared distance to the cluster mean, lower is better;")
    print("cos = mean cosine to the cluster direction). faiss: the recipe's settings (256 training rows per cluster),")
    print("then, if its inertia is above scikit-learn's, the cheapest setting tried that is at or below it.")
    print(
        f"{'n':>9} {'K':>6} | {'faiss s':>8} {'inertia':>8} | {'sklearn s':>9} {'inertia':>8} | "
        f"{'faiss at <= inertia':>22} {'s':>7} {'inertia':>8} {'speed-up':>8}"
    )
    for r in rows:
        m_name, m_s, m_in, _ = r["match"]
        if "sk_s" in r:
            ok = m_in <= r["sk_inertia"]
            sk = f"{r['sk_s']:>9.1f} {r['sk_inertia']:>8.4f}"
            tail = f"{m_name:>22} {m_s:>7.1f} {m_in:>8.4f} {(r['sk_s'] / m_s if ok else float('nan')):>7.1f}x" + (
                "" if ok else "  (not reached)"
            )
        else:
            sk, tail = f"{'-':>9} {'-':>8}", f"{'-':>22} {'-':>7} {'-':>8} {'-':>8}"
        print(f"{r['n']:>9} {r['k']:>6} | {r['faiss_s']:>8.1f} {r['faiss_inertia']:>8.4f} | {sk} | {tail}")
    print("\nPairing (pass 1 + union-find): in-cluster band search vs the all-pairs peer")
    print(
        f"{'n':>9} {'ours s':>8} {'links':>9} {'recall(true)':>12} {'all-pairs s':>12} {'recall vs all-pairs':>19} "
        f"{'speed-up':>9} {'peak GiB':>9}"
    )
    for r in rows:
        ap_s = r.get("allpairs_s", r.get("allpairs_s_est"))
        ap_txt = "-" if ap_s is None else (f"{ap_s:.1f}" if "allpairs_s" in r else f"~{ap_s:.0f} est.")
        rec = f"{r['recall_vs_allpairs']:.3f}" if "recall_vs_allpairs" in r else "-"
        su = "-" if ap_s is None else f"{ap_s / r['pair_s']:.0f}x"
        print(
            f"{r['n']:>9} {r['pair_s']:>8.1f} {r['links']:>9} {r['true_recall']:>12.3f} {ap_txt:>12} {rec:>19} "
            f"{su:>9} {r['peak_gb']:>9.1f}"
        )


if __name__ == "__main__":
    main()
