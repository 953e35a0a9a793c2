"""The first stage of every image job: fetch each entry's bytes (file, fsspec URI or tar member), decode it
under the recipe's limits, and quarantine what cannot be used, with its reason. The run never stops for one input."""

from __future__ import annotations

import logging
import tarfile
from collections import defaultdict
from typing import Any

import fsspec

from datagen.batch import ENTRIES, ITEMS, QuarantineRow, SourceImage, WorkBatch
from datagen.config import InputConfig
from datagen.ingest.decode import TOO_MANY_BYTES, UNREADABLE, RejectedInput, decode_image
from datagen.operator import Operator, Resources, Role
from datagen.schema import content_id

log = logging.getLogger(__name__)
STAGE = "read"


def _fetch_tar_members(tar_uri: str, wanted: dict[str, dict], max_bytes: int) -> dict[str, bytes | RejectedInput]:
    """Read the wanted members of one tar in a single sequential pass."""
    out: dict[str, bytes | RejectedInput] = {}
    with fsspec.open(tar_uri, "rb") as f, tarfile.open(fileobj=f, mode="r|*") as tar:
        for m in tar:
            if m.name not in wanted:
                continue
            if m.size > max_bytes:
                out[m.name] = RejectedInput(TOO_MANY_BYTES, f"{m.size} bytes > max_bytes {max_bytes}")
                continue
            fh = tar.extractfile(m)
            out[m.name] = fh.read() if fh else RejectedInput(UNREADABLE, "member has no data")
            if len(out) == len(wanted):
                break
    return out


class ReadImages(Operator):
    """Fetch and decode a partition's entries into SourceImages."""

    name = STAGE
    role = Role.READ
    reads = (ENTRIES,)
    writes = (ITEMS,)
    version = "1"

    def __init__(self, input_config: InputConfig, **context: Any):
        super().__init__(None, **context)
        self.input = input_config

    def resources(self) -> Resources:
        return Resources(num_cpus=1)

    def _fetch(self, entries: list[dict]) -> list[bytes | RejectedInput]:
        results: list[bytes | RejectedInput | None] = [None] * len(entries)
        by_tar: dict[str, dict[str, int]] = defaultdict(dict)
        for i, e in enumerate(entries):
            if e.get("reject"):
                results[i] = RejectedInput(e["reject"], e.get("detail", ""))
            elif e.get("tar"):
                by_tar[e["tar"]][e["member"]] = i
            else:
                try:
                    fs, p = fsspec.core.url_to_fs(e["uri"])
                    size = fs.size(p)
                    if size is not None and size > self.input.max_bytes:
                        raise RejectedInput(TOO_MANY_BYTES, f"{size} bytes > max_bytes {self.input.max_bytes}")
                    with fs.open(p, "rb") as f:
                        results[i] = f.read(self.input.max_bytes + 1)
                except RejectedInput as r:
                    results[i] = r
                except (OSError, ValueError) as err:
                    results[i] = RejectedInput(UNREADABLE, f"{type(err).__name__}: {err}")
        for tar_uri, members in by_tar.items():
            try:
                got = _fetch_tar_members(tar_uri, members, self.input.max_bytes)
            except (OSError, tarfile.TarError) as err:
                got = {}
                detail = f"tar unreadable: {type(err).__name__}: {err}"
            else:
                detail = "member not found in tar"
            for member, i in members.items():
                results[i] = got.get(member, RejectedInput(UNREADABLE, detail))
        return results  # type: ignore[return-value]

    def process(self, batch: WorkBatch) -> WorkBatch:
        entries = batch.entries
        cfg = self.input
        batch.stage(STAGE).items_in += len(entries)
        for entry, data in zip(entries, self._fetch(entries)):
            uri = entry["uri"]
            try:
                if isinstance(data, RejectedInput):
                    raise data
                image, meta = decode_image(
                    data,
                    max_bytes=cfg.max_bytes,
                    max_pixels=cfg.max_pixels,
                    min_side=cfg.min_side,
                    max_aspect=cfg.max_aspect,
                    max_side=cfg.max_side,
                    draft=cfg.max_side if cfg.draft_decode else 0,
                )
            except RejectedInput as r:
                batch.quarantine.append(QuarantineRow(uri, r.reason, STAGE, r.detail))
                continue
            batch.items.append(
                SourceImage(
                    uri=uri,
                    source_id=content_id(data, entry.get("rel", uri)),
                    image=image,
                    caption=entry.get("caption") or "",
                    meta=meta,
                )
            )
        return batch
