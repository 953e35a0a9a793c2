"""Ingest: every bad file is quarantined with its reason, every odd-but-valid file is processed, from folders,
tars (img2dataset layout) and parquet/CSV lists."""

import io
import tarfile

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from datagen.config import InputConfig
from datagen.ingest.listing import list_entries
from datagen.testing import make_hostile_corpus
from pipelines import load_recipe, run


def _recipe(tmp_path, path, *extra):
    return load_recipe(
        "tests/tiny_recipe.yaml",
        [
            f"input.path={path}",
            f"output.dir={tmp_path / 'out'}",
            "runtime.executor=local",
            "runtime.progress=false",
            "input.images_per_partition=4",
            *extra,
        ],
    )


def test_hostile_folder_quarantines_bad_and_processes_valid(tmp_path):
    expected = make_hostile_corpus(tmp_path / "in")
    summary = run(_recipe(tmp_path, tmp_path / "in"))
    q = pq.read_table(tmp_path / "out" / "quarantine.parquet").to_pylist()
    got = {row["uri"].rsplit("/", 1)[-1]: row["reason"] for row in q}
    bad = {k: v for k, v in expected.items() if v is not None}
    assert got == bad
    assert all(row["stage"] == "read" and row["detail"] for row in q)
    n_valid = sum(v is None for v in expected.values())
    assert summary["decoded"] == n_valid and summary["quarantined"] == len(bad)
    # the numbers add up: every listed input was either decoded or refused (and quarantined) at read
    assert summary["refused"] == len(bad) and summary["decoded"] + summary["refused"] == summary["inputs"] == len(
        expected
    )
    assert summary["quarantine_reasons"]["too_many_pixels"] == 1
    # every valid file made samples from every enabled operator (2 per operator)
    n_ops = len(_recipe(tmp_path, tmp_path / "in").operators)
    assert summary["samples"] >= n_valid * 2 * min(n_ops, 2)


def _tar_of(folder, tar_path, with_caption=True, evil=False):
    with tarfile.open(tar_path, "w") as t:
        for i, p in enumerate(sorted(folder.iterdir())):
            key = f"{i:09d}"
            t.add(p, arcname=f"{key}.{p.suffix.lstrip('.').lower()}")
            if with_caption:
                data = f"caption of {p.stem}".encode()
                info = tarfile.TarInfo(f"{key}.txt")
                info.size = len(data)
                t.addfile(info, io.BytesIO(data))
        if evil:
            data = (folder / sorted(x.name for x in folder.iterdir())[0]).read_bytes()
            for name in ("../escape.png", "/abs/path.png"):
                info = tarfile.TarInfo(name)
                info.size = len(data)
                t.addfile(info, io.BytesIO(data))
            pkl = b"\x80\x04\x95\x05\x00\x00\x00\x00\x00\x00\x00N."
            info = tarfile.TarInfo("000000000.pyd")
            info.size = len(pkl)
            t.addfile(info, io.BytesIO(pkl))
            link = tarfile.TarInfo("link.png")
            link.type = tarfile.SYMTYPE
            link.linkname = "/etc/passwd"
            t.addfile(link)


