"""The pairing's global step as jobs of their own (kmeans, assign, unionfind): each commits its partitions with
done-markers like every job, so a rerun does nothing and a run stopped midway resumes to the same pairs; and the
GPU path (faiss's GPU index where present; here a stand-in that answers like one) gives the same links as the CPU."""

from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest

from datagen import paths, schema
from datagen.pairing import kmeans, plan
from datagen.pairing.config import PairingConfig
from datagen.pairing.steps import StepFailed
from tests.pairing.features_folder import embeddings, run_pairing, write_features


def pairing(**kmeans_cfg) -> PairingConfig:
    return PairingConfig.model_validate(
        {
            "enabled": True,
            "kmeans": {"clusters": 6, "min_cluster_size": 8, "clusters_per_task": 2, "iterations": 8, **kmeans_cfg},
            "pass1": {"band": {"low": 0.6, "high": 0.97}, "center": True, "search": "knn"},
            "routes": {
                "general_editing": {"score": "none", "band": {"low": 0.6, "high": 0.97}},
                "reference_generation": {"enabled": False},
            },
        }
    )


def pairs_table(out):
    """Every pair row, in file order; NaN scores (routes scored with `none`) as None so rows compare equal."""
    rows = pq.read_table(out / schema.PAIRS_FILE).to_pylist()
    return [{k: None if isinstance(v, float) and np.isnan(v) else v for k, v in r.items()} for r in rows]


class StandInGpuIndex:
    """What faiss.index_cpu_to_all_gpus returns, as a GPU index answers: the same kNN semantics (k best by inner
    product), but float32 products summed in another order (here: the dimensions reversed, in float16-rounded
    blocks) and near-ties ranked its own way, so its top-1 is not always the CPU's."""

    calls = 0

    def __init__(self, cpu_index):
        n, d = cpu_index.ntotal, cpu_index.d
        self.xb = np.asarray(cpu_index.reconstruct_n(0, n), np.float32).reshape(n, d)
        StandInGpuIndex.calls += 1

    def search(self, x, k):
        x = np.asarray(x, np.float32)
        sims = (x[:, ::-1] @ self.xb[:, ::-1].T).astype(np.float32)
        sims = sims + np.float32(3e-7) * np.cos(np.arange(sims.shape[1], dtype=np.float32))  # its own rounding
        ids = np.argsort(-sims, axis=1, kind="stable")[:, :k]
        return np.take_along_axis(sims, ids, axis=1), ids.astype(np.int64)


@pytest.fixture
def stand_in_gpu(monkeypatch):
    """faiss as a GPU build would present itself: one GPU, and a GPU index for every index moved there."""
    import faiss

    StandInGpuIndex.calls = 0
    if getattr(faiss, "get_num_gpus", lambda: 0)() > 0:  # a GPU build on a GPU machine: its real GPU index, counted
        real = faiss.index_cpu_to_all_gpus

        def counted(index, *a, **k):
            StandInGpuIndex.calls += 1
            return real(index, *a, **k)

        monkeypatch.setattr(faiss, "index_cpu_to_all_gpus", counted)
        return StandInGpuIndex
    monkeypatch.setattr(faiss, "get_num_gpus", lambda: 1, raising=False)
    monkeypatch.setattr(faiss, "index_cpu_to_all_gpus", StandInGpuIndex, raising=False)
    return StandInGpuIndex


def test_nearest_centroid_is_decided_exactly_whatever_the_index_ranks():
    """A near-tie (two centroids 1e-7 apart in cosine) that a GPU ranks the other way: the exact cosine decides."""
    rng = np.random.default_rng(0)
    c = rng.standard_normal((5, 16)).astype(np.float32)
    c /= np.linalg.norm(c, axis=1, keepdims=True)
    x = (c[2] + c[3]).astype(np.float32)[None]
    x /= np.linalg.norm(x)

    class Reversed:  # proposes the right candidates in the wrong order, as float32 rounding can at a near-tie
        def search(self, q, k):
            ids = np.argsort(-(q @ c.T), axis=1)[:, :k][:, ::-1]
            return np.zeros_like(ids, np.float32), ids

    exact = (x.astype(np.float64) @ c.T.astype(np.float64))[0]
    want = int(np.argmax(exact))
    ids, sims = kmeans.nearest(x, c, Reversed())
    assert ids.tolist() == [want] and sims[0] == exact[want]
    assert kmeans.nearest(x, c, kmeans.centroid_index(c))[0].tolist() == [want]


