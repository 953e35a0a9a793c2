"""Pose condition: a tiny YOLOX-style end2end detector and a tiny RTMPose-style SimCC model exported to ONNX here, with
rtmlib's inputs and outputs, loaded by rtmlib from local paths. The keypoints come out where the pose model puts
them and are drawn as OpenPose's skeleton; photos without a person are skipped with the reason counted.
Without checkpoints the operator is plainly off."""

from __future__ import annotations

import numpy as np
import pytest

from datagen.batch import SourceImage, WorkBatch
from operators.conditions.openpose_draw import COLORS, LIMBS, coco_to_openpose, draw_bodies
from operators.conditions.pose import NO_PERSON, Pose, PoseConfig
from pipelines.rehearsal.tiny_vision import KEYPOINTS, POSE_H, POSE_W, TinyDetector, TinyRTMPose, export_onnx
from tests.conftest import load_photo

SIDE = 128  # test photos are SIDE x SIDE; the detector runs at that size too, so its boxes need no rescaling


@pytest.fixture(scope="module")
def onnx_models(tmp_path_factory):
    d = tmp_path_factory.mktemp("rtmlib")
    pose = export_onnx(TinyRTMPose(), (1, 3, POSE_H, POSE_W), ["simcc_x", "simcc_y"], d / "rtmpose_tiny.onnx")
    person = export_onnx(TinyDetector(0.9), (1, 3, SIDE, SIDE), ["dets", "labels"], d / "yolox_person.onnx")
    nobody = export_onnx(TinyDetector(0.1), (1, 3, SIDE, SIDE), ["dets", "labels"], d / "yolox_nobody.onnx")
    return pose, person, nobody


def _op(pose, det):
    op = Pose(
        PoseConfig(
            checkpoint=pose,
            det_checkpoint=det,
            pose_input_size=(POSE_W, POSE_H),
            det_input_size=(SIDE, SIDE),
            device="cpu",
        )
    )
    op.setup()
    return op


def _batch(*images, seed=0):
    return WorkBatch(
        "img-00000", {}, seed, "r", items=[SourceImage(f"mem://{i}", f"id{i}", im) for i, im in enumerate(images)]
    )


def test_person_is_drawn_as_openpose_skeleton(onnx_models):
    pose, person, _ = onnx_models
    op = _op(pose, person)
    assert "RTMPose" in op.describe() and op.stateful
    photo = load_photo("astronaut.png", SIDE)
    batch = op(_batch(photo))
    s = batch.samples[0]
    m = s.current.target.image
    assert m.shape == photo.shape and m.dtype == np.uint8 and s.provenance.params["people"] == 1
    assert [x.task for x in batch.samples] == ["Pose Estimation", "Pose-guided Generation"]
    # rtmlib maps a pose-input pixel to the photo through the padded box: x*120/48 + 4, y*160/64 - 16
    coco = np.array([[(x * 2.5 + 4, y * 2.5 - 16) for x, y in KEYPOINTS]], np.float32)
    k18, _ = coco_to_openpose(coco, np.ones((1, 17), np.float32))
    for j, (x, y) in enumerate(k18[0]):
        assert tuple(m[int(y), int(x)]) == COLORS[j], f"keypoint {j}"
    assert (m.sum(axis=2) > 0).mean() < 0.2  # a skeleton on black, not a filled image


def test_no_person_is_skipped_with_reason(onnx_models):
    pose, _, nobody = onnx_models
    op = _op(pose, nobody)
    batch = op(_batch(load_photo("coffee.png", SIDE), load_photo("brick.png", SIDE)))
    assert batch.samples == [] and batch.stats["pose"].skipped == {NO_PERSON: 2}


def test_without_checkpoints_pose_is_off(tmp_path):
    assert "operators.pose.checkpoint and operators.pose.det_checkpoint" in Pose().unavailable_reason()
    only_pose = Pose(PoseConfig(checkpoint="/models/rtmpose.onnx"))
    assert "det_checkpoint" in only_pose.unavailable_reason()
    missing = Pose(PoseConfig(checkpoint=str(tmp_path / "a.onnx"), det_checkpoint=str(tmp_path / "b.onnx")))
    assert missing.unavailable_reason() is None
    with pytest.raises(FileNotFoundError, match="a.onnx"):
        missing.setup()  # never handed to rtmlib, which would try to download a missing path


def test_drawing_skips_low_scores():
    k = np.zeros((1, 18, 2), np.float32)
    k[0, :, 0], k[0, :, 1] = np.arange(18) * 6 + 10, 60
    scores = np.full((1, 18), 0.9, np.float32)
    scores[0, 4] = 0.1
    m = draw_bodies(128, 128, k, scores, 0.3)
    assert tuple(m[60, 10]) == COLORS[0] and (m[60, int(k[0, 4, 0])] != COLORS[4]).any()
    assert len(LIMBS) == 17 and len(COLORS) == 18
