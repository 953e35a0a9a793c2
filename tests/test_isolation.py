"""The one error handler: the batch first, then each item alone; failures come back as data with a known code."""

import pytest

from datagen.isolation import CODES, FEATURE_ERROR, OPERATOR_ERROR, isolate


def square_unless_bad(xs: list[int]) -> list[int]:
    if any(x < 0 for x in xs):
        raise ValueError(f"negative input {[x for x in xs if x < 0]}")
    return [x * x for x in xs]


def test_a_good_batch_runs_once():
    calls = []
    runs, failed = isolate(lambda xs: calls.append(xs) or xs, [1, 2, 3], stage="s", code=OPERATOR_ERROR, uri=str)
    assert runs == [([1, 2, 3], [1, 2, 3])] and failed == [] and calls == [[1, 2, 3]]


def test_a_bad_item_costs_only_itself():
    runs, failed = isolate(square_unless_bad, [1, -2, 3], stage="enc", code=FEATURE_ERROR, uri=lambda x: f"img{x}")
    assert runs == [([1], [1]), ([3], [9])]
    [f] = failed
    assert (f.item, f.uri, f.code, f.stage, f.reason) == (-2, "img-2", FEATURE_ERROR, "enc", "feature_error:ValueError")
    assert f.detail.startswith("enc: ValueError: negative input [-2] at test_isolation.py:")
    row = f.quarantine_row()
    assert (row.uri, row.reason, row.stage) == ("img-2", FEATURE_ERROR, "enc")


def test_a_dead_backend_is_not_called_for_every_item():
    calls = []

    def dead(xs):
        calls.append(xs)
        raise ConnectionError("refused")

    runs, failed = isolate(dead, [1, 2, 3, 4], stage="s", code="backend_error", uri=str, give_up_after=2)
    assert runs == [] and [f.item for f in failed] == [1, 2, 3, 4]
    assert calls == [[1, 2, 3, 4], [1], [2]]  # the batch, then two lone tries; 3 and 4 fail with the last error
    assert {f.reason for f in failed} == {"backend_error:ConnectionError"}


def test_codes_are_the_modules_own():
    assert len(set(CODES)) == len(CODES)
    with pytest.raises(ValueError, match="unknown failure code"):
        isolate(square_unless_bad, [1], stage="s", code="oops", uri=str)
