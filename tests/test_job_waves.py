"""Jobs that do not read each other's output run as one streaming execution on Ray (runtime.concurrent_jobs): the
images and features jobs share the cluster, the pairs job (which plans from the features) starts after the features
job has committed every partition, and the output is the same as running the jobs one after another."""

import dataclasses

import pytest

from datagen import run as datagen_run
from datagen.config import ConfigError
from datagen.jobs import JobSpec
from datagen.shards.commit import read_marker
from datagen.shards.reader import read_index
from pipelines import JOBS, load_recipe


def spec(name, after=()):
    return JobSpec(name=name, plan=lambda r, o: [], stages=lambda r: [], after=after)


def names(waves):
    return [[s.name for s in w] for w in waves]


def test_waves_follow_after():
    jobs = [spec("images"), spec("features"), spec("pairs", after=("features",))]
    assert names(datagen_run.waves(jobs, together=True)) == [["images", "features"], ["pairs"]]
    assert names(datagen_run.waves(jobs, together=False)) == [["images"], ["features"], ["pairs"]]
    chain = [spec("a"), spec("b", after=("a",)), spec("c", after=("b",)), spec("d", after=("a",))]
    assert names(datagen_run.waves(chain, together=True)) == [["a"], ["b", "d"], ["c"]]


def test_after_must_name_an_earlier_job():
    with pytest.raises(ConfigError, match="job pairs: runs after \\['features'\\]"):
        datagen_run.waves([spec("pairs", after=("features",)), spec("features")], together=True)


def test_datagen_jobs_declare_what_they_read():
    by_name = {j.name: j for j in JOBS}
    assert not by_name["images"].after and not by_name["features"].after
    # the pairing's global step: kmeans after the features, then assign, unionfind, and the pairs job's merge
    assert [by_name[j].after for j in ("kmeans", "assign", "unionfind", "pairs")] == [
        ("features",),
        ("kmeans",),
        ("assign",),
        ("unionfind",),
    ]
    assert [[s.name for s in w] for w in datagen_run.waves(JOBS, together=True)] == [
        ["images", "features"],
        ["kmeans"],
        ["assign"],
        ["unionfind"],
        ["pairs"],
    ]


def recipe(out, photos, concurrent):
    return load_recipe(
        "tests/tiny_recipe.yaml",
        [
            f"input.path={photos}",
            f"output.dir={out}",
            "runtime.executor=ray",
            "runtime.num_cpus=2",
            f"runtime.concurrent_jobs={str(concurrent).lower()}",
            "pairing.enabled=true",
            "pairing.encoder=classical_features",
            "input.images_per_partition=2",
        ],
    )


def test_concurrent_jobs_on_ray_give_the_same_output(tmp_path, photo_dir, ray_local):
    seen = {}
    pairs = next(j for j in JOBS if j.name == "pairs")

    def plan_after_features(r, out):
        features = datagen_run.frozen_plan(out, "features", r, lambda _: pytest.fail("features were not planned"))
        seen["features done"] = [read_marker(out, p["name"]) is not None for p in features]
        return pairs.plan(r, out)

    jobs = [j if j.name != "pairs" else dataclasses.replace(j, plan=plan_after_features) for j in JOBS]
    together = datagen_run.run(recipe(tmp_path / "together", photo_dir, True), jobs)
    assert seen["features done"] and all(seen["features done"])  # the pairs job planned after every features partition
    apart = datagen_run.run(recipe(tmp_path / "apart", photo_dir, False), JOBS)
    assert {"images", "features"} <= set(together["invocation"]["stages"])  # pairs runs only if some pair was found
    assert together["samples"] == apart["samples"] > 0
    keys = [sorted(read_index(tmp_path / d).column("key").to_pylist()) for d in ("together", "apart")]
    assert keys[0] == keys[1]


def test_workers_are_warmed_only_on_an_embedded_ray(ray_local, monkeypatch):
    from datagen import runtime
    from datagen.config import RuntimeConfig
    from datagen.runtime import StagePlan, warm_workers
    from operators.conditions.grayscale import Grayscale

    monkeypatch.setattr(runtime, "_WARMED", set())  # this test session's Ray may have been warmed by an earlier test
    tasks = [StagePlan((Grayscale(),), "tasks", 1.0)]
    cpus = int(ray_local.cluster_resources()["CPU"])
    assert warm_workers(tasks, RuntimeConfig()) == cpus  # one per CPU: every worker process imports and sets up
    assert warm_workers(tasks, RuntimeConfig()) == 0  # once per Ray session: the workers stay warm
    runtime.settle_warm_up()
    assert runtime._WARMING == []
    monkeypatch.setattr(runtime, "_WARMED", set())
    assert warm_workers(tasks, RuntimeConfig(address="10.0.0.1:6379")) == 0  # a cluster: start-up is small there
    assert warm_workers(tasks, RuntimeConfig(executor="local")) == 0
    assert warm_workers([StagePlan((Grayscale(),), "actors", 1.0)], RuntimeConfig()) == 0  # pools set up their own


def test_workers_run_with_the_recipes_environment(tmp_path):
    """runtime.env reaches every Ray worker (by default the Hugging Face libraries offline: nothing is downloaded)."""
    import subprocess
    import sys

    code = (
        "import ray\n"
        "from datagen.config import RuntimeConfig\n"
        "from datagen.runtime import init_ray\n"
        "init_ray(RuntimeConfig(num_cpus=1, env={'HF_HUB_OFFLINE': '1', 'DATAGEN_PROBE': 'yes'}))\n"
        "import os\n"
        "f = ray.remote(lambda: os.environ.get('HF_HUB_OFFLINE', '') + os.environ.get('DATAGEN_PROBE', ''))\n"
        "print('ENV', ray.get(f.remote()))\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert "ENV 1yes" in res.stdout, res.stderr[-3000:]
    from datagen.config import RuntimeConfig

    assert RuntimeConfig().env["HF_HUB_OFFLINE"] == "1"