def test_webdataset_tar_input_with_captions_and_unsafe_members(tmp_path, photo_dir):
    tar_path = tmp_path / "00000.tar"
    _tar_of(photo_dir, tar_path, evil=True)
    entries = list_entries(InputConfig(path=str(tar_path)))
    good = [e for e in entries if not e.get("reject")]
    assert len(good) == len(list(photo_dir.iterdir()))
    assert all(e["caption"].startswith("caption of ") for e in good)
    rejected = {e["uri"].rsplit("#", 1)[-1]: e["reject"] for e in entries if e.get("reject")}
    assert rejected == {
        "../escape.png": "unsafe_tar_member",
        "/abs/path.png": "unsafe_tar_member",
        "link.png": "unsafe_tar_member",
        "000000000.pyd": "unsafe_tar_member",
    }
    summary = run(_recipe(tmp_path, tar_path))
    assert summary["decoded"] == len(good) and summary["quarantine_reasons"] == {"unsafe_tar_member": 4}
    # nothing was written outside the output folder
    assert not (tmp_path / "escape.png").exists() and not (tmp_path.parent / "escape.png").exists()


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_list_files_with_relative_paths_and_captions(tmp_path, photo_dir, fmt):
    rows = [{"path": f"photos/{p.name}", "caption": f"a photo {i}"} for i, p in enumerate(sorted(photo_dir.iterdir()))]
    rows.append({"path": "photos/missing.png", "caption": ""})
    table = pa.Table.from_pylist(rows)
    lst = tmp_path / f"list.{fmt}"
    if fmt == "parquet":
        pq.write_table(table, lst)
    else:
        import pyarrow.csv as pacsv

        pacsv.write_csv(table, lst)
    entries = list_entries(InputConfig(path=str(lst)))
    assert len(entries) == len(rows) and entries[0]["caption"].startswith("a photo")
    summary = run(_recipe(tmp_path, lst))
    assert summary["quarantine_reasons"] == {"unreadable": 1}
    assert summary["decoded"] == len(rows) - 1


def test_missing_column_names_the_column(tmp_path):
    lst = tmp_path / "l.parquet"
    pq.write_table(pa.Table.from_pylist([{"file": "a.jpg"}]), lst)
    with pytest.raises(Exception, match="input.path_column='path'.*columns: file"):
        list_entries(InputConfig(path=str(lst)))


def test_oversized_file_is_quarantined_without_reading_it(tmp_path, photo_dir):
    summary = run(_recipe(tmp_path, photo_dir, "input.max_bytes=1000"))
    assert summary["quarantine_reasons"] == {"file_too_large": len(list(photo_dir.iterdir()))}


def test_an_input_refused_by_two_jobs_is_quarantined_once(tmp_path):
    """With pairing on, the features job reads the photos again and refuses the same bad files: quarantine.parquet
    and the summary still count each bad input once."""
    expected = make_hostile_corpus(tmp_path / "in")
    bad = {k: v for k, v in expected.items() if v is not None}
    summary = run(_recipe(tmp_path, tmp_path / "in", "pairing.enabled=true"))
    assert len(list((tmp_path / "out" / "_quarantine").glob("feat-*.parquet"))) > 0  # both jobs did refuse them
    q = pq.read_table(tmp_path / "out" / "quarantine.parquet").to_pylist()
    assert sorted(row["uri"].rsplit("/", 1)[-1] for row in q) == sorted(bad)
    assert summary["quarantined"] == len(bad) and sum(summary["quarantine_reasons"].values()) == len(bad)
    assert summary["decoded"] + summary["refused"] == summary["inputs"]


def test_one_row_per_input_with_the_first_jobs_reason(tmp_path):
    """The same input refused in other words by a later job, or failing in two stages, is one row: the first."""
    from datagen import paths, schema
    from datagen.run import merge_quarantine

    qdir = tmp_path / paths.QUARANTINE_DIR
    qdir.mkdir()
    rows = {
        "img-00000": [
            ("a.png", "truncated", "read"),
            ("b.png", "operator_error", "canny"),
            ("b.png", "operator_error", "mosaic"),
        ],
        "feat-00000": [("a.png", "decode_error", "read"), ("c.png", "feature_error", "siglip_features")],
    }
    for part, rs in rows.items():
        pq.write_table(
            pa.Table.from_pylist(
                [{"uri": u, "reason": r, "stage": st, "detail": "x"} for u, r, st in rs],
                schema=schema.QUARANTINE_SCHEMA,
            ),
            qdir / f"{part}.parquet",
        )
    table = merge_quarantine(tmp_path, ["img-00000", "feat-00000"])
    got = [(r["uri"], r["reason"], r["stage"]) for r in table.to_pylist()]
    assert got == [
        ("a.png", "truncated", "read"),
        ("b.png", "operator_error", "canny"),
        ("c.png", "feature_error", "siglip_features"),
    ]
    assert pq.read_table(tmp_path / paths.QUARANTINE_FILE).num_rows == 3
