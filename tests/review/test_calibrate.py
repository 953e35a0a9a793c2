"""Calibration: the review page exports each reviewed sample's verdict (accepted or rejected), `datagen filter` drops
only the rejected, and `datagen calibrate` reports per task the precision and recall of "passes the judge's
thresholds" against "accepted by a reviewer" and the minimum that best matches the reviewers, checked against values
computed by hand from scores and marks the test writes."""

import json
import re

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from datagen.cli import main
from datagen.review.browser import dump_dom
from datagen.review.calibrate import calibrate, load_thresholds, load_verdicts
from datagen.review.filter import load_marks
from datagen.shards.reader import read_index, shard_paths
from pipelines import load_recipe, run

# per task: (judge_overall, verdict) for six samples; None: the judge fell back on it
MARKED = {
    "Grayscale": [(9, "accepted"), (7, "accepted"), (6, "rejected"), (5, "rejected"), (4, "rejected"), (2, "rejected")],
    "Edge map Extraction": [
        (8, "rejected"),
        (8, "accepted"),
        (3, "accepted"),
        (2, "rejected"),
        (None, "accepted"),
        (6, "rejected"),
    ],
}


@pytest.fixture(scope="module")
def judged(tmp_path_factory, photo_paths):
    """A tiny run's output whose judge_overall the test sets, and the reviewers' marks on it."""
    import cv2

    tmp = tmp_path_factory.mktemp("calibrate")
    photos = tmp / "photos"
    photos.mkdir()
    for p in photo_paths[:6]:
        img = cv2.imread(str(p), cv2.IMREAD_COLOR)
        s = 96 / max(img.shape[:2])
        cv2.imwrite(str(photos / (p.stem + ".png")), cv2.resize(img, None, fx=s, fy=s, interpolation=cv2.INTER_AREA))
    out = tmp / "out"
    run(
        load_recipe(
            "tests/tiny_recipe.yaml",
            [f"input.path={photos}", f"output.dir={out}", "input.max_side=64", "operators.lcu_chains.enabled=false"],
        )
    )
    keys = {t: sorted(k for k, task in _tasks(out).items() if task == t) for t in MARKED}
    score, marks = {}, []
    for task, rows in MARKED.items():
        assert len(keys[task]) == len(rows)
        for key, (value, verdict) in zip(keys[task], rows):
            score[key] = value
            marks.append({"key": key, "task": task, "operator": "x", "verdict": verdict, "reason": ""})
    marks += [
        {"rule": {"operator": "canny"}, "reason": "a rule is no verdict"},
        {"key": "f" * 40, "verdict": "accepted"},
    ]
    for tar in shard_paths(out):  # the judge's scores, as a judged run writes them into the index
        index = pq.read_table(tar.with_suffix(".parquet"))
        col = index.column_names.index("score_judge_overall")
        values = pa.array([score.get(k) for k in index.column("key").to_pylist()], pa.float32())
        pq.write_table(index.set_column(col, "score_judge_overall", values), tar.with_suffix(".parquet"))
    path = tmp / "marks.json"
    path.write_text(json.dumps({"format": "datagen-review-marks/1", "dataset": str(out), "marks": marks}))
    return out, path


def _tasks(out):
    return dict(zip(read_index(out).column("key").to_pylist(), read_index(out).column("task").to_pylist()))


