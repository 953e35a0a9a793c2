"""`datagen calibrate OUT --marks marks.json`: how well the judge agrees with the reviewers. Per task, among the
samples a reviewer accepted or rejected on the review page: the precision and recall of "passes the judge's
thresholds" against "accepted by a reviewer", and the threshold on one judge score (judge_overall by default) that
best matches the reviewers, as a quality_filter snippet to paste into a recipe."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import pyarrow as pa
import pyarrow.csv  # noqa: F401 - pa.csv
import yaml

from datagen import schema
from datagen.config import ConfigError
from datagen.shards.reader import read_index

ACCEPTED, REJECTED = "accepted", "rejected"
REJECTS_DIR = "rejects"  # where a run writes the samples its rules dropped (same shard contract)
DEFAULT_THRESHOLDS = {"*": {"judge_overall": {"min": 5.0}}}


def load_verdicts(path: str | Path) -> dict[str, str]:
    """key -> accepted|rejected from the review page's marks.json (a sample mark without a verdict is a
    rejection; rule marks are not verdicts on samples), or a CSV/parquet with `key` and `verdict` columns."""
    p = Path(path)
    if p.suffix == ".json":
        data = json.loads(p.read_text())
        marks = data.get("marks", []) if isinstance(data, dict) else data
        rows = [(m["key"], m.get("verdict", REJECTED)) for m in marks if isinstance(m, dict) and "key" in m]
    else:
        import pyarrow.parquet as pq

        table = pq.read_table(p) if p.suffix == ".parquet" else pa.csv.read_csv(p)
        missing = {"key", "verdict"} - set(table.column_names)
        if missing:
            raise ConfigError(f"--marks {p}: needs the columns key and verdict; missing {sorted(missing)}")
        rows = list(zip(table.column("key").to_pylist(), table.column("verdict").to_pylist()))
    out = {}
    for key, verdict in rows:
        if verdict not in (ACCEPTED, REJECTED):
            raise ConfigError(f"--marks {p}: sample {key}: verdict {verdict!r}; allowed: {ACCEPTED}, {REJECTED}")
        out[key] = verdict
    return out


def load_thresholds(path: Optional[str | Path]) -> dict[str, dict[str, dict[str, float]]]:
    """The thresholds "passes" means: a recipe (its operators.quality_filter.thresholds) or a YAML/JSON mapping
    '*' / task group / task -> score -> {min, max}; only the judge's scores (judge_*) count here. None: judge_overall
    >= 5 for every task."""
    if path is None:
        return DEFAULT_THRESHOLDS
    data = yaml.safe_load(Path(path).read_text()) or {}
    if "operators" in data:
        data = ((data.get("operators") or {}).get("quality_filter") or {}).get("thresholds") or {}
    allowed = {"*"} | set(schema.TASK_GROUPS) | set(schema.TASKS)
    out: dict[str, dict[str, dict[str, float]]] = {}
    for k, scores in data.items():
        if k not in allowed:
            raise ConfigError(f"--thresholds {path}: unknown key {k!r}; allowed: '*', task groups or task names")
        judged = {n: b for n, b in (scores or {}).items() if n.startswith("judge_")}
        bad = sorted(set(judged) - set(schema.SCORES))
        if bad:
            raise ConfigError(f"--thresholds {path}.{k}: unknown score(s) {bad}; allowed: {sorted(schema.SCORES)}")
        if judged:
            out[k] = judged
    if not out:
        raise ConfigError(f"--thresholds {path}: no threshold on a judge score (judge_*) to calibrate")
    return out


def bounds_for(task: str, thresholds: dict[str, dict[str, dict[str, float]]]) -> dict[str, dict[str, float]]:
    """'*' then the task's group then the task: the more specific key wins per score (as the quality filter)."""
    out: dict[str, dict[str, float]] = {}
    for key in ("*", schema.TASKS[task].group, task):
        out.update(thresholds.get(key, {}))
    return out


def passes(scores: dict[str, Optional[float]], bounds: dict[str, dict[str, float]]) -> bool:
    """Whether a sample passes every bound; a judge score it lacks (a fallback) fails it."""
    for name, b in bounds.items():
        v = scores.get(name)
        if v is None:
            return False
        if b.get("min") is not None and v < b["min"]:
            return False
        if b.get("max") is not None and v > b["max"]:
            return False
    return True


@dataclass
class Agreement:
    tp: int = 0  # passes, accepted
    fp: int = 0  # passes, rejected
    fn: int = 0  # fails, accepted
    tn: int = 0  # fails, rejected

    def add(self, passed: bool, accepted: bool) -> None:
        if passed and accepted:
            self.tp += 1
        elif passed:
            self.fp += 1
        elif accepted:
            self.fn += 1
        else:
            self.tn += 1

    @property
    def n(self) -> int:
        return self.tp + self.fp + self.fn + self.tn

    @property
    def precision(self) -> Optional[float]:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else None

    @property
    def recall(self) -> Optional[float]:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else None

    @property
    def f1(self) -> float:
        return 2 * self.tp / (2 * self.tp + self.fp + self.fn) if self.tp else 0.0

    @property
    def accuracy(self) -> float:
        return (self.tp + self.tn) / self.n if self.n else 0.0

    def to_json(self) -> dict[str, Any]:
        r = lambda x: None if x is None else round(x, 4)  # noqa: E731
        return {
            "reviewed": self.n,
            "tp": self.tp,
            "fp": self.fp,
            "fn": self.fn,
            "tn": self.tn,
            "precision": r(self.precision),
            "recall": r(self.recall),
            "f1": r(self.f1),
            "agreement": r(self.accuracy),
        }


