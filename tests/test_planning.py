"""The plan of the jobs that run at once: every actor pool starts with one actor beside all the others, the GPUs are
divided among the GPU stages by weight (shares shrink, and stages share GPUs, when they ask for more than the
cluster has), the tasks keep CPUs no actor may take, and a recipe that cannot fit is refused with the stage named."""

import pytest

from datagen.config import ConfigError, RuntimeConfig
from datagen.operator import Operator, Resources, Role
from datagen.planning import ClusterShape, PlanError, plan_wave


def op(name, *, gpus=0.0, cpus=1.0, stateful=True, concurrency=None, role=Role.MAKE, whole=False) -> Operator:
    attrs = {
        "name": name,
        "stateful": stateful,
        "role": role,
        "resources": lambda self: Resources(num_cpus=cpus, num_gpus=gpus, concurrency=concurrency, whole_gpus=whole),
    }
    return type(name, (Operator,), attrs)()


READ = op("read", stateful=False, role=Role.READ)
RT = RuntimeConfig()


def pools(plan):
    return {sp.name: sp for plans in plan.jobs.values() for sp in plans if sp.kind == "actors"}


def test_one_gpu_stage_on_a_cpu_poor_node_leaves_the_tasks_a_cpu():
    """4 CPUs and 4 GPUs: four 1-CPU GPU actors would hold every CPU and the read task would wait forever."""
    plan = plan_wave([("images", [READ, op("contour", gpus=1)], 59)], RT, ClusterShape(cpus=4, gpus=4))
    contour = pools(plan)["contour"]
    assert (contour.min_size, contour.initial_size, contour.max_size, contour.num_gpus) == (1, 4, 4, 1.0)
    assert contour.num_cpus * contour.max_size <= 4 - plan.task_cpus + 1e-9 and plan.task_cpus >= 1
    assert any("tasks never starve" in n for n in plan.notes)


def test_two_gpu_stages_both_start_on_two_gpus():
    plan = plan_wave(
        [("images", [READ, op("contour", gpus=1), op("scribble", gpus=1)], 12)], RT, ClusterShape(cpus=8, gpus=2)
    )
    p = pools(plan)
    assert [(p[n].num_gpus, p[n].min_size, p[n].max_size) for n in ("contour", "scribble")] == [(1, 1, 1)] * 2


def test_stages_that_ask_for_more_gpus_than_there_are_share_them():
    stages = [READ, op("a", gpus=1), op("b", gpus=1), op("c", gpus=1)]
    plan = plan_wave([("images", stages, 100)], RT, ClusterShape(cpus=16, gpus=2))
    shares = [sp.num_gpus for sp in pools(plan).values()]
    assert all(0 < s < 1 for s in shares)
    # the first actors of all three pack onto the two GPUs (an actor's share comes from one GPU)
    assert sum(sorted(shares)[:2]) <= 1 + 1e-9 and sum(shares) <= 2 + 1e-9
    assert any("share GPUs" in n for n in plan.notes)


def test_gpus_left_go_to_the_pools_by_weight():
    rt = RuntimeConfig(gpu_weights={"inpaint": 3.0, "nsfw": 1.0})
    plan = plan_wave(
        [("images", [READ, op("inpaint", gpus=1), op("nsfw", gpus=1)], 1000)], rt, ClusterShape(cpus=64, gpus=8)
    )
    p = pools(plan)
    assert (p["inpaint"].max_size, p["nsfw"].max_size) == (5, 2)  # 1 + 6 x 3/4, 1 + 6 x 1/4
    assert sum(sp.num_gpus * sp.max_size for sp in p.values()) <= 8


def test_jobs_of_a_wave_are_planned_together():
    shape = ClusterShape(cpus=8, gpus=2)
    plan = plan_wave(
        [("images", [READ, op("sam", gpus=1)], 50), ("features", [READ, op("siglip", gpus=1)], 50)], RT, shape
    )
    assert sum(sp.num_gpus * sp.max_size for sp in pools(plan).values()) <= 2 + 1e-9
    assert set(plan.jobs) == {"images", "features"}


