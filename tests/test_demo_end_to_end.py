"""`make demo` end to end: the demo recipe on the embedded default (local Ray, CPU, shipped photos) writes shards
that upstream webdataset reads sample by sample, whose parquet index matches the tar, and that validate accepts.
Every sample carries pixel scores and the real open_nsfw probability in its JSON and its index row; safe photos
score low."""

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pyarrow.parquet as pq
import pytest
import webdataset as wds

from datagen import schema
from datagen.export.reference_layouts import export_ace, export_ace_plus
from datagen.shards.codec import decode_sample
from datagen.shards.reader import read_index, shard_paths
from tests.export.loader_checks import ace_load_problems, ace_plus_load_problems

# The demo's sample keys (and tasks), recorded from a run of the embedded default. A key is a content address: a change
# that moves code (folders, helpers) must not change it, or every resume redoes its work. A change that means to
# change keys rewrites this file in a commit of its own that says why.
DEMO_KEYS = Path(__file__).parent / "data" / "demo_keys.txt"

# ACE's eight task groups (BRIEF.md), every one of which the demo makes
ACE_GROUPS = {
    "text_guided_generation",
    "low_level_analysis",
    "controllable_generation",
    "semantic_editing",
    "element_editing",
    "repainting",
    "layer_editing",
    "reference_generation",
}
SYNTHESIZED_OPERATORS = {
    "remove_object",
    "background_change",
    "style_transfer",
    "text_to_image",
    "layers",
    "subject_reference",
}


def check_synthesized(sample, removal_ratios: list[float]) -> None:
    """A synthesized edit carries the Emu Edit record and names what it changes; a removal changes its mask only:
    mean absolute difference outside the (dilated) mask at most a fifth of the difference inside it."""
    params = sample.provenance.params
    emu = params["emu_edit"]
    assert set(emu) == {"edit", "edited_object", "output", "original_object"}, sample.key
    named = [v for v in params["slots"].values() if v]
    text = sample.current.instruction.lower()
    assert not named or any(v.lower() in text for v in named), (sample.task, text, named)
    if sample.task == "Remove Object":
        frame = sample.current.inputs[0]
        mask = frame.mask > 0
        around = (
            cv2.dilate(frame.mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (17, 17))) > 0
        )  # JPEG blocks at the seam
        diff = np.abs(frame.image.astype(np.int32) - sample.current.target.image.astype(np.int32)).mean(axis=2)
        inside, outside = float(diff[mask].mean()), float(diff[~around].mean())
        assert outside <= inside / 5, (sample.provenance.sources, inside, outside)
        removal_ratios.append(outside / max(inside, 1e-9))


@pytest.mark.slow
def test_demo_recipe_end_to_end(tmp_path):
    out = tmp_path / "demo"
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "pipelines.cli",
            "run",
            "configs/demo.yaml",
            f"output.dir={out}",
            "runtime.progress=false",
        ],
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert res.returncode == 0, res.stderr[-4000:]
    assert "samples per task" in res.stdout
    # pose and faces run with the real offline weights, and the log names each file with its sha256
    from datagen.offline_weights import FILES

    log = res.stdout + res.stderr
    for key in ("blazepose_detector", "blazepose_landmark_lite", "yunet", "sface"):
        assert f"sha256 {FILES[key].sha256}" in log, key
    run_json = json.loads((out / "run.json").read_text())
    assert run_json["samples"] > 0 and run_json["quarantined"] == 0
    shards = shard_paths(out)
    assert shards
    n = 0
    groups, tasks, removals = set(), set(), []
    nsfw, photos = [], []
    for tar in shards:
        index = pq.read_table(tar.with_suffix(".parquet")).to_pylist()
        got = list(wds.WebDataset(str(tar), shardshuffle=False))
        assert [g["__key__"] for g in got] == [r["key"] for r in index]
        for g, row in zip(got, index):
            rec = json.loads(g["json"])
            assert rec["task"] == row["task"] and rec["turns"][-1]["instruction"] == row["instruction"]
            assert not any(k.endswith((".pyd", ".pickle", ".pkl")) for k in g)
            groups.add(row["task_group"])
            tasks.add(row["task"])
            if rec["kind"] == schema.KIND_CU and rec["provenance"]["operator"] in SYNTHESIZED_OPERATORS:
                check_synthesized(decode_sample(g), removals)
            scores = rec["provenance"]["scores"]
            # input-target scores need an input: a text-to-image CU has none
            want = ("pixel_l1", "pixel_ssim", "nsfw") if rec["turns"][-1]["inputs"] else ("nsfw",)
            assert set(want) <= set(scores), (rec["task"], scores)
            for name in want:
                assert abs(row[f"score_{name}"] - scores[name]) < 1e-5
            nsfw.append(scores["nsfw"])
            if rec["task"] == "Grayscale":  # its input is the untouched photo
                photos.append(scores["nsfw"])
        n += len(got)
    assert n == run_json["samples"]
    keys = sorted((r["key"], r["task"]) for r in read_index(out).select(["key", "task"]).to_pylist())
    want = [tuple(line.split("\t")) for line in DEMO_KEYS.read_text().splitlines()]
    missing, extra = sorted(set(want) - set(keys)), sorted(set(keys) - set(want))
    assert not missing and not extra, (
        f"{len(missing)} recorded keys missing, {len(extra)} new",
        missing[:5],
        extra[:5],
    )
    tasks = {
        r["task"] for tar in shards for r in pq.read_table(tar.with_suffix(".parquet"), columns=["task"]).to_pylist()
    }
    assert {"Pose Estimation", "Pose-guided Generation"} <= tasks, tasks  # the astronaut and the cameraman
    # the shipped photos are all safe: open_nsfw says so (its README: below 0.2 very likely safe), and nothing the
    # demo makes from them reaches the default NSFW threshold
    assert photos and max(photos) < 0.2, photos
    assert max(nsfw) < 0.8, max(nsfw)
    # issue 12: every ACE task group, including edits synthesized from single photos
    assert ACE_GROUPS <= groups, sorted(ACE_GROUPS - groups)
    assert {"Remove Object", "Add Object", "Style Transfer", "Text-to-Image"} <= tasks
    assert len(removals) >= 5
    val = subprocess.run([sys.executable, "-m", "datagen.cli", "validate", str(out)], capture_output=True, text=True)
    assert val.returncode == 0, val.stdout[-4000:]
    # issue 25: every row of both reference exports of the demo output loads through the reference loaders' logic
    plus = export_ace_plus(out, tmp_path / "ace++")
    assert plus["rows"] > 0 and ace_plus_load_problems(plus["ace_plus_config"]) == []
    task_of = dict(keys)
    assert any(task_of[k] == "Text-to-Image" for k in plus["keys"]), "no Text-to-Image row in the ACE++ export"
    ace = export_ace(out, tmp_path / "ace")
    assert ace["rows"] > 0 and ace_load_problems(tmp_path / "ace", tmp_path / "hf") == []
    # a rerun is a no-op
    again = subprocess.run(
        [
            sys.executable,
            "-m",
            "pipelines.cli",
            "run",
            "configs/demo.yaml",
            f"output.dir={out}",
            "runtime.progress=false",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert again.returncode == 0 and "nothing to do" in again.stdout
