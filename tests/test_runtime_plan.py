"""How the runtime turns a stage list into Ray Data stages: stateless neighbours fuse into tasks, model stages get
actor pools sized from the cluster (GPUs / GPUs per actor, CPUs left after the tasks' share / CPUs per actor, or
the declared concurrency), each starting with one actor, and the stateless tail runs inside the last pool so that
the commit always has a CPU. (Several GPU stages and jobs at once: tests/test_planning.py.)"""

from datagen.config import RuntimeConfig
from datagen.operator import Operator, Resources, Role
from datagen.planning import ClusterShape, plan_wave


def plan_stages(stages, runtime, cpus, gpus, partitions):
    """One job's plan on a one-node cluster of this shape."""
    return plan_wave([("job", stages, partitions)], runtime, ClusterShape(cpus=cpus, gpus=gpus)).jobs["job"]


def op(name: str, *, stateful=False, cpus=1.0, gpus=0.0, auto_gpus=0.0, concurrency=None, role=Role.MAKE) -> Operator:
    cls = type(
        name,
        (Operator,),
        {
            "name": name,
            "stateful": stateful,
            "role": role,
            "resources": lambda self: Resources(
                num_cpus=cpus, num_gpus=gpus, gpus_if_available=auto_gpus, concurrency=concurrency
            ),
        },
    )
    return cls()


RT = RuntimeConfig()


def test_gpu_pool_holds_one_actor_per_gpu_share():
    [read, enc] = plan_stages(
        [op("read", role=Role.READ), op("siglip", stateful=True, gpus=1)], RT, 8, 4, partitions=40
    )
    assert read.kind == "tasks" and read.ops[0].name == "read" and not read.commits
    # the last pool commits: there is no separate commit task
    # all four actors are asked for at once; data flows when the first is up (min_size 1)
    assert (enc.kind, enc.min_size, enc.max_size, enc.initial_size, enc.num_gpus, enc.commits) == (
        "actors",
        1,
        4,
        4,
        1.0,
        True,
    )
    [_, sam] = plan_stages([op("read", role=Role.READ), op("sam", stateful=True, gpus=0.25)], RT, 8, 4, partitions=40)
    assert (sam.max_size, sam.initial_size) == (16, 16)


def test_gpu_pool_starts_no_larger_than_the_work():
    [_, enc] = plan_stages([op("read", role=Role.READ), op("siglip", stateful=True, gpus=1)], RT, 8, 4, partitions=3)
    assert (enc.max_size, enc.initial_size) == (3, 3)


def test_declared_concurrency_bounds_the_pool():
    [_, enc] = plan_stages([op("read"), op("siglip", stateful=True, gpus=1, concurrency=2)], RT, 8, 4, partitions=40)
    assert (enc.min_size, enc.max_size) == (1, 2)


def test_cpu_model_pool_grows_into_the_cpus_left_for_it():
    [_, emb] = plan_stages([op("read"), op("minilm", stateful=True, cpus=1)], RT, 8, 0, partitions=40)
    assert (emb.kind, emb.num_gpus, emb.min_size, emb.max_size, emb.initial_size) == ("actors", 0.0, 1, 7, 1)


def test_cpu_pools_shrink_their_cpu_request_to_leave_one_cpu_for_tasks():
    plans = plan_stages(
        [op("read"), op("a", stateful=True, cpus=2), op("b", stateful=True, cpus=2)], RT, 2, 0, partitions=4
    )
    assert sum(p.num_cpus for p in plans if p.kind == "actors") <= 1.0 + 1e-9


def test_gpu_if_available_follows_the_cluster():
    stages = [op("read"), op("siglip", stateful=True, auto_gpus=1)]
    assert plan_stages(stages, RT, 8, 0, partitions=4)[-1].num_gpus == 0.0
    assert plan_stages(stages, RT, 8, 2, partitions=4)[-1].num_gpus == 1.0


def test_stateless_tail_runs_inside_the_last_pool_which_commits():
    stages = [
        op("read"),
        op("canny"),
        op("rewrite", stateful=True, role=Role.INSTRUCT),
        op("lcu", role=Role.COMPOSE),
        op("mix", role=Role.MIX),
    ]
    plans = plan_stages(stages, RT, 2, 0, partitions=10)
    assert [(p.kind, [o.name for o in p.ops], p.commits) for p in plans] == [
        ("tasks", ["read", "canny"], False),
        ("actors", ["rewrite", "lcu", "mix"], True),
    ]