def best_min(rows: list[tuple[Optional[float], bool]]) -> Optional[tuple[float, Agreement]]:
    """The minimum on a score that best matches the verdicts (rows: score, accepted): among the scores seen, the
    one whose "score >= it" has the highest F1 against "accepted", ties to the higher agreement, then the higher
    minimum (the stricter rule). None when no reviewed sample was accepted or has the score."""
    seen = sorted({v for v, _ in rows if v is not None})
    if not seen or not any(a for _, a in rows):
        return None
    best: Optional[tuple[tuple[float, float, float], float, Agreement]] = None
    for t in seen:
        ag = Agreement()
        for v, accepted in rows:
            ag.add(v is not None and v >= t, accepted)
        rank = (ag.f1, ag.accuracy, t)
        if best is None or rank > best[0]:
            best = (rank, t, ag)
    assert best is not None
    return best[1], best[2]


def calibrate(
    out: str | Path, verdicts: dict[str, str], thresholds: dict[str, dict[str, dict[str, float]]], score: str
) -> dict[str, Any]:
    """Per task: the agreement of the thresholds with the reviewers, and the best minimum on `score`. The samples
    are looked up in OUT's shards and, where the run kept them, its rejects (OUT/rejects/)."""
    if score not in schema.SCORES:
        raise ConfigError(f"--score {score!r}: unknown score; known: {sorted(schema.SCORES)}")
    cols = ["key", "task"] + sorted(
        {schema.score_column(n) for b in thresholds.values() for n in b} | {schema.score_column(score)}
    )
    tables = [read_index(out, cols)]
    if (Path(out) / REJECTS_DIR).is_dir():
        tables.append(read_index(Path(out) / REJECTS_DIR, cols))
    index = pa.concat_tables(tables, promote_options="default")
    rows = {r["key"]: r for r in index.to_pylist()}
    per_task: dict[str, list[tuple[dict[str, Optional[float]], bool]]] = {}
    missing = 0
    for key, verdict in sorted(verdicts.items()):
        row = rows.get(key)
        if row is None:
            missing += 1
            continue
        scores = {
            c[len(schema.SCORE_COLUMN_PREFIX) :]: v for c, v in row.items() if c.startswith(schema.SCORE_COLUMN_PREFIX)
        }
        per_task.setdefault(row["task"], []).append((scores, verdict == ACCEPTED))
    report: dict[str, Any] = {"score": score, "thresholds": thresholds, "marks": len(verdicts), "not_found": missing}
    tasks: dict[str, Any] = {}
    snippet: dict[str, Any] = {}
    for task, reviewed in sorted(per_task.items()):
        bounds = bounds_for(task, thresholds)
        now = Agreement()
        for scores, accepted in reviewed:
            now.add(passes(scores, bounds), accepted)
        entry: dict[str, Any] = {
            "accepted": sum(a for _, a in reviewed),
            "rejected": sum(not a for _, a in reviewed),
            "unscored": sum(scores.get(score) is None for scores, _ in reviewed),
            "thresholds": bounds,
            "now": now.to_json(),
        }
        best = best_min([(scores.get(score), a) for scores, a in reviewed])
        if best is not None:
            t, ag = best
            entry["best"] = {"min": t, **ag.to_json()}
            snippet[task] = {score: {"min": t}}
        tasks[task] = entry
    report["tasks"] = tasks
    report["snippet"] = {"quality_filter": {"thresholds": snippet}} if snippet else {}
    return report


def snippet_yaml(report: dict[str, Any]) -> str:
    """The best thresholds as recipe YAML (under `operators:`), with a comment saying where they come from."""
    if not report["snippet"]:
        return "# no task had an accepted sample with a judge score: nothing to suggest\n"
    head = (
        f"# datagen calibrate: per-task minimum on {report['score']} that best matches the reviewers' verdicts "
        f"(F1 of passing against accepted); paste under operators:\n"
    )
    return head + yaml.safe_dump(report["snippet"], sort_keys=False, default_flow_style=None, width=120)


def format_report(report: dict[str, Any]) -> str:
    """A table: per task the reviewed count, precision / recall now, and the suggested minimum with its own."""

    def pct(x: Optional[float]) -> str:
        return "-" if x is None else f"{100 * x:.0f}%"

    w = max([len(t) for t in report["tasks"]] + [4])
    lines = [
        f"{len(report['tasks'])} task(s), {report['marks']} marks ({report['not_found']} not found in the output); "
        f"'passes' = {json.dumps(report['thresholds'])}",
        f"{'task':<{w}}  reviewed  accepted  precision  recall   best min {report['score']}  precision  recall",
    ]
    for task, e in report["tasks"].items():
        now, best = e["now"], e.get("best")
        tail = f"{best['min']:>9.3g}  {pct(best['precision']):>9}  {pct(best['recall']):>6}" if best else "        -"
        lines.append(
            f"{task:<{w}}  {now['reviewed']:>8}  {e['accepted']:>8}  {pct(now['precision']):>9}  "
            f"{pct(now['recall']):>6}   {tail}"
        )
    return "\n".join(lines)
