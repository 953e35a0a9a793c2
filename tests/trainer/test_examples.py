"""CU/LCU -> training frames: history inputs, current inputs, target; masks (missing = all ones); each frame
points at its own turn's text; indicator ids shared by a frame and the text tokens that name it."""

import numpy as np
import pytest

from datagen.schema import Frame, Provenance, Sample, Turn, rewrite_history_indicator
from datagen.testing import load_photo
from datagen.trainer.buckets import make_buckets, nearest_bucket
from datagen.trainer.examples import TooManyInputs, collate, to_example
from datagen.trainer.models import INDICATOR_NONE, INDICATOR_TARGET, indicator_id
from datagen.trainer.tokens import tokenize_instruction


def _lcu() -> Sample:
    a, b, c = (
        np.ascontiguousarray(load_photo(n, 96)[:64, :80]) for n in ("astronaut.png", "coffee.png", "chelsea.png")
    )
    h, w = a.shape[:2]
    mask = np.zeros((h, w), np.uint8)
    mask[10:40, 10:40] = 255
    t0 = Turn("Grayscale", "analysis", [Frame(a)], Frame(b), instruction="Convert {image} to grayscale.")
    t1 = Turn(
        "Image Colorization",
        "generation",
        [Frame(b)],
        Frame(c),
        instruction=rewrite_history_indicator("Colorize {image}.", 1),
    )
    t2 = Turn("Inpainting", "edit", [Frame(c, mask=mask)], Frame(a), instruction="Fill {image}, like {image1}.")
    prov = Provenance(sources=["file:///a"], source_ids=["a"], operator="lcu_chains", operator_version="1")
    return Sample([t0, t1, t2], prov)


def test_lcu_frames_masks_texts_and_indicators():
    s = _lcu()
    bucket = nearest_bucket(*s.current.target.size, make_buckets(64))
    ex = to_example(s, bucket, max_inputs=9)
    assert ex.images.shape == (4, bucket.height, bucket.width, 3)  # 3 inputs (history first) + target
    assert ex.frame_text == [0, 1, 2, 2]
    assert ex.is_target == [False, False, False, True]
    assert ex.frame_indicator == [indicator_id(1), indicator_id(2), indicator_id(3), INDICATOR_TARGET]
    assert (ex.masks[0] == 255).all() and (ex.masks[3] == 255).all()  # missing mask = all ones
    assert 0 < (ex.masks[2] == 255).mean() < 1 and set(np.unique(ex.masks[2])) == {0, 255}
    assert ex.texts == [t.instruction for t in s.turns]
    assert ex.text_indicators[0][""] == indicator_id(1)
    assert ex.text_indicators[1]["1"] == indicator_id(2)  # history turn 1's rewritten {image1} is its own input
    assert ex.text_indicators[2][""] == indicator_id(3) and ex.text_indicators[2]["1"] == indicator_id(1)


def test_too_many_inputs_is_refused():
    s = _lcu()
    with pytest.raises(TooManyInputs):
        to_example(s, make_buckets(16)[0], max_inputs=2)


def test_tokens_of_an_indicator_carry_its_id(tiny_models):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_models / "t5")
    text = "Fill {image}, like {image1}."
    ids, valid, ind = tokenize_instruction(tok, text, {"": 7, "1": 3}, 40)
    n = int(valid.sum())
    assert ids[n - 1] == tok.eos_token_id and not valid[n:].any()
    pieces = tok.convert_ids_to_tokens(ids[:n].tolist())
    marked7 = "".join(p for p, i in zip(pieces, ind[:n]) if i == 7).replace("\u2581", "")
    marked3 = "".join(p for p, i in zip(pieces, ind[:n]) if i == 3).replace("\u2581", "")
    assert marked7 == "{image}" and marked3 == "{image1}"
    assert (ind[:n] == INDICATOR_NONE).sum() == n - sum(1 for i in ind[:n] if i)
    # truncation keeps EOS
    ids2, valid2, _ = tokenize_instruction(tok, text * 20, {}, 8)
    assert valid2.all() and ids2[-1] == tok.eos_token_id


def test_collate_layout(tiny_models):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_models / "t5")
    s = _lcu()
    bucket = nearest_bucket(*s.current.target.size, make_buckets(64))
    lcu = to_example(s, bucket, 9)
    cu_sample = Sample([s.turns[0]], s.provenance, key="cu")
    cu = to_example(cu_sample, bucket, 9)
    batch = collate([cu, lcu], tok, 24)
    L = batch.layout
    assert batch.pixels.shape == (6, 3, bucket.height, bucket.width)
    assert float(batch.pixels.min()) >= -1 and float(batch.pixels.max()) <= 1
    assert L.frame_sample.tolist() == [0, 0, 1, 1, 1, 1]
    assert L.frame_slot.tolist() == [0, 1, 0, 1, 2, 3]
    assert L.text_sample.tolist() == [0, 1, 1, 1] and L.text_slot.tolist() == [0, 0, 1, 2]
    assert L.frame_text.tolist() == [0, 0, 1, 2, 3, 3]  # global text rows: each frame -> its own turn
    assert batch.is_target.tolist() == [False, True, False, False, False, True]
    assert batch.masks.shape == (6, 1, bucket.height, bucket.width)
