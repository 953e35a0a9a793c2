"""Task mix: the recipe's proportions are met inside a partition, over-supplied tasks are cut with a seeded
choice, and the run reports achieved against target."""

import pytest

from datagen.config import ConfigError
from pipelines import load_recipe, run


def _recipe(tmp_path, photo_dir, *extra):
    return load_recipe(
        "tests/tiny_recipe.yaml",
        [
            f"input.path={photo_dir}",
            f"output.dir={tmp_path / 'out'}",
            "runtime.executor=local",
            "runtime.progress=false",
            "input.max_side=96",
            "input.images_per_partition=6",
            "operators.grayscale.enabled=true",
            "operators.canny.enabled=true",
            *extra,
        ],
    )


def test_mix_meets_target_shares(tmp_path, photo_dir):
    r = _recipe(
        tmp_path,
        photo_dir,
        "operators.task_mix.weights={Grayscale: 3, Edge map Extraction: 1}",
        "operators.task_mix.others=drop",
    )
    summary = run(r)
    tasks = summary["tasks"]
    assert set(tasks) == {"Grayscale", "Edge map Extraction"}
    assert tasks["Grayscale"] == 3 * tasks["Edge map Extraction"]
    mix = summary["mix"]
    assert mix["Grayscale"]["target"] == pytest.approx(0.75)
    assert mix["Grayscale"]["achieved"] == pytest.approx(0.75)


def test_mix_is_deterministic(tmp_path, photo_dir):
    args = ["operators.task_mix.weights={Grayscale: 1, Edge map Extraction: 1, Image Colorization: 2}"]
    a = run(_recipe(tmp_path / "a", photo_dir, *args))
    b = run(_recipe(tmp_path / "b", photo_dir, *args))
    assert a["tasks"] == b["tasks"]


def test_unknown_mix_key_is_a_config_error(tmp_path, photo_dir):
    with pytest.raises(ConfigError, match="unknown mix keys"):
        _recipe(tmp_path, photo_dir, "operators.task_mix.weights={Teleport: 1}")
