"""The data contract: indicators, masks, keys and task names behave as ACE's convention says."""

import numpy as np
import pytest

from datagen import schema
from datagen.schema import Frame, Provenance, Sample, Turn


def _prov(**kw):
    base = dict(
        sources=["file:///a.jpg"], source_ids=["abc"], operator="canny", operator_version="1", params={"low": 100}
    )
    base.update(kw)
    return Provenance(**base)


def _turn(instruction="Detect the edges in {image}.", n_inputs=1):
    img = np.zeros((32, 48, 3), np.uint8)
    return Turn(
        task="Edge map Extraction",
        direction="analysis",
        inputs=[Frame(img) for _ in range(n_inputs)],
        target=Frame(img, role=schema.ROLE_CONDITION),
        instruction=instruction,
    )


def test_indicators_found_in_order():
    assert schema.indicators("Put {image1} into {image} then {image2}") == ["1", "", "2"]


@pytest.mark.parametrize(
    "text,n,ok",
    [
        ("Edit {image}.", 1, True),
        ("Edit {image}.", 0, False),
        ("Mix {image1} and {image2}", 2, True),
        ("Mix {image1} and {image3}", 2, False),
        ("No images here", 0, True),
        ("{image0}", 3, False),
    ],
)
def test_indicator_problems(text, n, ok):
    assert (schema.indicator_problems(text, n) == []) is ok


def test_history_indicator_rewrite_follows_ace_chat():
    assert schema.rewrite_history_indicator("Make {image} brighter", 0) == "Make {image} brighter"
    assert schema.rewrite_history_indicator("Make {image} brighter", 2) == "Make {image2} brighter"


def test_all_ones_mask_is_not_stored():
    img = np.zeros((8, 8, 3), np.uint8)
    assert Frame(img, np.full((8, 8), 255, np.uint8)).mask is None
    m = np.zeros((8, 8), np.uint8)
    m[2:4, 2:4] = 255
    f = Frame(img, m)
    assert f.mask is not None and f.mask_or_ones().sum() == 4 * 255


def test_frame_rejects_wrong_shapes():
    with pytest.raises(ValueError):
        Frame(np.zeros((8, 8), np.uint8))
    with pytest.raises(ValueError):
        Frame(np.zeros((8, 8, 3), np.uint8), np.zeros((4, 4), np.uint8))


def test_key_is_stable_and_depends_on_content_and_recipe():
    a = Sample([_turn()], _prov()).key
    assert a == Sample([_turn()], _prov()).key
    assert a != Sample([_turn()], _prov(source_ids=["other"])).key
    assert a != Sample([_turn()], _prov(recipe="r2")).key
    assert a != Sample([_turn()], _prov(params={"low": 50})).key
    assert a != Sample([_turn()], _prov(variant=1)).key


def test_lcu_sees_history_images():
    s = Sample([_turn(), _turn("Now combine {image1} with {image2}.")], _prov())
    assert s.kind == schema.KIND_LCU and s.n_images_visible(1) == 2
    assert s.indicator_problems() == []
    bad = Sample([_turn("Use {image2}.")], _prov())
    assert bad.indicator_problems() == ["turn 0: {image2} used but the sample has 1 input image(s)"]


def test_unknown_task_is_refused():
    with pytest.raises(ValueError, match="unknown task"):
        Turn(task="Teleportation", direction="edit", inputs=[], target=Frame(np.zeros((4, 4, 3), np.uint8)))


def test_every_condition_has_both_directions():
    for cond in schema.CONDITION_TASKS:
        assert schema.TASKS[schema.condition_task(cond, "analysis")].group == "low_level_analysis"
        assert schema.TASKS[schema.condition_task(cond, "generation")].group == "controllable_generation"
