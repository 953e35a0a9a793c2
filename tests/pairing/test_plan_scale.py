"""The pairing plan at scale: the K-means sample is drawn per file and read by the training task, never gathered on
the driver (under Ray the driver never reads an embedding and passes none to a task; its peak Python allocation stays
far below the sample), the in-task reading and normalising give the same bits as the old gather-then-normalise, and
plan.py knows no operator."""

from __future__ import annotations

import ast
import json
import tracemalloc
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

import datagen.pairing.plan as plan
from datagen import schema
from datagen.config import Recipe, RuntimeConfig
from datagen.pairing.config import PairingConfig
from datagen.pairing.kmeans import normalize, normalize_inplace
from tests.pairing.features_folder import embeddings, run_pairing, write_features


def pairing(**kmeans) -> PairingConfig:
    return PairingConfig.model_validate(
        {
            "enabled": True,
            "kmeans": {"clusters": 6, "min_cluster_size": 8, "clusters_per_task": 2, "iterations": 8, **kmeans},
            "pass1": {"band": {"low": 0.6, "high": 0.97}, "center": True, "search": "knn"},
            "routes": {
                "general_editing": {"score": "none", "band": {"low": 0.6, "high": 0.97}},
                "reference_generation": {"enabled": False},
            },
        }
    )


def run_plan(out: Path, cfg: PairingConfig, executor: str) -> list[dict]:
    return run_pairing(out, cfg, executor)[0]


def pairs_of(out: Path, parts: list[dict]) -> list[tuple]:
    assert parts and sum(p["pairs"] for p in parts) == pq.ParquetFile(out / schema.PAIRS_FILE).metadata.num_rows
    return sorted((r["uri_a"], r["uri_b"], r["cluster"]) for r in pq.read_table(out / schema.PAIRS_FILE).to_pylist())


def test_sample_counts_draw_exactly_n_rows_uniformly():
    counts = np.array([256, 256, 100, 0, 256, 3], np.int64)
    rng = np.random.default_rng(0)
    assert np.array_equal(plan.sample_counts(counts, 10**6, rng), counts)  # the sample covers every row
    draws = np.stack([plan.sample_counts(counts, 300, rng) for _ in range(2000)])
    assert (draws.sum(axis=1) == 300).all() and (draws <= counts).all() and (draws[:, 3] == 0).all()
    assert np.allclose(draws.mean(axis=0), 300 * counts / counts.sum(), rtol=0.05, atol=0.1)
    # past numpy's exact sampler (1e9 rows): halves split by the normal approximation, still exactly n rows
    big = np.full(12, 250_000_000, np.int64)
    m = plan.sample_counts(big, 5_000_000, np.random.default_rng(1))
    assert m.sum() == 5_000_000 and (m >= 0).all() and np.allclose(m, 5_000_000 / 12, rtol=0.02)
    assert np.array_equal(m, plan.sample_counts(big, 5_000_000, np.random.default_rng(1)))  # seeded


def test_sample_rows_are_seeded_per_file_and_sorted():
    a = plan.sample_rows("/x/feat-00001.parquet", 256, 10, seed=3)
    assert np.array_equal(a, plan.sample_rows("/elsewhere/feat-00001.parquet", 256, 10, seed=3))
    assert not np.array_equal(a, plan.sample_rows("/x/feat-00002.parquet", 256, 10, seed=3))
    assert len(set(a.tolist())) == 10 and np.all(np.diff(a) > 0)
    assert plan.sample_rows("/x/f.parquet", 256, 256, seed=3) is None


def test_task_side_sample_gives_the_bits_of_the_old_driver_side_gather(tmp_path):
    x = embeddings(700, 40, seed=2)
    files = [str(f) for f in write_features(tmp_path, x, 64)]
    counts = [pq.ParquetFile(f).metadata.num_rows for f in files]
    for n in (700, 333):
        m = plan.sample_counts(np.asarray(counts), n, np.random.default_rng(5))
        items = [(f, c, int(k)) for f, c, k in zip(files, counts, m) if k]
        new = plan.read_sample(items, seed=5, threads=3)
        # the old way: every file's rows read as parts, concatenated, then the mean and kmeans.normalize (copies)
        old = np.concatenate([plan.read_embeddings(f, plan.sample_rows(f, c, k, 5)) for f, c, k in items])
        assert new.shape == (n, 40) and new.dtype == np.float32 and np.array_equal(new, old)
        center = new.mean(axis=0).astype(np.float32)
        assert np.array_equal(center, old.mean(axis=0).astype(np.float32))
        assert np.array_equal(normalize_inplace(new, center, chunk=100), normalize(old, center))


def test_runs_of_files_cover_every_file_once_in_order():
    files = [f"f{i}" for i in range(7)]
    runs = plan.runs_of_files(files, np.array([3, 3, 3, 0, 10, 1, 1]), rows=6)
    assert runs == [["f0", "f1"], ["f2", "f3", "f4"], ["f5", "f6"]]
    assert plan.runs_of_files([], np.array([], np.int64), 6) == []


def test_plan_imports_no_operator_and_no_registry():
    tree = ast.parse(Path(plan.__file__).read_text())
    names = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    names += [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
    names += [f"{n.module}.{a.name}" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) for a in n.names]
    assert not [
        m
        for m in names
        if m.split(".")[0] == "operators" or m.startswith("datagen.registry") or m == "datagen.registry"
    ]
    assert not hasattr(plan, "encoder_defaults") and not hasattr(plan, "active_routes")


