"""BlazePose on the real shipped .tflite files (fetched by `make install`, sha256-checked) and real photos: the
astronaut's joints land where a person would put them, a photo turned by 90 degrees gives the same joints turned
(the rotated region of interest), a photo without a person is skipped, and the operator draws the OpenPose skeleton."""

import numpy as np
import pytest
import skimage.data

from operators.conditions.base import SkipImage
from operators.conditions.pose import NO_PERSON, Pose, PoseConfig
from operators.conditions.pose_blazepose import BlazePose, ssd_anchors, to_coco

NOSE, L_EYE, R_EYE, L_SHOULDER, R_SHOULDER = 0, 1, 2, 5, 6


@pytest.fixture(scope="module")
def blazepose():
    return BlazePose("lite")


def test_anchor_grid_matches_the_detector():
    a = ssd_anchors()
    assert a.shape == (28 * 28 * 2 + 14 * 14 * 2 + 7 * 7 * 6, 2) == (2254, 2)
    assert np.allclose(a[0], [0.5 / 28, 0.5 / 28]) and np.allclose(a[-1], [6.5 / 7, 6.5 / 7])


def test_astronaut_joints(blazepose):
    img = skimage.data.astronaut()  # 512 x 512, face around x 200-260, y 70-170; shoulders near y 240
    people = blazepose(img)
    assert len(people) == 1
    k, s = to_coco(people)
    k, s = k[0], s[0]
    assert s[[NOSE, L_EYE, R_EYE, L_SHOULDER, R_SHOULDER]].min() > 0.9
    assert 190 < k[NOSE, 0] < 270 and 90 < k[NOSE, 1] < 170
    assert k[L_EYE, 0] > k[NOSE, 0] > k[R_EYE, 0]  # facing the camera: her left eye is on the image's right
    assert k[L_EYE, 1] < k[NOSE, 1]
    assert min(k[L_SHOULDER, 1], k[R_SHOULDER, 1]) > k[NOSE, 1] + 50
    assert k[L_SHOULDER, 0] - k[R_SHOULDER, 0] > 120  # shoulders wide apart, left on the right


def test_a_turned_photo_gives_the_turned_joints(blazepose):
    img = skimage.data.astronaut()
    k0, _ = to_coco(blazepose(img))
    turned = np.ascontiguousarray(np.rot90(img, k=-1))  # clockwise: (x, y) -> (H - 1 - y, x)
    k1, s1 = to_coco(blazepose(turned))
    assert len(k1) == 1
    expected = np.stack([img.shape[0] - 1 - k0[0, :, 1], k0[0, :, 0]], axis=1)
    head = [NOSE, L_EYE, R_EYE, L_SHOULDER, R_SHOULDER]
    err = np.linalg.norm(k1[0, head] - expected[head], axis=1)
    assert err.max() < 25, err


def test_no_person_is_skipped_and_a_person_is_drawn():
    op = Pose(PoseConfig(model="blazepose"))
    assert op.unavailable_reason() is None
    with pytest.raises(SkipImage, match=NO_PERSON):
        op.make_condition(skimage.data.coffee(), np.random.default_rng(0))
    img = skimage.data.astronaut()
    skeleton, info = op.make_condition(img, np.random.default_rng(0))
    assert info == {"people": 1} and skeleton.shape == img.shape and skeleton.dtype == np.uint8
    assert skeleton[60:180, 170:290].max() > 200  # the head's dots and limbs
    assert (skeleton.max(axis=2) == 0).mean() > 0.8  # the rest is black
