"""The typed train recipe: shipped recipes validate, a bad key or value fails naming it, and a checkpoint of
another model is refused by name."""

import pytest

from datagen.config import ConfigError
from datagen.trainer.config import load_train_recipe, locked_differences


@pytest.mark.parametrize("path", ["configs/train_tiny.yaml", "configs/train_ace_0.6b.yaml"])
def test_shipped_recipes_validate(path):
    r = load_train_recipe(path)
    assert r.trainer.max_steps >= 1 and r.data.side_multiple == 16


def test_overrides_and_errors_name_the_key():
    r = load_train_recipe("configs/train_tiny.yaml", ["trainer.max_steps=80", "data.path=/x"])
    assert r.trainer.max_steps == 80 and r.data.path == "/x"
    with pytest.raises(ConfigError, match=r"trainer\.max_stepz: unknown key"):
        load_train_recipe("configs/train_tiny.yaml", ["trainer.max_stepz=80"])
    with pytest.raises(ConfigError, match=r"loss\.objective='velocity'"):
        load_train_recipe("configs/train_tiny.yaml", ["loss.objective=velocity"])


def test_locked_differences():
    a = load_train_recipe("configs/train_tiny.yaml")
    b = load_train_recipe("configs/train_tiny.yaml", ["trainer.max_steps=5", "model.depth=3"])
    diffs = locked_differences(a.to_json(), b)
    assert diffs == ["model.depth: checkpoint None, now 3"]
