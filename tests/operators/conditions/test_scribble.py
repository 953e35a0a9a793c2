"""Scribble condition: XDoG tuned to the anime_style look (denser lines and tone fills) by default, or the
informative-drawings anime_style generator from a checkpoint (a tiny one made here)."""

from __future__ import annotations

import numpy as np
import torch

from datagen.batch import SourceImage, WorkBatch
from operators.conditions.contour import Contour
from operators.conditions.informative_drawings import build_generator
from operators.conditions.scribble import Scribble, ScribbleConfig
from pipelines import load_recipe
from tests.conftest import load_photo


def _batch(*images, seed=0):
    return WorkBatch(
        "img-00000", {}, seed, "r", items=[SourceImage(f"mem://{i}", f"id{i}", im) for i, im in enumerate(images)]
    )


def test_classical_is_denser_than_contour():
    photo = load_photo("astronaut.png", 128)
    scribble = Scribble()(_batch(photo)).samples[0].current.target.image
    contour = Contour()(_batch(photo)).samples[0].current.target.image
    assert scribble.shape == photo.shape and scribble.dtype == np.uint8
    # the anime look keeps more detail and fills dark areas: more ink than the contour look
    assert (scribble < 128).mean() > (contour < 128).mean() > 0.01
    assert not np.array_equal(scribble, contour)


def test_overriding_one_xdog_key_keeps_the_scribble_defaults():
    recipe = load_recipe(None, ["operators.scribble.xdog.sigma=1.3"])
    x = recipe.operators["scribble"].xdog
    assert x.sigma == 1.3 and x.epsilon == ScribbleConfig().xdog.epsilon and x.phi == ScribbleConfig().xdog.phi


def test_model_backend(tmp_path):
    torch.manual_seed(2)
    path = tmp_path / "anime_style.pth"
    torch.save(build_generator(ngf=4, n_residual_blocks=3).state_dict(), path)
    op = Scribble(ScribbleConfig(backend="model", checkpoint=str(path), device="cpu"))
    assert "anime_style" in op.describe()
    op.setup()
    photos = [load_photo("coffee.png", 72), load_photo("coffee.png", 72)]
    batch = op(_batch(*photos))
    a, b = batch.samples[0].current.target.image, batch.samples[2].current.target.image
    assert a.shape == photos[0].shape and np.array_equal(a, b)  # same photo, same drawing, even batched
    assert [s.task for s in batch.samples[:2]] == ["Scribble Extraction", "Scribble-guided Generation"]
