"""Shards: samples round-trip through tar + parquet, upstream webdataset reads them, validate catches damage."""

import io
import json
import tarfile

import numpy as np
import pyarrow.parquet as pq
import pytest
import webdataset as wds

from datagen import schema
from datagen.schema import Frame, Provenance, Sample, Turn
from datagen.shards.codec import decode_sample, encode_sample
from datagen.shards.reader import iter_samples, read_index
from datagen.shards.validate import validate_dir
from datagen.shards.writer import PartitionWriter


def make_sample(photo, i=0, masked=False):
    mask = None
    if masked:
        mask = np.zeros(photo.shape[:2], np.uint8)
        mask[10:40, 10:40] = 255
    gray = np.repeat(photo.mean(axis=2, keepdims=True).astype(np.uint8), 3, axis=2)
    turn = Turn(
        task="Grayscale",
        direction="analysis",
        inputs=[Frame(photo, mask)],
        target=Frame(gray, role=schema.ROLE_CONDITION),
        instruction="Make {image} gray.",
        instruction_method="template",
        caption="a cat",
    )
    prov = Provenance(
        sources=[f"file:///p{i}.png"], source_ids=[f"id{i}"], operator="grayscale", operator_version="1", recipe="r"
    )
    return Sample([turn], prov)


def test_roundtrip_keeps_pixels_masks_and_text(photo):
    s = make_sample(photo, masked=True)
    members = encode_sample(s, photo_format="png")
    assert set(members) == {"json", "t0.in0.png", "t0.in0.mask.png", "t0.target.png"}
    back = decode_sample(members)
    assert back.key == s.key and back.current.instruction == "Make {image} gray."
    assert np.array_equal(back.current.inputs[0].image, photo)  # png is lossless
    assert np.array_equal(back.current.inputs[0].mask, s.current.inputs[0].mask)
    assert back.current.target.role == schema.ROLE_CONDITION
    assert back.provenance == s.provenance


def test_what_later_stages_say_is_kept_beside_the_params_and_leaves_the_key_alone(photo):
    s = make_sample(photo)
    key, params = s.key, dict(s.provenance.params)
    s.current.instruction_record = schema.InstructionRecord(
        method="rule_rewrite", source="Make {image} grey.", alternates=["Turn {image} gray.", "Drain {image}'s colour."]
    )
    s.judge = schema.JudgeRecord(model="tiny", reason="looks right")
    s.threshold_failures = ["pixel_ssim<0.5"]
    record = json.loads(encode_sample(s, photo_format="png")["json"])
    assert record["provenance"]["params"] == params  # the params hold only what defines the sample
    assert record["turns"][0]["instruction_record"]["alternates"] == ["Turn {image} gray.", "Drain {image}'s colour."]
    assert record["judge"] == {"model": "tiny", "reason": "looks right"}
    assert record["threshold_failures"] == ["pixel_ssim<0.5"]
    back = decode_sample(encode_sample(s, photo_format="png"))
    assert back.key == key == schema.sample_key(back.provenance, [(t.task, t.direction) for t in back.turns])
    assert back.current.instruction_record == s.current.instruction_record
    assert back.judge == s.judge and back.threshold_failures == s.threshold_failures


def test_condition_maps_stay_lossless_with_jpeg_photos(photo):
    members = encode_sample(make_sample(photo), photo_format="jpg")
    assert "t0.in0.jpg" in members and "t0.target.png" in members


def _write(tmp_path, photo, n=5, per_shard=2):
    w = PartitionWriter(tmp_path, "img-00000", samples_per_shard=per_shard)
    samples = [make_sample(photo, i) for i in range(n)]
    for s in samples:
        w.add(s)
    return samples, w.close()


