"""Loading datagen shards with Hugging Face `datasets`' own webdataset loader. Samples of different tasks carry
different members (masks, multi-turn inputs), which the loader cannot infer from its first few examples; this
declares the features from the union of member names, so missing members come back as None."""

from __future__ import annotations

import tarfile
from pathlib import Path

from datagen import schema
from datagen.shards.reader import shard_paths


def member_fields(root: str | Path) -> list[str]:
    names: set[str] = set()
    for tar in shard_paths(root):
        with tarfile.open(tar, "r:") as t:
            for m in t:
                names.add(m.name.split(".", 1)[1])
    return sorted(names)


def hf_features(root: str | Path):
    import datasets

    feats = {"__key__": datasets.Value("string"), "__url__": datasets.Value("string")}
    for name in member_fields(root):
        feats[name] = datasets.Json() if name == schema.JSON_MEMBER else datasets.Image()
    return datasets.Features(feats)


def load_hf_dataset(root: str | Path, split: str = "train"):
    """`datasets.load_dataset("webdataset", ...)` over a datagen shard folder."""
    import datasets

    files = [str(p) for p in shard_paths(root)]
    return datasets.load_dataset("webdataset", data_files={split: files}, split=split, features=hf_features(root))
