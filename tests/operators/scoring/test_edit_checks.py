"""The objective edit checks on masked edits, through the embedded default's own stages (pixel_scores, then the quality
filter, no model): an edit that changed nothing inside its mask is dropped as no_change, one that repainted the whole
photo as outside_change, one of another size as size_changed, while a proper edit and a layer's alpha pass; every
dropped sample is kept among the batch's rejects with all its reasons, the funnel's first. DINOv2 on the outside region
tells a kept outside from a repainted one."""

import cv2
import numpy as np
import pytest

from datagen.batch import WorkBatch
from datagen.config import ConfigError
from datagen.runtime import run_stage
from datagen.schema import Frame, Provenance, Sample, Turn
from datagen.testing import load_photo
from operators.scoring.pixel import PixelScores
from operators.scoring.quality_filter import QualityFilter, QualityFilterConfig
from pipelines import load_recipe


def _edit(image, target, mask, task="Inpainting", source="a") -> Sample:
    turn = Turn(task, "edit", [Frame(image, mask=mask)], Frame(target), f"edit {source}")
    return Sample([turn], Provenance([source], [source], "test", "1"))


def _photo_and_mask():
    photo = load_photo("coffee.png", 128)
    mask = np.zeros(photo.shape[:2], np.uint8)
    mask[30:80, 40:100] = 255
    return photo, mask


def _scored(samples, **filter_config):
    batch = WorkBatch("img-00000", {}, 0, "r", samples=samples)
    batch = run_stage(PixelScores(), batch)
    return run_stage(QualityFilter(QualityFilterConfig(**filter_config)), batch)


def test_no_change_and_a_repainted_photo_are_dropped_by_their_rules_and_kept_as_rejects():
    photo, mask = _photo_and_mask()
    good = photo.copy()
    good[mask > 0] = 255 - good[mask > 0]  # changes the inside only
    repainted = cv2.stylization(photo, sigma_s=60, sigma_r=0.45)  # a whole-photo filter: the outside changes too
    resized = cv2.resize(good, (100, 90))
    filled = photo.copy()
    filled[mask == 0] = 255 - filled[mask == 0]
    samples = {
        "good": _edit(photo, good, mask, source="good"),
        "same": _edit(photo, photo.copy(), mask, source="same"),
        "repainted": _edit(photo, repainted, mask, source="repainted"),
        "resized": _edit(photo, resized, mask, source="resized"),
        # Layer Fusion's input mask is the layer's alpha: its inside is kept and its outside filled, as it should be
        "layer": _edit(photo, filled, mask, task="Layer Fusion", source="layer"),
    }
    batch = _scored(list(samples.values()))
    assert {s.provenance.sources[0] for s in batch.samples} == {"good", "layer"}
    rejects = {s.provenance.sources[0]: s for s in batch.rejects}
    assert set(rejects) == {"same", "repainted", "resized"}
    for s in rejects.values():
        assert s.rejected.stage == "quality_filter"
        # every score stays on the reject, beside its reasons
        assert {"pixel_l1_inside", "pixel_l1_outside", "pixel_ssim_outside"} <= set(s.provenance.scores)
    assert rejects["same"].rejected.reason == "no_change"
    # nothing changed at all: the '*' default on the whole image fails too, listed after the edit check
    assert rejects["same"].rejected.reasons == ["no_change: pixel_l1_inside<0.01", "pixel_l1<0.001"]
    assert rejects["repainted"].rejected.reason == "outside_change"
    assert rejects["repainted"].provenance.scores["pixel_l1_outside"] > 0.05
    assert rejects["resized"].rejected.reasons[0] == "size_changed: 128x85 -> 100x90"
    good_scores = samples["good"].provenance.scores
    assert good_scores["pixel_l1_outside"] == 0 and good_scores["pixel_ssim_outside"] == pytest.approx(1.0)
    stats = batch.stats["quality_filter"].skipped
    assert stats["dropped samples"] == 3 and stats["dropped: no_change: pixel_l1_inside<0.01"] == 1


def test_edit_checks_follow_the_recipe():
    photo, mask = _photo_and_mask()
    faint = photo.copy()
    faint[mask > 0] = np.clip(faint[mask > 0].astype(int) + 4, 0, 255).astype(np.uint8)  # 4 grey levels inside
    # off: the faint edit ships; a higher bar: still no_change
    assert len(_scored([_edit(photo, faint, mask)], edit_checks={"no_change": None}).samples) == 1
    batch = _scored([_edit(photo, faint, mask)], edit_checks={"no_change": 0.05})
    assert [s.rejected.reason for s in batch.rejects] == ["no_change"]
    with pytest.raises(ConfigError, match=r"quality_filter\.edit_checks\.skip: unknown \['Teleport'\]; allowed"):
        load_recipe("tests/tiny_recipe.yaml", ["operators.quality_filter={edit_checks: {skip: [Teleport]}}"])
    with pytest.raises(ConfigError, match="no_change"):
        load_recipe("tests/tiny_recipe.yaml", ["operators.quality_filter={edit_checks: {no_change: 2}}"])


def test_a_rule_that_raises_on_one_sample_rejects_and_quarantines_it():
    photo, mask = _photo_and_mask()
    good = photo.copy()
    good[mask > 0] = 0

    class Brittle(QualityFilter):
        def process(self, batch):
            if any(s.provenance.sources == ["bad"] for s in batch.samples):
                raise ValueError("cannot judge this one")
            return super().process(batch)

    batch = WorkBatch(
        "img-00000", {}, 0, "r", samples=[_edit(photo, good, mask), _edit(photo, good, mask, source="bad")]
    )
    batch = run_stage(Brittle(), run_stage(PixelScores(), batch))
    assert [s.provenance.sources for s in batch.samples] == [["a"]]
    assert [s.rejected.reason for s in batch.rejects] == ["operator_error"]
    assert [q.uri for q in batch.quarantine] == ["bad"]
    assert batch.made == {"Inpainting": 2}


def test_dinov2_outside_the_mask(tiny_dinov2):
    from operators.scoring.dino import DinoScore, DinoScoreConfig

    photo, mask = _photo_and_mask()
    inside_only = photo.copy()
    inside_only[mask > 0] = 0
    repainted = cv2.stylization(photo, sigma_s=60, sigma_r=0.45)
    kept, changed = _edit(photo, inside_only, mask), _edit(photo, repainted, mask)
    unmasked = _edit(photo, repainted, None)
    DinoScore(DinoScoreConfig(checkpoint=tiny_dinov2))(
        WorkBatch("img-00000", {}, 0, "r", samples=[kept, changed, unmasked])
    )
    assert kept.provenance.scores["dino_outside"] == pytest.approx(1.0, abs=1e-5)  # the outside is the same
    assert changed.provenance.scores["dino_outside"] < 1 - 1e-3
    assert "dino_outside" not in unmasked.provenance.scores and "dino_image" in unmasked.provenance.scores
