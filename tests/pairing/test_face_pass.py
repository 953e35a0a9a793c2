"""The face pass with insightface's real loaders: a tiny model pack (SCRFD-layout detector, ArcFace-layout
recognizer, both ONNX) is made here and loaded by FaceAnalysis as users load buffalo_l. Only images with exactly
one face are linked, and only inside ACE's open band (0.8, 0.9): not another identity, not the same photo."""

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from datagen.batch import SourceImage, WorkBatch
from datagen.pairing.config import Band, FacialEditingRoute, PairingConfig, Pass1Config
from datagen.pairing.features import features_table
from datagen.pairing.group import ABOVE_BAND, GroupTask, run_group
from datagen.pairing.pass2 import NOT_ONE_FACE, GroupFeatures, link_scores
from datagen.pairing.tiny_models import bright_cells, make_tiny_face_pack
from operators.features.classical import ClassicalFeatures
from operators.features.dhash import ImageDHash
from operators.features.faces import FaceFeatures, FaceFeaturesConfig
from operators.features.object_keypoints import ObjectKeypoints

ACE_BAND = Band(low=0.8, high=0.9, include_low=False)


@pytest.fixture(scope="module")
def faces(tmp_path_factory):
    pack = make_tiny_face_pack(tmp_path_factory.mktemp("buffalo_tiny"))
    op = FaceFeatures(FaceFeaturesConfig(model_pack=str(pack), min_face=8))
    op.setup()
    return op


def test_model_pack_loads_through_face_analysis(faces):
    from insightface.model_zoo import SCRFD, ArcFaceONNX

    assert isinstance(faces._app.models["detection"], SCRFD)
    assert isinstance(faces._app.models["recognition"], ArcFaceONNX)
    assert faces.unavailable_reason() is None and faces.stateful


def test_face_counts_and_embeddings(faces):
    out = faces.compute([bright_cells([]), bright_cells([(1, 1)]), bright_cells([(1, 1), (2, 3)])])
    assert [o.face_count for o in out] == [0, 1, 2]
    assert out[0].face_embedding is None and out[2].face_embedding is None
    e = out[1].face_embedding
    assert abs(np.linalg.norm(e) - 1) < 1e-5


def test_without_a_model_pack_the_face_route_is_plainly_off(tmp_path):
    assert "model_pack is not set" in FaceFeatures().unavailable_reason()
    assert "no such folder" in FaceFeatures(FaceFeaturesConfig(model_pack=str(tmp_path / "nope"))).unavailable_reason()


def _same_identity_in_band(faces) -> float:
    """A variation of identity 0 whose ArcFace similarity to identity 0 lies inside ACE's band."""
    ref = faces.compute([bright_cells([(1, 1)])])[0].face_embedding
    for v in np.arange(0.3, 0.95, 0.05):
        e = faces.compute([bright_cells([(1, 1)], variation=float(v))])[0].face_embedding
        if 0.82 < float(e @ ref) < 0.88:
            return float(v)
    raise AssertionError("no variation lands in the band")


def test_two_pass_face_route_keeps_one_identity_inside_the_band(faces, tmp_path):
    v = _same_identity_in_band(faces)
    images = {
        "a.png": bright_cells([(1, 1)]),  # identity 0
        "b.png": bright_cells([(2, 1)], variation=v),  # identity 0, another photo: inside the band
        "c.png": bright_cells([(1, 2)]),  # identity 0 again, the same face: similarity 1, above the band
        "d.png": bright_cells([(1, 1)], identity=7),  # another identity: below the band
        "e.png": bright_cells([(1, 1), (2, 3)]),  # two faces
        "f.png": bright_cells([]),  # no face
    }
    batch = WorkBatch("feat-00000", {}, 0, "r", entries=[{"uri": u} for u in images])
    batch.items = [SourceImage(u, f"id-{u}", im) for u, im in images.items()]
    for op in (ClassicalFeatures(), faces, ObjectKeypoints(), ImageDHash()):
        batch = op(batch)
    table = features_table(batch)
    feats = GroupFeatures(table)
    i, j = np.array([0, 0, 0, 0, 0]), np.array([1, 2, 3, 4, 5])
    scores, skipped = link_scores("face", feats, i, j, np.zeros(5))
    assert 0.8 < scores[0] < 0.9 and scores[1] > 0.99 and scores[2] < 0.8
    assert np.isnan(scores[3]) and np.isnan(scores[4]) and skipped == {NOT_ONE_FACE: 2}

    bucket = tmp_path / "g-00000" / "feat-00000.parquet"
    bucket.parent.mkdir()
    pq.write_table(table.append_column("cluster", pa.array(np.zeros(len(images), np.int32))), bucket)
    cfg = PairingConfig(enabled=True, pass1=Pass1Config(band=Band(low=-1.0, high=2.0)))
    cfg.clean.min_side = 64
    task = GroupTask(
        0,
        [str(bucket)],
        str(tmp_path / "pairs.parquet"),
        Band(low=-1.0, high=2.0),
        None,
        cfg,
        [("facial_editing", FacialEditingRoute(enabled=True, band=ACE_BAND))],
        seed=0,
    )
    stats = run_group(task)
    pairs = pq.read_table(tmp_path / "pairs.parquet").to_pylist()
    # a~b and c~b are links in the band; a~c shares the set but is the same face (above the band): not a pair
    assert sorted(sorted((p["uri_a"], p["uri_b"])) for p in pairs) == [["a.png", "b.png"], ["b.png", "c.png"]]
    assert all(p["task"] == "Facial Editing" and 0.8 < p["score_pass2"] < 0.9 and p["linked"] for p in pairs)
    route = stats["routes"]["facial_editing"]
    assert route["links_kept"] == 2 and route["sets"] == 1 and route["largest_set"] == 3
    assert route["skipped"][NOT_ONE_FACE] > 0 and route["skipped"][ABOVE_BAND] == 1
