"""Recipes: overrides reach any key; a bad key or value fails before work, naming the key and what is allowed."""

import pytest

from datagen.config import ConfigError, load_yaml
from pipelines import load_recipe


def test_demo_recipe_loads_with_overrides():
    r = load_recipe(
        "configs/demo.yaml", ["output.dir=/tmp/x", "input.max_side=256", "operators.canny.low=50", "seed=7"]
    )
    assert r.output.dir == "/tmp/x" and r.input.max_side == 256 and r.seed == 7
    assert r.operators["canny"].low == 50


def test_unknown_key_names_the_key_and_the_allowed_ones():
    with pytest.raises(ConfigError) as e:
        load_recipe("configs/demo.yaml", ["input.max_sid=3"])
    msg = str(e.value)
    assert "input.max_sid" in msg and "max_side" in msg and "allowed keys" in msg


def test_bad_value_names_key_value_and_allowed_values():
    with pytest.raises(ConfigError) as e:
        load_recipe("configs/demo.yaml", ["output.image_format=gif"])
    msg = str(e.value)
    assert "output.image_format='gif'" in msg and "'jpg'" in msg and "'png'" in msg


def test_bad_number_is_refused():
    with pytest.raises(ConfigError, match="input.min_side"):
        load_recipe("configs/demo.yaml", ["input.min_side=0"])


def test_operator_config_is_validated_by_the_operator_class():
    with pytest.raises(ConfigError, match="operators.canny"):
        load_recipe("configs/demo.yaml", ["operators.canny.low=300"])
    with pytest.raises(ConfigError, match="unknown operator; allowed"):
        load_recipe("configs/demo.yaml", ["operators.teleport.enabled=true"])


def test_yaml_tags_are_refused():
    with pytest.raises(ConfigError, match="tags are not allowed"):
        load_yaml("input: !!python/object/apply:os.system ['echo hi']")
    with pytest.raises(ConfigError, match="tags are not allowed"):
        load_yaml("x: !custom 3")


def test_missing_recipe_file():
    with pytest.raises(ConfigError, match="does not exist"):
        load_recipe("configs/nope.yaml")


def test_fingerprint_ignores_where_and_how_but_not_what():
    a = load_recipe("configs/demo.yaml", ["output.dir=/a", "runtime.executor=local"])
    b = load_recipe("configs/demo.yaml", ["output.dir=/b"])
    c = load_recipe("configs/demo.yaml", ["seed=3"])
    assert a.fingerprint() == b.fingerprint() != c.fingerprint()


# a GPU placement and its CPU twin for every execution field a config may have (datagen.config.EXECUTION_KEYS);
# `optional` (what a run does with a stage that cannot run) changes no key either
GPU = {"device": "cuda", "num_gpus": 1, "num_cpus": 4, "batch_size": 32, "concurrency": 2, "num_threads": 4}
GPU |= {"actors": 2, "tensor_parallel_size": 2, "gpu_memory_utilization": 0.5, "optional": True}
GPU |= {"max_failure_rate": 0.5, "max_consecutive_failures": 3}  # how a run fails is no more part of it than where
CPU = {"device": "cpu", "num_gpus": 0, "num_cpus": 1, "batch_size": 1, "concurrency": 1, "num_threads": 1}
CPU |= {"actors": 1, "tensor_parallel_size": 1, "gpu_memory_utilization": 0.9, "optional": False}
CPU |= {"max_failure_rate": 0.01, "max_consecutive_failures": 50}


def placed(path: str, placement: dict, *extra: str):
    """The recipe at `path` with every execution field of every operator (and of the sections' nested configs, such
    as model backends) set from `placement`: the recipe moved wholesale between GPU and CPU."""
    from datagen.config import EXECUTION_KEYS, Section

    def fields(prefix: str, model: Section) -> list[str]:
        out = []
        for name in type(model).model_fields:
            value = getattr(model, name)
            if name in EXECUTION_KEYS:
                out.append(f"{prefix}.{name}={placement[name]}")
            elif isinstance(value, Section):
                out += fields(f"{prefix}.{name}", value)
        return out

    base = load_recipe(path, list(extra))
    overrides = [o for name, cfg in base.operators.items() for o in fields(f"operators.{name}", cfg)]
    overrides += [o for name, cfg in base.sections.items() for o in fields(name, cfg)]
    assert overrides, "the recipe has no execution field to move"
    return load_recipe(path, [*extra, *overrides]), overrides


def test_fingerprint_leaves_out_placement():
    """Moving every stage between GPU and CPU (device, GPUs, batch sizes, pools) keeps the fingerprint, part of every
    sample key, so a resume after the move redoes nothing; a real parameter still changes it."""
    gpu, moved = placed("configs/demo.yaml", GPU)
    cpu, _ = placed("configs/demo.yaml", CPU)
    assert any(".num_gpus=" in o for o in moved) and any(".batch_size=" in o for o in moved)
    plain = load_recipe("configs/demo.yaml", [])
    assert gpu.fingerprint() == cpu.fingerprint() == plain.fingerprint()
    assert load_recipe("configs/demo.yaml", ["operators.canny.low=50"]).fingerprint() != plain.fingerprint()


def test_a_cpu_twin_makes_the_same_sample_keys(tmp_path, photo_dir):
    from datagen.shards.reader import read_index
    from pipelines import run

    def keys(placement: dict, out: str) -> list[str]:
        extra = [f"input.path={photo_dir}", f"output.dir={tmp_path / out}", "operators.pixel_scores.enabled=true"]
        recipe, _ = placed("tests/tiny_recipe.yaml", placement, *extra)
        run(recipe)
        return sorted(read_index(tmp_path / out).column("key").to_pylist())

    gpu = keys(GPU | {"device": "auto"}, "gpu")  # auto: the test machine need not have a GPU; the rest moves
    assert gpu and gpu == keys(CPU, "cpu")


def test_a_field_added_at_its_neutral_default_keeps_the_fingerprint_and_params():
    from datagen.config import Recipe, neutral_at_default
    from operators.scoring.nsfw import NsfwScore, NsfwScoreConfig

    r = Recipe()
    assert neutral_at_default(r.input) == {"draft_decode"}
    drafted = Recipe(input={"draft_decode": True})
    assert drafted.fingerprint() != r.fingerprint()
    assert "jpeg_round_trip" not in NsfwScore().params()
    assert NsfwScore(NsfwScoreConfig(jpeg_round_trip=False)).params()["jpeg_round_trip"] is False
