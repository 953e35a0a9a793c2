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


# Nodes ---------------------------------------------------------------------------------------------------------------
def place_first_actors(plan, shape, order_seed: int) -> list[str]:
    """Place every pool's first actor the way Ray may: in a random order, each on a random node that has its CPUs
    (beside the CPUs the plan keeps there for the tasks) and a GPU with room for its share (Ray gives a share of the
    first GPU with room); returns the stages that found no node."""
    import random

    rng = random.Random(order_seed)
    cpus = [c - max(1.0, round(c * RT.task_cpu_share, 2)) for c, _ in shape.node_list]  # each node keeps its share
    gpus = [[1.0] * int(g) for _, g in shape.node_list]
    first = [sp for sp in pools(plan).values()]
    rng.shuffle(first)
    stuck = []
    for sp in first:

        def gpu_for(n):
            if sp.num_gpus <= 0:
                return -1
            return next((i for i, free in enumerate(gpus[n]) if free >= sp.num_gpus - 1e-9), None)

        fits = [n for n in range(len(cpus)) if cpus[n] >= sp.num_cpus - 1e-9 and gpu_for(n) is not None]
        if not fits:
            stuck.append(sp.name)
            continue
        n = rng.choice(fits)
        cpus[n] -= sp.num_cpus
        if sp.num_gpus > 0:
            gpus[n][gpu_for(n)] -= sp.num_gpus
    return stuck


def ace_like_stages():
    """ace_full's GPU stages as the rehearsal runs them (every model a share of a GPU, SigLIP with 4 CPUs)."""
    shares = {"seg": 0.5, "depth": 0.25, "pose": 0.1, "doodle": 0.1, "contour": 0.1, "scribble": 0.1}
    shares |= {"remove": 1, "replace": 1, "background": 1, "style": 1, "layers": 0.25, "reference": 0.25}
    shares |= {"captioner": 1, "rewrite": 1, "nsfw": 0.1, "clip": 0.25, "dino": 0.25, "judge": 1}
    images = [READ] + [op(name, gpus=g) for name, g in shares.items()]
    features = [READ, op("faces", gpus=0.25), op("siglip", gpus=1, cpus=4)]
    return [("images", images, 4), ("features", features, 4)]


def test_two_nodes_every_first_actor_finds_a_node_wherever_ray_puts_the_others():
    """8 GPUs + 12 CPUs over 2 nodes: the SigLIP actor (1.9 CPUs) once stayed pending with 3 CPUs free in pieces on
    the two nodes, the plan having checked the cluster's totals only."""
    shape = ClusterShape.parse("gpus=8,cpus=12,nodes=2")
    plan = plan_wave(ace_like_stages(), RT, shape)
    assert shape.node_list == ((6.0, 4.0), (6.0, 4.0)) and plan.task_cpus == 2  # one CPU of each node for tasks
    for seed in range(300):
        assert place_first_actors(plan, shape, seed) == [], seed
    assert sum(sp.num_cpus * sp.initial_size for sp in pools(plan).values()) <= 12 - 2 + 1e-9


def test_the_same_actors_on_one_node_of_the_same_size_ask_for_more():
    """The nodes, not only the totals, bound what an actor may ask for: the SigLIP actor gets more CPUs on one node
    of 12 CPUs than on two of 6."""
    one = pools(plan_wave(ace_like_stages(), RT, ClusterShape(cpus=12, gpus=8)))["siglip"]
    two = pools(plan_wave(ace_like_stages(), RT, ClusterShape(cpus=12, gpus=8, nodes=2)))["siglip"]
    assert two.num_cpus < one.num_cpus


def test_an_actor_larger_than_every_node_is_refused_naming_it_and_the_shortfall():
    with pytest.raises(
        PlanError,
        match=r"siglip needs 4 CPUs per actor on one node; the largest node with a GPU has 3 "
        r"\(short by 1\)",
    ):
        plan_wave([("features", [READ, op("siglip", gpus=1, cpus=4)], 4)], RT, ClusterShape(cpus=6, gpus=8, nodes=2))


def test_a_cpu_only_head_hosts_no_gpu_actor():
    """A live cluster: a CPU-only head beside one GPU node. The GPU actors' CPUs come from the GPU node alone."""
    shape = ClusterShape.of_nodes([(16, 0), (4, 2)])
    plan = plan_wave([("images", [READ, op("sam", gpus=0.5, cpus=2), op("depth", gpus=0.5, cpus=2)], 8)], RT, shape)
    p = pools(plan)
    assert p["sam"].num_cpus + p["depth"].num_cpus <= 4 - 1 + 1e-9  # the GPU node keeps a CPU for tasks
    for seed in range(50):
        assert place_first_actors(plan, shape, seed) == []
    with pytest.raises(PlanError, match=r"sam needs 6 CPUs per actor on one node; the largest node with a GPU has 4"):
        plan_wave([("images", [READ, op("sam", gpus=0.5, cpus=6)], 8)], RT, shape)
    assert "(1 x 16 CPUs + 0 GPUs; 1 x 4 CPUs + 2 GPUs)" in shape.describe()


def test_gpus_that_do_not_divide_among_the_nodes_are_refused():
    with pytest.raises(ConfigError, match="3 GPUs do not divide among 2 nodes"):
        ClusterShape.parse("gpus=3,cpus=8,nodes=2")
