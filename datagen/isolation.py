"""The one error handler of every stage that works on a batch: try the whole batch, and when that raises, try each
item alone so one bad input costs only itself. Failures come back as data (a Failure each, with one code below)."""

from __future__ import annotations

import logging
import os
import traceback
from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence, TypeVar

from datagen.batch import QuarantineRow

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")

# What a failed input costs; reviewers filter quarantine.parquet and the stage stats on these codes.
OPERATOR_ERROR = "operator_error"  # a stage raised on this input alone: the input is quarantined (datagen.runtime)
FEATURE_ERROR = "feature_error"  # a feature model raised on this image alone: it is quarantined, unpaired
SCORE_ERROR = "score_error"  # a scorer raised on this sample alone: the sample is kept unscored, counted
BACKEND_ERROR = "backend_error"  # a model backend raised on this turn or request: its template is kept, counted
CODES = (OPERATOR_ERROR, FEATURE_ERROR, SCORE_ERROR, BACKEND_ERROR)


class BackendBroken(RuntimeError):
    """A model backend failed more of a partition's requests than its recipe allows (max_failure_rate,
    max_consecutive_failures): the engine, not an input, is broken. Never isolated: `isolate` and the runtime's
    per-item retries re-raise it, so the job stops with the engine's own error and the partition gets no done-marker
    (a resumed run retries it)."""


def describe_error(err: BaseException) -> str:
    """`Type: message at file:line` of the innermost frame, the place to look."""
    last = traceback.extract_tb(err.__traceback__)[-1] if err.__traceback__ else None
    where = f" at {os.path.basename(last.filename)}:{last.lineno}" if last else ""
    return f"{type(err).__name__}: {err}{where}"


def sample_uri(sample: Any) -> str:
    """The URI a failure of a sample names: its first source photo, else its key."""
    return sample.provenance.sources[0] if sample.provenance.sources else sample.key


@dataclass(frozen=True)
class Failure:
    """One input that failed alone: what it was, where it came from, which stage, and why."""

    item: Any
    uri: str
    code: str
    stage: str
    error: BaseException
    label: str = ""  # what the input is when its URI does not say (e.g. "sample 3f2a..."), a prefix of the detail

    @property
    def detail(self) -> str:
        return f"{self.label + ': ' if self.label else ''}{self.stage}: {describe_error(self.error)}"

    @property
    def reason(self) -> str:
        """The counted form, for stage stats and fallback records: `code:ErrorType`."""
        return f"{self.code}:{type(self.error).__name__}"

    def quarantine_row(self) -> QuarantineRow:
        return QuarantineRow(self.uri, self.code, self.stage, self.detail)


def isolate(
    work: Callable[[list[T]], R],
    items: Sequence[T],
    *,
    stage: str,
    code: str,
    uri: Callable[[T], str],
    label: Optional[Callable[[T], str]] = None,
    where: str = "",
    give_up_after: Optional[int] = None,
) -> tuple[list[tuple[list[T], R]], list[Failure]]:
    """Run `work` on all `items`; if it raises, run it on each item alone. Returns the (items, result) of every call
    that returned, in input order, and a Failure for each item that raised alone (code from CODES).
    `give_up_after`: after that many lone failures in a row the rest fail with the last error untried, for a backend
    that is down (every lone call would wait out its timeout) rather than an input that is bad.
    A BackendBroken from `work` is never isolated: it propagates, whole batch or lone item."""
    if code not in CODES:
        raise ValueError(f"unknown failure code {code!r}; datagen.isolation.CODES defines {CODES}")
    items = list(items)
    try:
        return [(items, work(items))], []  # with no items too: a reading stage makes its items from nothing
    except BackendBroken:
        raise
    except Exception as err:  # noqa: BLE001 - the items are retried alone below; nothing is lost to one bad input
        if not items:
            log.warning("%s%s failed with no input to blame (%s)", where, stage, describe_error(err))
            return [], []
        if len(items) == 1:
            return [], [Failure(items[0], uri(items[0]), code, stage, err, label(items[0]) if label else "")]
        log.warning("%s%s failed on %d items (%s); retrying one by one", where, stage, len(items), describe_error(err))
    done: list[tuple[list[T], R]] = []
    failed: list[Failure] = []
    streak = 0
    last: BaseException | None = None
    for x in items:
        if give_up_after is not None and streak >= give_up_after and last is not None:
            failed.append(Failure(x, uri(x), code, stage, last, label(x) if label else ""))
            continue
        try:
            done.append(([x], work([x])))
            streak = 0
        except BackendBroken:
            raise
        except Exception as one:  # noqa: BLE001
            failed.append(Failure(x, uri(x), code, stage, one, label(x) if label else ""))
            streak, last = streak + 1, one
    return done, failed
