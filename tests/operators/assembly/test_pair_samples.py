"""The pairs job's stages: a pair becomes one CU (input a -> target b) of its route's task with both sources and
both scores in its provenance; a pair missing an image is counted, and an unreadable pairs file is quarantined."""

import json

import cv2
import pyarrow as pa
import pyarrow.parquet as pq

from datagen import schema
from datagen.batch import WorkBatch
from datagen.config import InputConfig
from datagen.testing import load_photo
from operators.assembly.pair_samples import IMAGE_MISSING, PairSamples
from operators.assembly.read_pairs import PAIRS_UNREADABLE, ReadPairs


def _pairs_file(tmp_path, names):
    rows = []
    for a, b, task in names:
        rows.append(
            {
                "uri_a": str(tmp_path / a),
                "uri_b": str(tmp_path / b),
                "source_id_a": a,
                "source_id_b": b,
                "entry_a": json.dumps({"uri": str(tmp_path / a), "rel": a}),
                "entry_b": json.dumps({"uri": str(tmp_path / b), "rel": b}),
                "caption_a": "",
                "caption_b": "a cup of coffee",
                "task": task,
                "route": "general_editing",
                "set_id": "s",
                "set_size": 2,
                "cluster": 0,
                "linked": True,
                "score_pass1": 0.9,
                "score_pass2": float("nan"),
            }
        )
    pq.write_table(
        pa.Table.from_pylist(rows, schema=schema.PAIRS_SCHEMA), tmp_path / schema.PAIRS_FILE, row_group_size=10
    )


def test_pairs_become_cus_with_both_images(tmp_path):
    for name in ("coffee.png", "chelsea.png"):
        cv2.imwrite(str(tmp_path / name), load_photo(name, 128)[..., ::-1])
    _pairs_file(
        tmp_path,
        [("chelsea.png", "coffee.png", "General Editing"), ("coffee.png", "missing.png", "Reference Generation")],
    )
    batch = WorkBatch("pair-00000", {"name": "pair-00000", "row_group": 0}, 0, "r")
    batch = ReadPairs(InputConfig(), tmp_path)(batch)
    batch = PairSamples({"encoder": "classical_features"})(batch)
    assert len(batch.samples) == 1
    s = batch.samples[0]
    assert s.task == "General Editing" and s.direction == "edit" and len(s.current.inputs) == 1
    assert s.provenance.sources == [str(tmp_path / "chelsea.png"), str(tmp_path / "coffee.png")]
    assert (
        list(s.provenance.scores) == ["pass1"] and abs(s.provenance.scores["pass1"] - 0.9) < 1e-6
    )  # NaN pass 2: left out
    assert s.provenance.params["encoder"] == "classical_features"
    assert s.current.caption == "a cup of coffee" and s.current.instruction == ""
    assert batch.stats["pair_samples"].skipped == {IMAGE_MISSING: 1}
    assert len(batch.quarantine) == 1 and batch.quarantine[0].uri.endswith("missing.png")  # the reader said why


def test_unreadable_pairs_file_is_quarantined(tmp_path):
    batch = WorkBatch("pair-00003", {"name": "pair-00003", "row_group": 3}, 0, "r")
    batch = ReadPairs(InputConfig(), tmp_path)(batch)
    batch = PairSamples()(batch)
    assert batch.samples == [] and [q.reason for q in batch.quarantine] == [PAIRS_UNREADABLE]