def test_writer_splits_shards_and_writes_stats_last(tmp_path, photo):
    samples, stats = _write(tmp_path, photo)
    assert [s.shard for s in stats] == ["img-00000-000", "img-00000-001", "img-00000-002"]
    assert sum(s.count for s in stats) == 5
    for s in stats:
        assert (tmp_path / f"{s.shard}.tar").exists() and (tmp_path / f"{s.shard}.parquet").exists()
        assert json.loads((tmp_path / f"{s.shard}.stats.json").read_text())["count"] == s.count
    assert not list(tmp_path.glob("*.tmp-*"))
    n, problems = validate_dir(tmp_path)
    assert n == 3 and problems == []
    assert [s.key for s in iter_samples(tmp_path)] == [s.key for s in samples]
    assert read_index(tmp_path).column("key").to_pylist() == [s.key for s in samples]
    some = read_index(tmp_path, ["key", "task", "no_such_column"])
    assert some.column_names == ["key", "task"] and some.column("key").to_pylist() == [s.key for s in samples]


def test_upstream_webdataset_reads_every_sample(tmp_path, photo):
    samples, _ = _write(tmp_path, photo)
    urls = sorted(str(p) for p in tmp_path.glob("*.tar"))
    got = list(wds.WebDataset(urls, shardshuffle=False).decode("rgb8"))
    assert [g["__key__"] for g in got] == [s.key for s in samples]
    first = got[0]
    assert first["json"]["schema"] == schema.SCHEMA_VERSION
    assert first["t0.in0.jpg"].shape[2] == 3 and first["t0.target.png"].dtype == np.uint8


def test_same_samples_give_same_bytes(tmp_path, photo):
    _write(tmp_path / "a", photo)
    _write(tmp_path / "b", photo)
    for p in (tmp_path / "a").glob("*.tar"):
        assert p.read_bytes() == (tmp_path / "b" / p.name).read_bytes()


def test_duplicate_key_in_partition_is_refused(tmp_path, photo):
    w = PartitionWriter(tmp_path, "img-00000")
    w.add(make_sample(photo))
    with pytest.raises(ValueError, match="duplicate"):
        w.add(make_sample(photo))


def _rewrite_tar(path, mutate):
    with tarfile.open(path) as t:
        members = [(m, t.extractfile(m).read()) for m in t]
    members = mutate(members)
    with tarfile.open(path, "w") as t:
        for m, data in members:
            m.size = len(data)
            t.addfile(m, io.BytesIO(data))


@pytest.mark.parametrize(
    "damage,expect",
    [
        ("drop_member", "missing members"),
        ("pickle", "forbidden member"),
        ("no_stats", "no stats file"),
        ("index_mismatch", "index keys differ"),
        ("bad_indicator", "{image3} used"),
    ],
)
def test_validate_reports_damage(tmp_path, photo, damage, expect):
    _write(tmp_path, photo, n=2, per_shard=10)
    tar = tmp_path / "img-00000-000.tar"
    if damage == "drop_member":
        _rewrite_tar(tar, lambda ms: [x for x in ms if not x[0].name.endswith("target.png")])
    elif damage == "pickle":

        def add_pickle(ms):
            info = tarfile.TarInfo(ms[0][0].name.split(".")[0] + ".pyd")
            return ms + [(info, b"\x80\x04N.")]

        _rewrite_tar(tar, add_pickle)
    elif damage == "no_stats":
        (tmp_path / "img-00000-000.stats.json").unlink()
    elif damage == "index_mismatch":
        t = pq.read_table(tmp_path / "img-00000-000.parquet")
        pq.write_table(t.slice(0, 1), tmp_path / "img-00000-000.parquet")
    elif damage == "bad_indicator":

        def bad(ms):
            out = []
            for m, data in ms:
                if m.name.endswith(".json"):
                    rec = json.loads(data)
                    rec["turns"][0]["instruction"] = "Use {image3}."
                    data = json.dumps(rec).encode()
                out.append((m, data))
            return out

        _rewrite_tar(tar, bad)
    _, problems = validate_dir(tmp_path)
    assert any(expect in p for p in problems), problems
