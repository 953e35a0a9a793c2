"""Object consistency: geometric verification of ORB matches says the stereo motorcycle views and a crop share an
object, while textures that look alike (grass, gravel) and unrelated photos share none."""

import numpy as np

from datagen.pairing.object_score import object_consistency, orb_keypoints, pack, unpack
from datagen.testing import load_photo


def kp(name, side=320, crop=None):
    img = load_photo(name, side)
    if crop:
        h, w = img.shape[:2]
        img = img[int(crop[1] * h) : int(crop[3] * h), int(crop[0] * w) : int(crop[2] * w)]
    return orb_keypoints(img)


def test_same_object_scores_and_lookalikes_do_not():
    left, right = kp("motorcycle_left.png"), kp("motorcycle_right.png")
    stereo, inliers = object_consistency(left, right)
    assert 0.05 < stereo < 1.0 and inliers >= 12
    crop, _ = object_consistency(kp("chelsea.png"), kp("chelsea.png", crop=(0.1, 0.1, 0.8, 0.9)))
    assert crop > 0.05
    assert object_consistency(kp("grass.png"), kp("gravel.png"))[0] == 0.0
    assert object_consistency(left, kp("coffee.png"))[0] == 0.0


def test_score_is_deterministic_and_survives_packing():
    a, b = kp("motorcycle_left.png"), kp("motorcycle_right.png")
    first = object_consistency(a, b)
    assert object_consistency(unpack(*pack(*a)), unpack(*pack(*b))) == first
    assert object_consistency(a, b) == first


def test_images_without_features_score_zero():
    flat = orb_keypoints(np.full((128, 128, 3), 127, np.uint8))
    assert len(flat[0]) == 0
    assert object_consistency(flat, kp("coffee.png")) == (0.0, 0)
    assert unpack(b"", b"")[0].shape == (0, 2)


def test_a_shape_and_its_template_agree_by_edges_where_orb_finds_nothing():
    """The labelled set's horse silhouette and its outline: no ORB match survives, the edge maps coincide; two
    unrelated photos' edge maps do not."""
    import cv2

    from datagen.pairing.object_score import (
        EDGE_MIN_ALIGNMENT,
        edge_alignment,
        edge_map,
        object_consistency,
        orb_keypoints,
        shape_fallback,
        unpack_edges,
    )
    from datagen.pairing.quality import LABELLED_SET

    def load(name):
        return cv2.cvtColor(cv2.imread(str(LABELLED_SET / name)), cv2.COLOR_BGR2RGB)

    shape, template = load("shape_horse.jpg"), load("shape_horse_template.jpg")
    assert object_consistency(orb_keypoints(shape), orb_keypoints(template))[0] == 0.0
    edges = {
        n: unpack_edges(edge_map(load(n)))
        for n in ("shape_horse.jpg", "shape_horse_template.jpg", "unrelated_camera.jpg", "logo_mpl_0.jpg")
    }
    same = edge_alignment(edges["shape_horse.jpg"], edges["shape_horse_template.jpg"])
    assert same >= EDGE_MIN_ALIGNMENT and 0 < shape_fallback(same) < 0.95
    for other in ("unrelated_camera.jpg", "logo_mpl_0.jpg"):
        assert edge_alignment(edges["shape_horse.jpg"], edges[other]) < EDGE_MIN_ALIGNMENT
        assert shape_fallback(edge_alignment(edges["shape_horse.jpg"], edges[other])) == 0.0
