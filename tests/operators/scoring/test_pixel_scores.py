"""Pixel scores: our SSIM agrees with scikit-image's Gaussian SSIM, identical images score L1 0 and SSIM 1, and a
masked edit changes the inside of its mask only (L1 and SSIM split by the mask); a turn without input is skipped."""

import numpy as np
from skimage.metrics import structural_similarity

from datagen.batch import WorkBatch
from datagen.schema import Frame, Provenance, Sample, Turn
from datagen.testing import load_photo
from operators.scoring.pixel import PixelScores, luma, pixel_scores, ssim_map


def test_ssim_matches_scikit_image():
    a = load_photo("astronaut.png", 160)
    b = np.clip(a.astype(int) + np.random.default_rng(0).normal(0, 25, a.shape), 0, 255).astype(np.uint8)
    ours = ssim_map(luma(a), luma(b))
    _, ref = structural_similarity(
        luma(a), luma(b), gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255, full=True
    )
    inner = (slice(5, -5), slice(5, -5))  # borders differ by padding mode only
    assert np.abs(ours[inner] - ref[inner]).max() < 1e-3
    assert 0.2 < ours.mean() < 0.9


def test_identical_images_and_a_masked_edit():
    a = load_photo("coffee.png", 128)
    same = pixel_scores(a, a.copy(), None)
    assert same["pixel_l1"] == 0 and abs(same["pixel_ssim"] - 1) < 1e-6 and "mask_area" not in same
    mask = np.zeros(a.shape[:2], np.uint8)
    mask[20:60, 30:90] = 255
    edited = a.copy()
    edited[20:60, 30:90] = 255 - edited[20:60, 30:90]  # the edit happens inside the mask only
    s = pixel_scores(a, edited, mask)
    assert abs(s["mask_area"] - mask.astype(bool).mean()) < 1e-6
    assert s["pixel_l1_outside"] == 0 and s["pixel_l1_inside"] > 0.2
    assert s["pixel_ssim_outside"] > 0.9 > s["pixel_ssim_inside"]
    assert 0 < s["pixel_l1"] < s["pixel_l1_inside"]


def _sample(inputs, target, task="Image Restoration", direction="generation") -> Sample:
    turn = Turn(task=task, direction=direction, inputs=inputs, target=target, instruction="x")
    return Sample(turns=[turn], provenance=Provenance(["u"], ["id"], "test", "1"))


def test_operator_scores_what_a_sample_has_and_keeps_every_sample():
    a, b = load_photo("astronaut.png", 96), load_photo("chelsea.png", 80)  # a pair of photos of different sizes
    pair = _sample([Frame(a)], Frame(b))
    t2i = _sample([], Frame(b), task="Text-to-Image", direction="text")
    batch = WorkBatch("img-00000", {}, 0, "r", samples=[pair, t2i])
    out = PixelScores()(batch)
    assert len(out.samples) == 2
    assert set(pair.provenance.scores) == {"pixel_l1", "pixel_ssim"}  # no mask: no inside/outside, no area
    assert pair.provenance.scores["pixel_ssim"] < 0.9 and pair.provenance.scores["pixel_l1"] > 0.02
    assert t2i.provenance.scores == {}
    assert out.stats["pixel_scores"].skipped == {"not scored: no input image": 1}


def test_a_scorer_failing_on_one_sample_keeps_it_unscored_and_counts_why():
    class Picky(PixelScores):
        def score(self, views):
            if any(v.sample.provenance.sources == ["bad"] for v in views):
                raise ValueError("cannot read this one")
            return super().score(views)

    a = load_photo("astronaut.png", 64)
    good = [_sample([Frame(a)], Frame(a[:, ::-1].copy())) for _ in range(2)]
    bad = _sample([Frame(a)], Frame(a.copy()))
    bad.provenance.sources = ["bad"]
    batch = Picky()(WorkBatch("img-00000", {}, 0, "r", samples=[good[0], bad, good[1]]))
    assert batch.samples == [good[0], bad, good[1]] and batch.quarantine == []
    assert all("pixel_ssim" in s.provenance.scores for s in good) and bad.provenance.scores == {}
    assert batch.stats["pixel_scores"].skipped == {"score_error:ValueError": 1}
