"""First stage of the pairs job: read the partition's row group of OUT/pairs.parquet and decode both images of
every pair (each image once per partition) through the same reader, limits and quarantine as the images job."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from datagen import schema
from datagen.batch import ENTRIES, ITEMS, PAIRS, QuarantineRow, WorkBatch
from datagen.config import InputConfig
from datagen.ingest.read import ReadImages
from datagen.operator import Operator, Resources, Role

PAIRS_UNREADABLE = "pairs_unreadable"


class ReadPairs(Operator):
    name = "read_pairs"
    role = Role.READ
    reads = ()
    writes = (
        PAIRS,
        ENTRIES,
        ITEMS,
    )
    version = "1"

    def __init__(self, input_config: InputConfig, out_dir: str | Path, **context: Any):
        super().__init__(None, **context)
        self.reader = ReadImages(input_config)
        self.pairs_file = Path(out_dir).resolve() / schema.PAIRS_FILE

    def resources(self) -> Resources:
        return Resources(num_cpus=1)

    def describe(self) -> str:
        return f"read_pairs: pairs from {self.pairs_file}, both images decoded"

    def process(self, batch: WorkBatch) -> WorkBatch:
        rg = int(batch.spec["row_group"])
        try:
            rows = pq.ParquetFile(self.pairs_file).read_row_group(rg).to_pylist()
        except (OSError, IndexError, pa.ArrowException) as err:
            # the whole partition is lost: say so as data, with where it came from
            batch.quarantine.append(
                QuarantineRow(
                    f"{self.pairs_file}#row_group={rg}", PAIRS_UNREADABLE, self.name, f"{type(err).__name__}: {err}"
                )
            )
            batch.pairs = []
            return batch
        batch.pairs = [schema.PairRow.from_row(r) for r in rows]
        entries: dict[str, dict[str, Any]] = {}
        for p in batch.pairs:
            for uri, entry_json, caption in ((p.uri_a, p.entry_a, p.caption_a), (p.uri_b, p.entry_b, p.caption_b)):
                if uri not in entries:
                    entry = json.loads(entry_json) if entry_json else {"uri": uri}
                    entry["caption"] = caption or ""
                    entries[uri] = entry
        batch.entries = [entries[u] for u in sorted(entries)]
        return self.reader.process(batch)
