"""Exports that the reference trainers load unchanged. Every row of the ACE++ list goes through ACE++'s loader logic
(ACEPlusDataset of ali-vilab/ACE_plus: the list stripped and split on newlines, each line split on `#;#` and zipped
with the config's FIELDS, every named file opened under PATH_PREFIX, the edit mask the edit image's size and the edit
image the target's, since the edit mask becomes the target's mask); every row of the ACE list goes through
ACEDemoDataset's (train.csv read as a dataset table, `Source:FILE` and `Target:FILE` opened under the folder). Files
hold exactly the shard's member bytes; Hugging Face `datasets` loads the shards as webdataset."""

import csv
import json
import re
from pathlib import Path

import pytest
from PIL import Image

from datagen.export.reference_layouts import (
    ACE_COLUMNS,
    ACE_PLUS_COLUMNS,
    ace_plus_config,
    export_ace,
    export_ace_plus,
    read_ace_plus,
)
from datagen.shards.reader import iter_raw, read_index, shard_paths
from pipelines import load_recipe, run
from tests.export.loader_checks import ace_load_problems, ace_plus_load_problems

DOCS = Path(__file__).resolve().parents[2] / "docs" / "data-format.md"


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    """The tiny recipe on four captioned photos plus the operators that make every input shape an export meets:
    text-to-image (no input), repainting (a masked input), layers (two masked inputs), subject reference (a reference
    input), LCU chains (multi-turn)."""
    out = tmp_path_factory.mktemp("shards")
    run(
        load_recipe(
            "tests/tiny_recipe.yaml",
            [
                "input.limit=4",
                f"output.dir={out}",
                "runtime.executor=local",
                "runtime.progress=false",
                "input.max_side=96",
                "operators.text_to_image={}",
                "operators.repainting={}",
                "operators.layers={}",
                "operators.subject_reference={}",
            ],
        )
    )
    return out


def _members(root):
    out = {}
    for raw in iter_raw([str(p) for p in shard_paths(root)]):
        out[raw["__key__"]] = (json.loads(raw["json"]), raw)
    return out


