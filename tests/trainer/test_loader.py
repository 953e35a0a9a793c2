"""The shard stream: ranks (and workers) see disjoint samples in every epoch, epochs reshuffle, reviewer-dropped
and held-out keys are counted skips, batches share one ACE bucket, a resumed stream continues exactly where it
stopped, and fsspec URLs stream the same way as local folders."""

import shutil
from collections import Counter
from itertools import islice

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from datagen import paths
from datagen.shards.reader import read_index
from datagen.trainer.config import DataConfig
from datagen.trainer.loader import LoaderPosition, ShardStream, holdout_keys, list_shards


@pytest.fixture(scope="module")
def tokenizer(tiny_models):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_models / "t5")


def _cfg(path, **kw):
    base = dict(
        path=str(path), batch_size=4, num_workers=0, shuffle_buffer=16, max_tokens=16, max_text_tokens=16, holdout=0
    )
    base.update(kw)
    return DataConfig(**base)


def _epochs(stream, n_epochs):
    """{epoch: [keys in order]} of a stream limited to n_epochs."""
    stream.max_epochs = n_epochs
    out = {}
    for b in stream:
        out.setdefault(b.meta["epoch"], []).extend(b.keys)
    return out


@pytest.mark.parametrize("world", [2, 4])  # 2 shards: split by shard (world 2) or by sample (world 4)
def test_ranks_see_disjoint_samples_every_epoch(shard_dir, tokenizer, world):
    all_keys = set(read_index(shard_dir).column("key").to_pylist())
    held = set(holdout_keys(list_shards(str(shard_dir)), 3, seed=0))
    seen = [
        _epochs(ShardStream(_cfg(shard_dir), tokenizer, seed=0, rank=r, world=world, exclude=held), 2)
        for r in range(world)
    ]
    for epoch in (0, 1):
        per_rank = [seen[r].get(epoch, []) for r in range(world)]
        for keys in per_rank:
            assert len(keys) == len(set(keys)), "a rank saw a sample twice in one epoch"
        union = set().union(*map(set, per_rank))
        assert sum(len(k) for k in per_rank) == len(union), "ranks overlap"
        assert union == all_keys - held
    assert seen[0][0] != seen[0][1]  # each epoch reshuffles


def test_batches_share_one_bucket_under_the_token_budget(shard_dir, tokenizer):
    stream = ShardStream(_cfg(shard_dir, max_tokens=64), tokenizer, seed=0, max_epochs=1)
    frames = Counter()
    for b in stream:
        H, W = b.pixels.shape[-2:]
        assert H % 16 == 0 and W % 16 == 0 and (H // 16) * (W // 16) <= 64
        assert len(b.keys) <= 4 and b.n_samples == len(b.keys)
        assert set(torch.unique(b.masks).tolist()) <= {0.0, 1.0}
        for s in range(b.n_samples):
            frames[int((b.layout.frame_sample == s).sum())] += 1
    assert frames[2] > 0 and max(frames) >= 3  # CUs (input + target) and LCUs (history too) both arrive


def test_dropped_keys_are_skipped_and_counted(shard_dir, tokenizer, tmp_path):
    copy = tmp_path / "shards"
    shutil.copytree(shard_dir, copy)
    keys = read_index(copy).column("key").to_pylist()
    dropped = keys[::5]
    pq.write_table(pa.table({"key": dropped, "reason": ["blurry"] * len(dropped)}), copy / paths.DROPPED_KEYS_FILE)
    stream = ShardStream(_cfg(copy), tokenizer, seed=0, max_epochs=1)
    seen, skipped = [], Counter()
    for b in stream:
        seen.extend(b.keys)
        skipped.update(b.meta["skipped"])
    assert not set(seen) & set(dropped)
    assert set(seen) == set(keys) - set(dropped)
    assert skipped["dropped_by_review"] == len(dropped)


def test_resumed_stream_continues_exactly(shard_dir, tokenizer):
    full = list(islice(iter(ShardStream(_cfg(shard_dir), tokenizer, seed=5)), 40))
    position = LoaderPosition(rank=0, world=1, workers=0)
    for b in full[:33]:  # past the first epoch's end, into the second
        position.update(b.meta)
    resumed = ShardStream(_cfg(shard_dir), tokenizer, seed=5, resume=position.state())
    again = list(islice(iter(resumed), 7))
    assert [b.keys for b in again] == [b.keys for b in full[33:40]]
    torch.testing.assert_close(again[0].pixels, full[33].pixels)
    assert again[0].meta["epoch"] == full[33].meta["epoch"] >= 1


def test_resume_with_another_layout_restarts_at_the_next_epoch(shard_dir, tokenizer):
    state = {"world": 2, "workers": 1, "positions": {"0": [1, 3], "1": [1, 2]}, "skipped": {}}
    stream = ShardStream(_cfg(shard_dir), tokenizer, seed=0, world=1, resume=state)
    assert next(iter(stream)).meta["epoch"] == 2


def test_fsspec_url_streams_like_a_folder(shard_dir, tokenizer):
    fs = fsspec.filesystem("memory")
    for p in shard_dir.iterdir():
        if p.is_file():
            fs.pipe(f"/trainer-test/{p.name}", p.read_bytes())
    local = _epochs(ShardStream(_cfg(shard_dir), tokenizer, seed=1), 1)
    remote = _epochs(ShardStream(_cfg("memory://trainer-test"), tokenizer, seed=1), 1)
    assert remote == local
    with pytest.raises(FileNotFoundError):
        list_shards("memory://nothing-here")
