"""Read datagen shards back: iterate samples of a shard folder with upstream webdataset, decoded into Samples
through the contract in datagen.schema. The same member dict that plain `webdataset.WebDataset(url)` yields."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pyarrow as pa
import pyarrow.parquet as pq

from datagen.schema import Sample
from datagen.shards.codec import decode_sample


def shard_paths(root: str | Path) -> list[Path]:
    """Completed shards only: a tar counts once its stats file (written last) exists."""
    root = Path(root)
    return sorted(p for p in root.glob("*.tar") if p.with_suffix(".stats.json").exists())


def iter_raw(urls: list[str] | str) -> Iterator[dict]:
    import webdataset as wds  # imports torch: keep it off the import path of workers that never read shards

    ds = wds.WebDataset(urls, shardshuffle=False, empty_check=False)
    yield from ds


def iter_samples(root_or_urls: str | Path | list[str]) -> Iterator[Sample]:
    if isinstance(root_or_urls, (str, Path)) and Path(root_or_urls).is_dir():
        urls = [str(p) for p in shard_paths(root_or_urls)]
    elif isinstance(root_or_urls, (str, Path)):
        urls = [str(root_or_urls)]
    else:
        urls = list(root_or_urls)
    if not urls:
        return
    for raw in iter_raw(urls):
        yield decode_sample(raw)


def read_index(root: str | Path, columns: list[str] | None = None) -> pa.Table:
    """The concatenated parquet index of every completed shard in a folder (`columns`: only these).
    Read file by file with ParquetFile: pq.read_table goes through pyarrow.dataset, whose first import alone takes
    most of a second in the driver."""
    tables = [_read_columns(p.with_suffix(".parquet"), columns) for p in shard_paths(root)]
    if not tables:
        from datagen.schema import INDEX_SCHEMA

        empty = INDEX_SCHEMA.empty_table()
        return empty.select([c for c in columns if c in empty.column_names]) if columns is not None else empty
    return pa.concat_tables(tables, promote_options="default")


def _read_columns(path: Path, columns: list[str] | None) -> pa.Table:
    pf = pq.ParquetFile(path)
    if columns is not None:
        columns = [c for c in columns if c in pf.schema_arrow.names]
    return pf.read(columns=columns)