def test_no_gpu_for_a_gpu_stage_is_refused_naming_it():
    with pytest.raises(PlanError, match=r"no GPU.*remove_object \(1\)"):
        plan_wave([("images", [READ, op("remove_object", gpus=1)], 5)], RT, ClusterShape(cpus=8, gpus=0))


def test_a_tensor_parallel_actor_larger_than_a_node_is_refused():
    with pytest.raises(PlanError, match=r"captioner needs 2 GPUs per actor on one node; the nodes have 1 each"):
        plan_wave([("images", [READ, op("captioner", gpus=2)], 5)], RT, ClusterShape(cpus=8, gpus=2, nodes=2))


def test_too_few_cpus_for_the_pools_is_refused():
    stages = [READ] + [op(f"m{i}", gpus=0.1) for i in range(12)]
    with pytest.raises(PlanError, match="actor pools and the tasks need at least"):
        plan_wave([("images", stages, 5)], RT, ClusterShape(cpus=2, gpus=4))


def test_pools_never_outnumber_the_partitions_and_respect_concurrency():
    plan = plan_wave(
        [("images", [READ, op("sam", gpus=0.25), op("dino", gpus=0.25, concurrency=2)], 3)],
        RT,
        ClusterShape(cpus=32, gpus=4),
    )
    p = pools(plan)
    assert p["sam"].max_size == 3 and p["dino"].max_size == 2


def test_cluster_shapes_parse_and_bad_ones_name_the_key():
    assert ClusterShape.parse("gpus=8,cpus=96,nodes=2") == ClusterShape(cpus=96, gpus=8, nodes=2)
    with pytest.raises(ConfigError, match="'tpus=4' is not one of"):
        ClusterShape.parse("tpus=4,cpus=8")
    with pytest.raises(ConfigError, match="cpus=N is required"):
        ClusterShape.parse("gpus=8")


def test_the_table_lists_every_stage():
    plan = plan_wave([("images", [READ, op("contour", gpus=1)], 59)], RT, ClusterShape(cpus=4, gpus=4))
    text = plan.table()
    assert "contour" in text and "read" in text and "4 CPUs and 4 GPUs on 1 node(s)" in text


def test_a_vllm_engine_keeps_its_gpu_while_the_others_share():
    """vLLM reserves a share of each whole GPU's memory: its actor never shrinks onto a shared GPU."""
    stages = [READ, op("sam", gpus=1), op("depth", gpus=1), op("judge", gpus=1, whole=True)]
    plan = plan_wave([("images", stages, 10)], RT, ClusterShape(cpus=16, gpus=2))
    p = pools(plan)
    assert p["judge"].num_gpus == 1.0 and p["sam"].num_gpus + p["depth"].num_gpus <= 1 + 1e-9
    with pytest.raises(PlanError, match="hold 2 whole GPUs of 2; none is left for sam"):
        plan_wave(
            [("images", [READ, op("sam", gpus=1), op("judge", gpus=2, whole=True)], 10)],
            RT,
            ClusterShape(cpus=16, gpus=2),
        )


def test_first_actors_fit_in_whatever_order_ray_starts_them():
    """Ray gives a fractional actor its share of the first GPU with room; the planned shares fit in every order (a
    largest-first packing was not enough: a rehearsal's last actor once waited while 0.48 GPU was free in pieces)."""
    from itertools import permutations

    stages = [READ, *(op(f"m{i}", gpus=g) for i, g in enumerate((1, 0.5, 0.5, 0.25, 0.25, 0.1)))]
    plan = plan_wave([("images", stages, 10)], RT, ClusterShape(cpus=32, gpus=2))
    shares = [sp.num_gpus for sp in pools(plan).values()]
    for order in permutations(shares):
        free = [1.0, 1.0]
        for s in order:
            i = next((i for i, f in enumerate(free) if s <= f + 1e-9), None)
            assert i is not None, (order, free)
            free[i] -= s
