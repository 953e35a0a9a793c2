"""The one placement block: its defaults mean one thing everywhere, and none of its keys enters a sample key."""

from datagen.config import EXECUTION_KEYS
from datagen.placement import Batching, Placement, resources


def test_placement_fields_stay_out_of_sample_keys():
    assert set(Placement.model_fields) <= EXECUTION_KEYS


def test_default_takes_a_gpu_only_where_the_cluster_has_one():
    r = resources(Placement())
    assert (r.num_gpus, r.gpus_if_available, r.num_cpus, r.batch_size, r.concurrency) == (0.0, 1.0, 1.0, 16, None)


def test_cpu_zero_or_a_cpu_only_implementation_never_asks_for_a_gpu():
    for r in (resources(Placement(device="cpu", num_gpus=1)), resources(Placement(num_gpus=0))):
        assert (r.num_gpus, r.gpus_if_available) == (0.0, 0.0)
    r = resources(Placement(num_gpus=0.25), uses_gpu=False)
    assert (r.num_gpus, r.gpus_if_available) == (0.0, 0.0)


def test_a_set_share_is_the_recipes():
    r = resources(Placement(num_gpus=0.25, batch_size=4, concurrency=3, num_cpus=2))
    assert (r.num_gpus, r.gpus_if_available, r.batch_size, r.concurrency, r.num_cpus) == (0.25, 0.0, 4, 3, 2.0)


def test_batching_alone_is_cpu_work():
    r = resources(Batching(batch_size=64))
    assert (r.num_gpus, r.gpus_if_available, r.batch_size) == (0.0, 0.0, 64)
