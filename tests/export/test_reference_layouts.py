"""Exports round-trip: every row of ACE's and ACE++'s lists points at files that exist and hold exactly the
shard's member bytes, with the sample's instruction; Hugging Face `datasets` loads the shards as webdataset."""

import csv
import json

import pytest

from datagen.export.reference_layouts import ACE_PLUS_COLUMNS, export_ace, export_ace_plus, read_ace_plus
from datagen.shards.reader import iter_raw, read_index, shard_paths
from pipelines import load_recipe, run


@pytest.fixture(scope="module")
def shards(tmp_path_factory, photo_paths):
    import shutil

    inp = tmp_path_factory.mktemp("in")
    for p in photo_paths[:4]:
        shutil.copy(p, inp / p.name)
    out = tmp_path_factory.mktemp("shards")
    run(
        load_recipe(
            "tests/tiny_recipe.yaml",
            [
                f"input.path={inp}",
                f"output.dir={out}",
                "runtime.executor=local",
                "runtime.progress=false",
                "input.max_side=96",
            ],
        )
    )
    return out


def _members(root):
    out = {}
    for raw in iter_raw([str(p) for p in shard_paths(root)]):
        out[raw["__key__"]] = (json.loads(raw["json"]), raw)
    return out


def test_ace_layout_round_trips(shards, tmp_path):
    report = export_ace(shards, tmp_path)
    members = _members(shards)
    with open(tmp_path / "train.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert rows and len(rows) == report["rows"] and list(rows[0]) == ["Source:FILE", "Target:FILE", "Prompt"]
    for key, row in zip(report["keys"], rows):
        rec, raw = members[key]
        turn = rec["turns"][-1]
        assert (tmp_path / row["Source:FILE"]).read_bytes() == raw[turn["inputs"][0]["image"]]
        assert (tmp_path / row["Target:FILE"]).read_bytes() == raw[turn["target"]["image"]]
        assert row["Prompt"] == turn["instruction"]
    n_lcu = sum(1 for r in read_index(shards).to_pylist() if r["kind"] == "lcu")
    assert report["skipped"].get("multi-turn", 0) == n_lcu
    assert report["rows"] + sum(report["skipped"].values()) == len(members)


def test_ace_plus_layout_round_trips(shards, tmp_path):
    report = export_ace_plus(shards, tmp_path)
    rows = read_ace_plus(tmp_path / "train.csv")
    members = _members(shards)
    assert len(rows) == report["rows"] > 0 and set(rows[0]) == set(ACE_PLUS_COLUMNS)
    for key, row in zip(report["keys"], rows):
        rec, raw = members[key]
        turn = rec["turns"][-1]
        assert (tmp_path / row["target_image"]).read_bytes() == raw[turn["target"]["image"]]
        assert (tmp_path / row["edit_image"]).read_bytes() == raw[turn["inputs"][0]["image"]]
        if row["edit_mask"]:
            assert (tmp_path / row["edit_mask"]).read_bytes() == raw[turn["inputs"][0]["mask"]]
        assert row["prompt"] == turn["instruction"] and row["data_type"]


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
