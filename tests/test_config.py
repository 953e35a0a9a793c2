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