def test_gpu_path_gives_the_same_links_as_the_cpu(tmp_path, stand_in_gpu):
    """The whole step through the GPU path (training and assignment search a GPU index; pass 1 searches on the CPU
    everywhere): the same clusters, links, sets and pairs as the CPU run, bit for bit."""
    x = embeddings(900, 32, seed=5)
    write_features(tmp_path / "gpu", x, 128)
    write_features(tmp_path / "cpu", x, 128)
    cfg = pairing(gpu="auto", init="random")
    run_pairing(tmp_path / "gpu", cfg)
    summary_gpu = json.loads((tmp_path / "gpu" / plan.WORK_DIR / plan.SUMMARY_FILE).read_text())
    assert summary_gpu["faiss_gpus"] == 1 and stand_in_gpu.calls > cfg.kmeans.iterations  # training and assignment
    calls = stand_in_gpu.calls
    run_pairing(tmp_path / "cpu", pairing(gpu=False, init="random"))
    assert stand_in_gpu.calls == calls  # the CPU run never built a GPU index
    summary_cpu = json.loads((tmp_path / "cpu" / plan.WORK_DIR / plan.SUMMARY_FILE).read_text())
    assert summary_cpu["faiss_gpus"] == 0
    gpu, cpu = pairs_table(tmp_path / "gpu"), pairs_table(tmp_path / "cpu")
    assert gpu and gpu == cpu
    assert summary_gpu["clusters"] == summary_cpu["clusters"] == 6
    assert summary_gpu["links_pass1"] == summary_cpu["links_pass1"] > 0
    assert summary_gpu["route_stats"] == summary_cpu["route_stats"]
    with (
        np.load(tmp_path / "gpu" / plan.WORK_DIR / plan.KMEANS_FILE) as g,
        np.load(tmp_path / "cpu" / plan.WORK_DIR / plan.KMEANS_FILE) as c,
    ):
        assert np.array_equal(g["centroids"], c["centroids"])


def test_each_step_is_a_job_with_done_markers_and_a_rerun_does_nothing(tmp_path):
    write_features(tmp_path, embeddings(400, 24, seed=1), 64)
    parts, summary = run_pairing(tmp_path, pairing())
    planned = {
        job: [p["name"] for p in json.loads(paths.plan_file(tmp_path, job).read_text())["partitions"]]
        for job in (plan.KMEANS_JOB, plan.ASSIGN_JOB, plan.UNIONFIND_JOB)
    }
    assert planned["kmeans"] == ["kmeans-00000"] and len(planned["assign"]) == 1 and len(planned["unionfind"]) == 3
    done = sorted(p.name.removesuffix(".done.json") for p in (tmp_path / paths.PROGRESS_DIR).iterdir())
    assert done == sorted(n for names in planned.values() for n in names)  # every partition committed, once
    assert summary["partitions"] == len(done) and summary["samples"] == 0
    assert parts and not (tmp_path / plan.WORK_DIR / plan.BUCKETS_DIR).exists()
    stamp = {f: f.stat().st_mtime_ns for f in (tmp_path / plan.WORK_DIR).rglob("*") if f.is_file()}
    pairs = pairs_table(tmp_path)
    again, summary = run_pairing(tmp_path, pairing())
    assert summary["invocation"]["nothing_to_do"] and again == parts and pairs_table(tmp_path) == pairs
    assert stamp == {f: f.stat().st_mtime_ns for f in (tmp_path / plan.WORK_DIR).rglob("*") if f.is_file()}


def test_a_run_stopped_midway_resumes_to_the_same_pairs(tmp_path):
    """Stopped after K-means and one of two assignment partitions (a killed run leaves exactly this: files of the
    partition it was doing, without its marker), then again inside the union-find: the resumed runs redo only the
    partitions without a marker and end with the pairs of an uninterrupted run, none lost and none twice."""
    x = embeddings(1_200, 24, seed=2)
    write_features(tmp_path / "whole", x, 64)
    write_features(tmp_path / "cut", x, 64)
    run_pairing(tmp_path / "whole", pairing())
    want = pairs_table(tmp_path / "whole")

    cut = tmp_path / "cut"
    plan.ASSIGN_ROWS, rows = 600, plan.ASSIGN_ROWS  # two assignment partitions
    try:
        run_pairing(cut, pairing(), jobs=("kmeans", "assign"))
    finally:
        plan.ASSIGN_ROWS = rows
    paths.partition_marker(cut, "assign-00001").unlink()  # its bucket files stay, as a killed task leaves them
    _, summary = run_pairing(cut, pairing(), jobs=("kmeans", "assign", "unionfind"))
    assert summary["invocation"]["partitions_done"] == 1 + 3  # the one assignment redone, then every group
    paths.partition_marker(cut, "unionfind-00001").unlink()
    plan.group_pairs_file(cut / plan.WORK_DIR, 1).unlink()
    _, summary = run_pairing(cut, pairing())
    assert summary["invocation"]["partitions_done"] == 1
    assert pairs_table(cut) == want


def test_a_failing_step_stops_the_job_without_its_marker(tmp_path, monkeypatch):
    write_features(tmp_path, embeddings(200, 16, seed=3), 50)

    def broken(*a, **k):
        raise MemoryError("the sample does not fit")

    with monkeypatch.context() as m:
        m.setattr(plan, "train", broken)
        with pytest.raises(StepFailed, match="kmeans_train, partition kmeans-00000: MemoryError: the sample"):
            run_pairing(tmp_path, pairing())
    assert not paths.partition_marker(tmp_path, "kmeans-00000").exists()
    parts, _ = run_pairing(tmp_path, pairing())  # the resumed run trains and goes on
    assert parts and pairs_table(tmp_path)