def test_under_ray_the_driver_never_holds_embeddings(tmp_path, ray_local, monkeypatch):
    """Same pairs as the plain loop; on the driver, no embedding is read and none is handed to a task (only paths,
    counts, centroids and the centre travel), and the driver's peak Python allocation stays far below the sample."""
    n, dim = 10_000, 768
    write_features(tmp_path / "local", embeddings(n, dim, seed=4), 256)
    write_features(tmp_path / "ray", embeddings(n, dim, seed=4), 256)
    cfg = pairing(train_sample=8_000)
    local = pairs_of(tmp_path / "local", run_plan(tmp_path / "local", cfg, "local"))

    def refuse(*_a, **_k):
        raise AssertionError("the driver read embeddings")

    monkeypatch.setattr(plan, "read_embeddings", refuse)  # the tasks import the real module: only the driver is fenced
    monkeypatch.setattr(plan, "_embedding_matrix", refuse)
    monkeypatch.setattr(plan, "read_sample", refuse)
    sent: list[tuple[str, list, dict]] = []
    real_map = plan.parallel_map

    def spy(fn, items, runtime, **kw):
        sent.append((fn.__name__, list(items), kw))
        return real_map(fn, items, runtime, **kw)

    monkeypatch.setattr(plan, "parallel_map", spy)
    peaks: dict[str, int] = {}

    def traced(name):  # the driver's own work: each job's plan (Ray Data's machinery around it is a fixed cost)
        real = getattr(plan, name)

        def run(*a, **k):
            tracemalloc.start()
            try:
                return real(*a, **k)
            finally:
                peaks[name] = tracemalloc.get_traced_memory()[1]
                tracemalloc.stop()

        monkeypatch.setattr(plan, name, run)

    for name in ("plan_kmeans", "plan_assign", "plan_unionfind", "plan_pairs"):
        traced(name)
    parts = run_plan(tmp_path / "ray", cfg, "ray")
    peak = max(peaks.values())
    assert len(peaks) == 4
    assert pairs_of(tmp_path / "ray", parts) == local

    def float_arrays(obj):
        if isinstance(obj, np.ndarray):
            return [obj] if obj.dtype.kind in "fc" else []
        if isinstance(obj, (list, tuple)):
            return [a for o in obj for a in float_arrays(o)]
        if isinstance(obj, dict):
            return [a for o in obj.values() for a in float_arrays(o)]
        return [a for o in getattr(obj, "__dict__", {}).values() for a in float_arrays(o)]

    # the driver fans out only the footer reads; the steps' plans (what travels to their tasks) hold paths, counts
    # and group numbers, never an embedding
    assert [name for name, _, _ in sent] == ["_count_rows"]
    assert not float_arrays(sent[0][1]) and not float_arrays(sent[0][2])
    for job in (plan.KMEANS_JOB, plan.ASSIGN_JOB, plan.UNIONFIND_JOB):
        parts = json.loads((tmp_path / "ray" / "_plan" / f"{job}.json").read_text())["partitions"]
        assert parts and all(isinstance(v, (str, int)) for p in parts for e in p["entries"] for v in e.values()), job
    drawn = pq.read_table(tmp_path / "ray" / plan.WORK_DIR / plan.FILES_FILE).column("sample").to_pylist()
    assert sum(drawn) == 8_000
    sample_bytes = 8_000 * dim * 4  # 23 MiB; the old driver held it two to three times over
    # what remains is a fixed few MiB of modules Ray imports on first use, whatever the sample's size
    assert peak < sample_bytes / 3, f"driver peak {peak / 2**20:.1f} MiB for a {sample_bytes / 2**20:.1f} MiB sample"


def test_union_find_tasks_reserve_no_gpu_on_a_gpu_cluster(tmp_path):
    """K-means training and assignment are GPU pools where the cluster has GPUs (and the recipe lets faiss use them);
    the union-find tasks (in-cluster search included) are CPU work and ask Ray for none, so they never hold a GPU
    that a model stage waits for."""
    from datagen.pairing import steps
    from datagen.planning import ClusterShape, plan_wave

    def placed(cfg: PairingConfig, gpus: int) -> dict[str, tuple[str, float]]:
        recipe = Recipe(seed=7, sections={"pairing": cfg})
        s = steps.Settings(band=cfg.pass1.band, center=True, routes=[("general_editing", cfg.routes.general_editing)])
        out = {}
        shape = ClusterShape(cpus=8, gpus=gpus)
        for job in steps.jobs(lambda r: s):
            [sp] = plan_wave([(job.name, job.stages(recipe), 4)], RuntimeConfig(), shape).jobs[job.name]
            out[job.name] = (sp.kind, sp.num_gpus)
        return out

    assert placed(pairing(), gpus=2) == {
        "kmeans": ("actors", 1.0),
        "assign": ("actors", 1.0),
        "unionfind": ("tasks", 0.0),
    }
    assert all(g == 0 for _, g in placed(pairing(gpu=False), gpus=2).values())
    assert all(g == 0 for _, g in placed(pairing(), gpus=0).values())


def test_pass_one_links_are_the_exact_in_band_pairs_whatever_faiss_has():
    """The range search gives, per image, its most similar partners whose exact cosine lies in the band: the same
    links a brute-force scan finds (there is one search path, on the CPU, so a GPU cluster links the same images)."""
    from datagen.pairing.band import in_band
    from datagen.pairing.config import Band
    from datagen.pairing.search import band_links

    x = normalize(embeddings(300, 24, seed=3))
    band = Band(low=0.55, high=0.95)
    i, j, s = band_links(x, band, "range", max_neighbors=300)
    cos = x.astype(np.float64) @ x.T.astype(np.float64)
    want = {(a, b) for a in range(300) for b in range(a + 1, 300) if in_band(np.array([cos[a, b]]), band)[0]}
    assert set(zip(i.tolist(), j.tolist())) == want
    assert np.allclose(s, cos[i, j], atol=1e-6)