def test_ace_layout_loads_in_ace_demo_dataset(shards, tmp_path):
    out = tmp_path / "ace"
    report = export_ace(shards, out)
    assert report["rows"] > 0 and ace_load_problems(out, tmp_path / "hf") == []
    members = _members(shards)
    with open(out / "train.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == report["rows"] and tuple(rows[0]) == ACE_COLUMNS
    for key, row in zip(report["keys"], rows):
        rec, raw = members[key]
        turn = rec["turns"][-1]
        assert (out / row["Source:FILE"]).read_bytes() == raw[turn["inputs"][0]["image"]]
        assert (out / row["Target:FILE"]).read_bytes() == raw[turn["target"]["image"]]
        assert row["Prompt"] == turn["instruction"]
    n_lcu = sum(1 for r in read_index(shards).to_pylist() if r["kind"] == "lcu")
    assert report["skipped"].get("multi-turn", 0) == n_lcu > 0
    assert report["rows"] + sum(report["skipped"].values()) == len(members)
    on_disk = json.loads((out / "export.json").read_text())
    assert on_disk["skipped"] == report["skipped"] and set(on_disk["skipped_why"]) == set(report["skipped"])


@pytest.fixture(scope="module")
def ace_plus(shards, tmp_path_factory):
    out = tmp_path_factory.mktemp("acepp")
    return out, export_ace_plus(shards, out)


def test_every_ace_plus_row_loads_through_ace_plus_loader(ace_plus, shards):
    out, report = ace_plus
    on_disk = json.loads((out / "export.json").read_text())
    cfg = on_disk["ace_plus_config"]
    assert cfg == ace_plus_config(out.resolve()) and cfg["FIELDS"] == list(ACE_PLUS_COLUMNS)
    assert on_disk["header"] is False and on_disk["fields"] == cfg["FIELDS"]
    assert report["rows"] > 0 and ace_plus_load_problems(cfg) == []
    # no header: every line is a sample, in the order of export.json's keys
    lines = (out / "train.csv").read_text(encoding="utf-8").strip().split("\n")
    assert len(lines) == len(report["keys"]) == report["rows"]
    members = _members(shards)
    tasks = {members[k][0]["turns"][-1]["task"] for k in report["keys"]}
    assert {"Text-to-Image", "Inpainting", "Layer Fusion", "Reference Generation"} <= tasks
    # what is left out is counted with its reason: the LCU chains, which ACE++ (one turn, no history) cannot take
    n_lcu = sum(1 for r in read_index(shards).to_pylist() if r["kind"] == "lcu")
    assert report["skipped"] == {"multi-turn": n_lcu} and n_lcu > 0
    assert set(on_disk["skipped_why"]) == {"multi-turn"} and "history" in on_disk["skipped_why"]["multi-turn"]
    assert report["rows"] + n_lcu == len(members)


def test_ace_plus_rows_hold_the_samples_frames(ace_plus, shards):
    out, report = ace_plus
    rows = read_ace_plus(out / "train.csv")
    members = _members(shards)
    for key, row in zip(report["keys"], rows):
        rec, raw = members[key]
        turn = rec["turns"][-1]
        inputs = turn["inputs"]
        assert (out / row["target_image"]).read_bytes() == raw[turn["target"]["image"]]
        assert row["prompt"] == turn["instruction"] and row["data_type"]
        if turn["task"] == "Text-to-Image":  # ACE++ paints on a white canvas under a full mask
            assert row["edit_image"] == row["edit_mask"] == row["ref_image"] == ""
            continue
        if turn["task"] == "Layer Fusion":  # the background layer is edited where its hole is; the foreground guides
            edit, ref = inputs[1], inputs[0]
        elif turn["direction"] == "reference":
            edit, ref = (inputs[1] if len(inputs) == 2 else None), inputs[0]
        else:
            edit, ref = inputs[0], None
        read = lambda p: (out / p).read_bytes() if p else None  # noqa: E731
        assert read(row["edit_image"]) == (raw[edit["image"]] if edit else None)
        assert read(row["edit_mask"]) == (raw[edit["mask"]] if edit and edit.get("mask") else None)
        assert read(row["ref_image"]) == (raw[ref["image"]] if ref else None)


def test_the_loader_check_fails_on_rows_that_would_not_load(ace_plus, tmp_path):
    """The check has teeth: a header line (the old export's), a missing file, a mask of another size each fail."""
    out, _ = ace_plus
    cfg = ace_plus_config(out.resolve())
    good = (out / "train.csv").read_text(encoding="utf-8").strip().split("\n")
    masked = next(line for line in good if line.split("#;#")[1])
    small = tmp_path / "small_mask.png"
    Image.new("L", (3, 3), 255).save(small)
    bad = [
        "#;#".join(ACE_PLUS_COLUMNS),
        good[0].replace("images/", "images/missing-", 1) if good[0].startswith("images/") else "x.png" + good[0],
        "#;#".join([masked.split("#;#")[0], str(small), *masked.split("#;#")[2:]]),
    ]
    for line in bad:
        data_list = tmp_path / "one.csv"
        data_list.write_text(line + "\n", encoding="utf-8")
        assert len(ace_plus_load_problems({**cfg, "DATA_LIST": str(data_list)})) == 1, line


def test_an_edit_image_of_another_size_than_its_target_is_skipped_with_its_reason(tmp_path, photo):
    """A real photo pair (General Editing) may pair photos of different sizes; ACE++ would take the edit image's
    full mask as the target's mask, the wrong size: such a row is counted in export.json, and the rest loads."""
    import numpy as np

    from datagen.schema import Frame, Provenance, Sample, Turn
    from datagen.shards.writer import PartitionWriter

    def sample(i, target):
        turn = Turn(
            task="General Editing",
            direction="edit",
            inputs=[Frame(photo)],
            target=Frame(target),
            instruction="Make {image} brighter.",
            instruction_method="template",
            caption="a photo",
        )
        prov = Provenance(
            sources=[f"file:///p{i}.png"], source_ids=[f"id{i}"], operator="pairs", operator_version="1", recipe="r"
        )
        return Sample([turn], prov)

    shards = tmp_path / "shards"
    w = PartitionWriter(shards, "img-00000", samples_per_shard=10)
    same, other = sample(0, np.flipud(photo).copy()), sample(1, photo[: photo.shape[0] // 2].copy())
    w.add(same)
    w.add(other)
    w.close()
    out = tmp_path / "acepp"
    report = export_ace_plus(shards, out)
    assert report["keys"] == [same.key] and report["skipped"] == {"edit image size differs from the target": 1}
    assert "mask" in report["skipped_why"]["edit image size differs from the target"]
    assert ace_plus_load_problems(report["ace_plus_config"]) == []


def test_docs_show_the_ace_plus_config_lines():
    text = DOCS.read_text(encoding="utf-8")
    assert f"FIELDS: {json.dumps(list(ACE_PLUS_COLUMNS))}" in text
    assert re.search(r'DELIMITER: "#;#"', text) and re.search(r"DATA_LIST: \S+/train\.csv", text)


def test_hugging_face_datasets_loads_the_shards(shards):
    import datasets

    from datagen.shards.hf import hf_features

    files = [str(p) for p in shard_paths(shards)]
    ds = datasets.load_dataset(
        "webdataset",
        data_files={"train": files},
        split="train",
        features=hf_features(shards),
        cache_dir=str(shards / "_hf_cache"),
    )
    index = {r["key"]: r for r in read_index(shards).to_pylist()}
    assert sorted(ds["__key__"]) == sorted(index)
    for row in ds:
        rec = row["json"]
        assert rec["schema"] == "datagen.cu/1" and rec["task"] == index[row["__key__"]]["task"]
        target = row[rec["turns"][-1]["target"]["image"]]
        assert target.size == (index[row["__key__"]]["width"], index[row["__key__"]]["height"])
        for member in ("t0.in0.mask.png",):
            if member in row and not any(i.get("mask") for i in rec["turns"][0]["inputs"]):
                assert row[member] is None