def test_calibration_matches_hand_computed_values(judged):
    out, marks = judged
    verdicts = load_verdicts(marks)
    assert len(verdicts) == 13  # twelve samples and one key the output lacks; the rule mark is not a verdict
    report = calibrate(out, verdicts, load_thresholds(None), "judge_overall")
    assert report["not_found"] == 1 and set(report["tasks"]) == set(MARKED)
    gray, edge = report["tasks"]["Grayscale"], report["tasks"]["Edge map Extraction"]
    # Grayscale, passing = overall >= 5: 9 7 6 5 pass (2 accepted), 4 2 fail (both rejected)
    assert gray["now"] == {
        "reviewed": 6, "tp": 2, "fp": 2, "fn": 0, "tn": 2, "precision": 0.5, "recall": 1.0, "f1": 0.6667,
        "agreement": 0.6667,
    }  # fmt: skip
    # minimum 7 passes exactly the two accepted: F1 1
    assert gray["best"] == {
        "min": 7.0, "reviewed": 6, "tp": 2, "fp": 0, "fn": 0, "tn": 4, "precision": 1.0, "recall": 1.0, "f1": 1.0,
        "agreement": 1.0,
    }  # fmt: skip
    # Edge map: 8R 8A 6R pass; 3A 2R fail, and the unscored (accepted) sample fails every threshold
    assert (edge["now"]["tp"], edge["now"]["fp"], edge["now"]["fn"], edge["now"]["tn"]) == (1, 2, 2, 1)
    assert edge["now"]["precision"] == 0.3333 and edge["now"]["recall"] == 0.3333 and edge["unscored"] == 1
    # minima 2, 3, 6, 8 give F1 4/8, 4/7, 2/5, 2/5: minimum 3 (precision 2/4, recall 2/3)
    assert edge["best"]["min"] == 3.0 and edge["best"]["f1"] == 0.5714
    assert (edge["best"]["precision"], edge["best"]["recall"], edge["best"]["agreement"]) == (0.5, 0.6667, 0.5)
    assert report["snippet"] == {
        "quality_filter": {
            "thresholds": {
                "Edge map Extraction": {"judge_overall": {"min": 3.0}},
                "Grayscale": {"judge_overall": {"min": 7.0}},
            }
        }
    }


def test_calibrate_command_reads_a_recipes_thresholds_and_writes_a_snippet_a_recipe_takes(judged, tmp_path, capsys):
    out, marks = judged
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(
        yaml.safe_dump(
            {
                "operators": {
                    "quality_filter": {
                        "thresholds": {
                            "*": {"judge_overall": {"min": 5}, "nsfw": {"max": 0.8}},
                            "Grayscale": {"judge_overall": {"min": 8}},
                        }
                    }
                }
            }
        )
    )
    snippet = tmp_path / "thresholds.yaml"
    assert (
        main(["calibrate", str(out), "--marks", str(marks), "--thresholds", str(recipe), "--yaml", str(snippet)]) == 0
    )
    printed = capsys.readouterr().out
    # Grayscale under its own minimum 8: only the 9 passes: precision 1, recall 1/2
    assert re.search(r"Grayscale\s+6\s+2\s+100%\s+50%\s+7\s+100%\s+100%", printed), printed
    pasted = yaml.safe_load(snippet.read_text())
    assert pasted["quality_filter"]["thresholds"]["Grayscale"] == {"judge_overall": {"min": 7.0}}
    flat = json.dumps(pasted["quality_filter"]).replace('"', "'")
    recipe = load_recipe("tests/tiny_recipe.yaml", [f"operators.quality_filter={flat}"])  # validates as a recipe
    assert recipe.operators["quality_filter"].thresholds["Grayscale"]["judge_overall"].min == 7.0
    assert main(["calibrate", str(out), "--marks", str(marks), "--score", "nope"]) != 0


def test_review_page_exports_verdicts_and_filter_drops_only_the_rejected(judged, tmp_path):
    out, _ = judged
    page = tmp_path / "review.html"
    assert main(["review", str(out), "--out", str(page), "--per-task", "2"]) == 0
    # a reviewer accepts the first card, flags the second and accepts and flags the third (the flag wins)
    act = (
        "<script>window.addEventListener('load',()=>{const c=document.querySelectorAll('.card');"
        "c[0].querySelector('.accept').checked=true;c[1].querySelector('.flag').checked=true;"
        "c[2].querySelector('.accept').checked=true;c[2].querySelector('.flag').checked=true;"
        "const p=document.createElement('pre');p.id='marks';p.textContent=JSON.stringify(collect());"
        "document.body.appendChild(p);});</script></body>"
    )
    page.write_text(page.read_text().replace("</body>", act))
    dom = dump_dom(page)
    exported = json.loads(re.search(r'<pre id="marks">(.*?)</pre>', dom, re.S).group(1).replace("&quot;", '"'))
    assert exported["format"] == "datagen-review-marks/1"
    assert [m["verdict"] for m in exported["marks"]] == ["accepted", "rejected", "rejected"]
    path = tmp_path / "marks.json"
    path.write_text(json.dumps(exported))
    keys, _ = load_marks(path)
    assert keys == {m["key"] for m in exported["marks"][1:]}  # the accepted sample stays
    assert load_verdicts(path) == {m["key"]: m["verdict"] for m in exported["marks"]}
