"""Embedding scores through the real loaders on tiny models of the real architectures made here: open_clip CLIP
(local-dir:, with CLIP's BPE tokenizer) for text-image, image-image and directional similarity plus the LAION
aesthetic MLP on its image embedding, and a transformers DINOv2 for image-image. Values are the cosines the models
give (checked against a direct computation), each score only where the turn has what it needs."""

import numpy as np
import pytest

from datagen.batch import WorkBatch
from datagen.schema import ROLE_CONDITION, Frame, Provenance, Sample, Turn
from datagen.testing import load_photo
from operators.scoring.clip import ClipScores, ClipScoresConfig
from operators.scoring.dino import DinoScore, DinoScoreConfig


def _samples():
    a, b = load_photo("astronaut.png", 96), load_photo("chelsea.png", 96)
    prov = lambda: Provenance(["u"], ["i"], "t", "1")  # noqa: E731
    edit = Sample(
        [
            Turn(
                "General Editing", "edit", [Frame(a)], Frame(b), instruction="Turn {image} into a cat.", caption="a cat"
            )
        ],
        prov(),
    )
    t2i = Sample([Turn("Text-to-Image", "text", [], Frame(b), instruction="a cat on a rug")], prov())
    analysis = Sample(
        [
            Turn(
                "Grayscale",
                "analysis",
                [Frame(a)],
                Frame(b, role=ROLE_CONDITION),
                instruction="Gray {image}.",
                caption="an astronaut",
            )
        ],
        prov(),
    )
    return [edit, t2i, analysis]


def test_clip_scores_and_aesthetic(tiny_clip):
    op = ClipScores(ClipScoresConfig(pretrained=tiny_clip["pretrained"], aesthetic_checkpoint=tiny_clip["aesthetic"]))
    assert op.unavailable_reason() is None
    op.setup()
    edit, t2i, analysis = samples = _samples()
    batch = op(WorkBatch("img-00000", {}, 0, "r", samples=samples))
    assert len(batch.samples) == 3
    a, b = edit.current.inputs[0].image, edit.current.target.image
    ea, eb = op.images([a, b])
    ta, tp = op.texts(["a cat", "Turn {image} into a cat."])
    s = edit.provenance.scores
    assert s["clip_image"] == pytest.approx(float(ea @ eb), abs=1e-5)
    assert s["clip_text"] == pytest.approx(float(eb @ ta), abs=1e-5)
    d = eb - ea
    assert s["clip_direction"] == pytest.approx(float(d @ tp / np.linalg.norm(d)), abs=1e-5)
    assert s["aesthetic"] == pytest.approx(float(op.aesthetic(eb[None])[0]), abs=1e-5)
    # text-to-image: the prompt is the caption; no input, so no image-image or direction
    assert set(t2i.provenance.scores) == {"clip_text", "aesthetic"}
    # a condition map target: no caption match, no aesthetic, no direction; image-image still says how far the map is
    assert set(analysis.provenance.scores) == {"clip_image"}
    assert "clip_scores.pretrained is not set" in ClipScores().unavailable_reason()


def test_aesthetic_checkpoint_of_another_model_is_refused(tiny_clip, tmp_path):
    import torch

    bad = tmp_path / "other.pth"
    torch.save({"fc.weight": torch.zeros(2, 2)}, bad)
    op = ClipScores(ClipScoresConfig(pretrained=tiny_clip["pretrained"], aesthetic_checkpoint=str(bad)))
    with pytest.raises(ValueError, match="not the LAION aesthetic MLP"):
        op.setup()


def test_dinov2_image_image(tiny_dinov2):
    op = DinoScore(DinoScoreConfig(checkpoint=tiny_dinov2))
    op.setup()
    assert type(op._model).__name__ == "Dinov2Model"
    edit, t2i, analysis = samples = _samples()
    batch = op(WorkBatch("img-00000", {}, 0, "r", samples=samples))
    ea, eb = op.embed([edit.current.inputs[0].image, edit.current.target.image])
    assert edit.provenance.scores["dino_image"] == pytest.approx(float(ea @ eb), abs=1e-5)
    assert -1 <= analysis.provenance.scores["dino_image"] <= 1
    assert t2i.provenance.scores == {} and batch.stats["dino_score"].skipped == {"not scored: no input image": 1}
    assert "dino_score.checkpoint is not set" in DinoScore().unavailable_reason()


def _recurring():
    """Six samples in chunks of two; the astronaut and the cat recur in every chunk."""
    a, b = load_photo("astronaut.png", 96), load_photo("chelsea.png", 96)
    return [
        Sample(
            [Turn("General Editing", "edit", [Frame(a)], Frame(x), instruction=f"Edit {i}.", caption="a cat")],
            Provenance(["u"], [f"i{i}"], "t", "1"),
        )
        for i, x in enumerate([b, a.copy(), b, a.copy(), b, a.copy()])
    ]


@pytest.mark.parametrize("which", ["clip", "dino"])
def test_a_photo_is_embedded_once_per_partition(which, tiny_clip, tiny_dinov2, monkeypatch):
    if which == "clip":
        op, method = ClipScores(ClipScoresConfig(pretrained=tiny_clip["pretrained"], batch_size=2)), "images"
    else:
        op, method = DinoScore(DinoScoreConfig(checkpoint=tiny_dinov2, batch_size=2)), "embed"
    op.setup()
    seen = []
    real = getattr(op, method)
    monkeypatch.setattr(op, method, lambda images: (seen.extend(images), real(images))[1])
    samples = _recurring()
    op(WorkBatch("img-00000", {}, 0, "r", samples=samples))
    assert len(seen) == 2  # equal pixels are one photo, whichever chunk or array they come in
    key = "clip_image" if which == "clip" else "dino_image"
    assert len({round(s.provenance.scores[key], 6) for s in samples}) == 2 and op.partition_memo is None
    op(WorkBatch("img-00001", {}, 0, "r", samples=samples[:1]))  # the next partition starts from nothing
    assert len(seen) == 4


def test_device_preprocessing_matches_the_cpu_path(tiny_clip, tiny_dinov2):
    images = [load_photo("astronaut.png", 96), load_photo("coffee.png", 80)]
    for make in (
        lambda dev: ClipScores(ClipScoresConfig(pretrained=tiny_clip["pretrained"], preprocess_on_device=dev)),
        lambda dev: DinoScore(DinoScoreConfig(checkpoint=tiny_dinov2, preprocess_on_device=dev)),
    ):
        cpu, dev = make(False), make(True)
        cpu.setup()
        dev.setup()
        assert cpu._encoder is None and dev._encoder is not None
        embed = (lambda op: op.images(images)) if isinstance(cpu, ClipScores) else (lambda op: op.embed(images))
        a, b = embed(cpu), embed(dev)
        assert ((a * b).sum(axis=1) > 0.999).all()