def test_all_stateless_stages_fuse_into_one_committing_task():
    plans = plan_stages([op("read"), op("canny"), op("gray")], RT, 2, 0, partitions=10)
    assert [(p.kind, len(p.ops), p.commits) for p in plans] == [("tasks", 3, True)]


def test_actor_pools_named_in_the_recipe():
    plans = plan_stages([op("read"), op("slow_setup")], RuntimeConfig(actor_pools=["slow_setup"]), 4, 0, partitions=10)
    assert [p.kind for p in plans] == ["tasks", "actors"]


def test_plan_is_recorded_in_plain_json():
    [p] = plan_stages([op("read"), op("siglip", stateful=True, gpus=1)], RT, 8, 4, partitions=8)[1:]
    assert p.to_json() == {
        "stage": "siglip",
        "operators": ["siglip"],
        "kind": "actors",
        "cpus_per_worker": 1.0,
        "gpus_per_worker": 1.0,
        "commits": True,
        "pool_min": 1,
        "pool_max": 4,
        "pool_initial": 4,
        "models": [],
    }


def test_behind_a_gpu_pool_the_tail_is_a_task_of_its_own():
    stages = [op("read"), op("siglip", stateful=True, gpus=1, role=Role.FEATURES), op("write", role=Role.WRITE)]
    plans = plan_stages(stages, RT, 8, 4, partitions=10)
    assert [(p.kind, [o.name for o in p.ops], p.commits) for p in plans] == [
        ("tasks", ["read"], False),
        ("actors", ["siglip"], False),
        ("tasks", ["write"], True),
    ]


def test_workers_get_neither_the_plan_nor_other_stages():
    import pickle
    from pathlib import Path

    from datagen.config import OutputConfig
    from datagen.runtime import Job

    plan = [
        {"name": f"img-{i:05d}", "entries": [{"uri": f"file:///photos/{i}-{j}.jpg"} for j in range(256)]}
        for i in range(200)
    ]
    job = Job("images", plan, [op("read"), op("rewrite", stateful=True)], Path("/out"), OutputConfig(), 7, "fp")
    slim = job.for_workers()
    assert (slim.partitions, slim.stages) == ([], [])
    assert (slim.name, slim.out_dir, slim.seed, slim.recipe) == ("images", Path("/out"), 7, "fp")
    assert slim.new_batch(plan[3]).partition == "img-00003"
    assert len(pickle.dumps(slim)) < len(pickle.dumps(job.partitions)) / 100


def test_small_cpu_models_run_in_the_partitions_task_and_get_pools_on_gpu_clusters():
    """MobileNetV2 (ONNX Runtime) and YuNet + SFace (OpenCV) load in a fraction of a second, once per worker process
    (datagen.worker_cache): on a CPU-only cluster they fuse into the partition's task instead of holding a CPU each in
    an actor pool; where the cluster has GPUs, MobileNetV2 gets a GPU pool, and the insightface faces keep theirs."""
    from operators.features.faces import FaceFeatures, FaceFeaturesConfig
    from operators.features.mobilenet import MobileNetFeatures, MobileNetFeaturesConfig

    read, faces, mobilenet = (
        op("read", role=Role.READ),
        FaceFeatures(FaceFeaturesConfig(backend="opencv_zoo")),
        MobileNetFeatures(),
    )
    [only] = plan_stages([read, faces, mobilenet], RT, 2, 0, partitions=5)
    assert only.kind == "tasks" and [o.name for o in only.ops] == ["read", "face_features", "mobilenet_features"]
    plans = plan_stages([read, faces, mobilenet], RT, 16, 2, partitions=5)
    assert [(p.kind, p.num_gpus) for p in plans] == [("tasks", 0.0), ("actors", 1.0)] and plans[1].ops[0] is mobilenet
    assert FaceFeatures(FaceFeaturesConfig(backend="insightface", model_pack="x")).stateful
    assert MobileNetFeatures(MobileNetFeaturesConfig(device="cuda")).stateful


def test_a_model_loads_once_per_process():
    from datagen import worker_cache

    worker_cache.clear()
    loads = []
    first = worker_cache.per_process(("m", 1), lambda: loads.append(1) or object())
    assert worker_cache.per_process(("m", 1), lambda: loads.append(1) or object()) is first and loads == [1]
    assert worker_cache.per_process(("m", 2), lambda: loads.append(2) or object()) is not first and loads == [1, 2]
    worker_cache.clear()
