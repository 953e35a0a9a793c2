"""`datagen export preference`: for one input and one instruction, kept outputs against the ones the quality rules
dropped (and kept against kept where a score parts them by the margin), as parquet that Hugging Face `datasets` loads
with decoded images; never two equal outputs in a pair, never a reject the task mix cut or one left unjudged."""

import json

import numpy as np
import pyarrow.parquet as pq
import pytest

from datagen.batch import WorkBatch
from datagen.cli import main
from datagen.config import OutputConfig
from datagen.runtime import run_stage
from datagen.schema import Frame, Provenance, Sample, Turn
from datagen.shards.commit import commit_partition
from datagen.testing import load_photo
from operators.scoring.pixel import PixelScores
from operators.scoring.quality_filter import QualityFilter


def _edit(photo, mask, target, variant, instruction="remove the cup"):
    turn = Turn("Inpainting", "edit", [Frame(photo, mask=mask)], Frame(target), instruction)
    return Sample([turn], Provenance(["coffee.png"], ["c0ffee"], "test_edit", "1", variant=variant))


@pytest.fixture(scope="module")
def out(tmp_path_factory):
    """One partition through pixel_scores and the quality filter, committed: three edits of one photo under one
    instruction (two proper, of different strength; one that changed nothing), one under another instruction, and a
    reject the task mix cut."""
    photo = load_photo("coffee.png", 128)
    mask = np.zeros(photo.shape[:2], np.uint8)
    mask[30:80, 40:100] = 255
    strong, faint = photo.copy(), photo.copy()
    strong[mask > 0] = 0
    faint[mask > 0] = faint[mask > 0] // 2
    samples = [
        _edit(photo, mask, strong, 0),
        _edit(photo, mask, faint, 1),
        _edit(photo, mask, photo.copy(), 2),  # no_change: the rejected output
        _edit(photo, mask, strong, 3, instruction="paint the cup black"),  # alone under its instruction
    ]
    batch = WorkBatch("img-00000", {}, 0, "r", samples=samples)
    batch = run_stage(QualityFilter(), run_stage(PixelScores(), batch))
    cut = _edit(photo, mask, faint, 4)
    batch.reject(cut, "task_mix", ["over mix: Inpainting"])
    batch.made["Inpainting"] += 1
    root = tmp_path_factory.mktemp("pref") / "out"
    commit_partition(batch, root, OutputConfig(dir=str(root)))
    return root, {s.provenance.variant: s.key for s in [*samples, cut]}


def test_kept_against_rejected_loads_with_datasets(out, tmp_path):
    datasets = pytest.importorskip("datasets")
    root, keys = out
    dest = tmp_path / "pref"
    assert main(["export", "preference", str(root), str(dest)]) == 0
    report = json.loads((dest / "export.json").read_text())
    # kept-vs-kept compares the judge's overall score by default; no judge ran here, so no such pair is made
    assert report["score"] == "judge_overall"
    assert report["counts"] == {"kept_vs_rejected": 2, "rejects not judged worse": 1}
    table = pq.read_table(dest / report["files"][0])
    assert {"instruction", "input", "chosen", "rejected", "chosen_scores", "rejected_scores"} <= set(table.column_names)
    rows = table.to_pylist()
    assert {(r["chosen_key"], r["rejected_key"]) for r in rows} == {(keys[0], keys[2]), (keys[1], keys[2])}
    for r in rows:
        assert r["instruction"] == "remove the cup" and r["chosen"]["bytes"] != r["rejected"]["bytes"]
        assert r["rejected_reasons"][0] == "no_change: pixel_l1_inside<0.01"
        assert r["rejected_scores"]["pixel_l1_inside"] == 0 < r["chosen_scores"]["pixel_l1_inside"]
    ds = datasets.load_dataset(
        "parquet",
        data_files=[str(p) for p in sorted(dest.glob("*.parquet"))],
        split="train",
        cache_dir=str(tmp_path / "hf"),
    )
    assert len(ds) == 2
    row = ds[0]
    assert row["chosen"].size == row["rejected"].size == row["input"].size == (128, 85)  # PIL images
    assert np.asarray(row["chosen"]).tolist() != np.asarray(row["rejected"]).tolist()
    assert row["input_mask"].mode == "L" and row["chosen_scores"]["pixel_l1_outside"] == 0


def test_kept_against_kept_where_a_score_parts_them(out, tmp_path):
    root, keys = out
    dest = tmp_path / "pref"
    # strong (all black inside) against faint (half as bright): pixel_l1_inside parts them by far more than 5% of 0-1
    assert main(["export", "preference", str(root), str(dest), "--score", "pixel_l1_inside", "--margin", "0.05"]) == 0
    rows = [r for p in sorted(dest.glob("*.parquet")) for r in pq.read_table(p).to_pylist()]
    kept = [r for r in rows if r["kind"] == "kept_vs_kept"]
    assert [(r["chosen_key"], r["rejected_key"]) for r in kept] == [(keys[0], keys[1])]
    assert kept[0]["margin"] == pytest.approx(
        kept[0]["chosen_scores"]["pixel_l1_inside"] - kept[0]["rejected_scores"]["pixel_l1_inside"], abs=1e-5
    )
    assert (
        main(
            ["export", "preference", str(root), str(tmp_path / "none"), "--score", "pixel_l1_inside", "--margin", "0.9"]
        )
        == 0
    )
    assert json.loads((tmp_path / "none" / "export.json").read_text())["counts"].get("kept_vs_kept") is None
    assert main(["export", "preference", str(root), str(dest), "--score", "sharpness"]) == 2
