"""Stream datagen shards (local or any fsspec URI) into training batches: each epoch shuffles the shard order
and, within a stream, samples through a seeded buffer; shards (or, with fewer shards than streams, samples) are
split by rank and worker so no sample is seen twice in an epoch; samples are batched by aspect-ratio bucket.

Every stream is a pure function of (seed, epoch, stream id), so its position is one number, the batches it has
produced in the epoch: a resumed stream replays the epoch's plan, re-reading its shards up to that point without
decoding images, and continues with the next batch. Reviewer-dropped and held-out keys are counted skips.

A shard with the latents job's output (Shard.latents_url) is read beside it in step: a batch whose samples all
have their latents is made from them, with no image decoded; any other batch decodes its images."""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from itertools import count
from typing import Any, Iterator

import fsspec
import numpy as np
import pyarrow.parquet as pq
import torch
from safetensors.torch import load as load_safetensors
from torch.utils.data import DataLoader, IterableDataset, get_worker_info
from webdataset.tariterators import group_by_keys, tar_file_expander

from datagen import paths
from datagen.schema import JSON_MEMBER, Sample
from datagen.shards.codec import decode_sample
from datagen.trainer.buckets import Bucket, make_buckets, nearest_bucket
from datagen.trainer.config import DataConfig
from datagen.trainer.examples import Batch, TooManyInputs, collate, latent_example, to_example

log = logging.getLogger(__name__)

STATS_SUFFIX = ".stats.json"
LATENTS_MEMBER = "safetensors"  # a latents tar's member per sample: KEY.safetensors
RAW_LATENTS = "__latents__"  # where a raw sample carries its latents member through the stream


@dataclass(frozen=True)
class Shard:
    url: str  # the tar, as an fsspec URL
    index_url: str  # its parquet index (key, width, height, ...)
    latents_url: str | None = None  # the latents job's tar for it, when it has one made with this recipe's encoders


def _fs(path: str) -> tuple[fsspec.AbstractFileSystem, str]:
    fs, root = fsspec.core.url_to_fs(path)
    return fs, root.rstrip("/")


def _url(fs: fsspec.AbstractFileSystem, p: str) -> str:
    return fs.unstrip_protocol(p)


def list_shards(path: str) -> list[Shard]:
    """Completed shards of a folder: a tar counts once its stats file, written last, exists."""
    fs, root = _fs(path)
    if not fs.isdir(root):
        raise FileNotFoundError(f"data.path={path!r} is not a folder")
    done = {p[: -len(STATS_SUFFIX)] for p in fs.glob(root + "/*" + STATS_SUFFIX)}
    shards = [
        Shard(_url(fs, t), _url(fs, t[:-4] + ".parquet")) for t in sorted(fs.glob(root + "/*.tar")) if t[:-4] in done
    ]
    if not shards:
        raise FileNotFoundError(f"data.path={path!r} holds no completed shards (*.tar with a *.stats.json)")
    return shards


def read_dropped_keys(path: str) -> set[str]:
    """Keys reviewers dropped (datagen.paths.DROPPED_KEYS_FILE in the shard folder, column `key`)."""
    fs, root = _fs(path)
    p = root + "/" + paths.DROPPED_KEYS_FILE
    if not fs.exists(p):
        return set()
    with fs.open(p, "rb") as f:
        table = pq.read_table(f, columns=["key"])
    return set(table.column("key").to_pylist())


def read_sizes(index_url: str) -> dict[str, tuple[int, int]]:
    """key -> (width, height) of the sample's target, from the shard's parquet index (no image decoded)."""
    with fsspec.open(index_url, "rb") as f:
        t = pq.read_table(f, columns=["key", "width", "height"])
    return {
        k: (w, h)
        for k, w, h in zip(t.column("key").to_pylist(), t.column("width").to_pylist(), t.column("height").to_pylist())
    }


def iter_raw(url: str) -> Iterator[dict[str, Any]]:
    """The member dicts of one shard, streamed through webdataset's tar expander (undecoded bytes)."""
    with fsspec.open(url, "rb") as stream:
        yield from group_by_keys(tar_file_expander([{"stream": stream, "url": url}]))


def with_latents(raws: Iterator[dict[str, Any]], latents_url: str | None) -> Iterator[dict[str, Any]]:
    """The shard's samples, each with its latents member where the latents tar has one. The job writes members in
    the shard's order and leaves out only samples it could not encode, so the two tars are read in step."""
    if latents_url is None:
        yield from raws
        return
    lat = iter_raw(latents_url)
    pending = next(lat, None)
    for raw in raws:
        if pending is not None and pending["__key__"] == raw["__key__"]:
            if LATENTS_MEMBER in pending:
                raw[RAW_LATENTS] = pending[LATENTS_MEMBER]
            pending = next(lat, None)
        yield raw


def holdout_keys(shards: list[Shard], n: int, seed: int) -> list[str]:
    """A few CUs kept out of training for previews: the n keys of the first shard with the smallest seeded hash
    (deterministic, identical on every rank, and cheap: one index read)."""
    if n <= 0:
        return []
    keys = list(read_sizes(shards[0].index_url))
    return sorted(keys, key=lambda k: hashlib.sha1(f"{seed}:{k}".encode()).hexdigest())[:n]


def read_samples(shards: list[Shard], keys: list[str]) -> list[Sample]:
    """Decode the named samples (looked up in shard order); used for the held-out preview CUs."""
    wanted, found = set(keys), {}
    for shard in shards:
        for raw in iter_raw(shard.url):
            if raw["__key__"] in wanted:
                found[raw["__key__"]] = decode_sample(raw)
        if len(found) == len(wanted):
            break
    return [found[k] for k in keys if k in found]


class ShardStream(IterableDataset):
    """Infinite stream of collated Batches for one rank; with DataLoader workers, each worker is its own stream.

    resume: {"world": W, "workers": K, "positions": {stream id: [epoch, batches done]}} from a checkpoint."""

    def __init__(
        self,
        cfg: DataConfig,
        tokenizer: Any,
        seed: int,
        rank: int = 0,
        world: int = 1,
        exclude: set[str] | None = None,
        resume: dict[str, Any] | None = None,
        max_epochs: int | None = None,
        shards: list[Shard] | None = None,
        latent_factor: int | None = None,
    ):
        self.cfg = cfg
        self.tokenizer = tokenizer
        self.seed = seed
        self.rank, self.world = rank, world
        self.shards = shards if shards is not None else list_shards(cfg.path)
        self.dropped = read_dropped_keys(cfg.path)
        self.exclude = set(exclude or ())
        self.resume = resume
        self.max_epochs = max_epochs
        self.buckets = make_buckets(cfg.max_tokens, cfg.side_multiple, cfg.max_aspect)
        self.latent_factor = latent_factor  # the VAE's, to check stored latents fit their bucket
        if self.dropped:
            log.info("%d keys dropped by reviewers (%s) will be skipped", len(self.dropped), paths.DROPPED_KEYS_FILE)

    # which stream am I ---------------------------------------------------------------------------------------
    def _stream_id(self) -> tuple[int, int, int]:
        """(stream id, streams in all, workers per rank)."""
        info = get_worker_info()
        wid, nw = (info.id, info.num_workers) if info is not None else (0, 1)
        return self.rank * nw + wid, self.world * nw, nw

    def _start(self, sid: int, nw: int) -> tuple[int, int]:
        r = self.resume
        if not r:
            return 0, 0
        positions = r.get("positions", {})
        if r.get("world") == self.world and r.get("workers") == nw:
            epoch, done = positions.get(str(sid), (0, 0))
            return int(epoch), int(done)
        # another layout cuts the epoch differently: the honest restart is the next whole epoch
        nxt = 1 + max((int(e) for e, _ in positions.values()), default=-1)
        if sid == 0:
            log.warning(
                "data position saved for world=%s workers=%s, now world=%d workers=%d: restarting at epoch %d",
                r.get("world"),
                r.get("workers"),
                self.world,
                nw,
                nxt,
            )
        return nxt, 0

    # the plan of one epoch: batches of raw (undecoded) samples -------------------------------------------
    def plan_epoch(
        self, epoch: int, sid: int, n_streams: int
    ) -> Iterator[tuple[list[dict[str, Any]], Bucket, dict[str, int]]]:
        order = np.random.default_rng([self.seed, epoch]).permutation(len(self.shards))  # same on every stream
        by_sample = len(self.shards) < n_streams  # too few shards to give each stream its own
        mine = order if by_sample else order[sid::n_streams]
        rng = np.random.default_rng([self.seed, epoch, sid, 1])
        buffer: list[tuple[dict[str, Any], Bucket]] = []
        pending: dict[Bucket, list[dict[str, Any]]] = {}
        skipped: dict[str, int] = {}
        position = 0  # running index over the epoch's samples, for the split by sample

        def skip(reason: str) -> None:
            skipped[reason] = skipped.get(reason, 0) + 1

        def place(raw: dict[str, Any], bucket: Bucket):
            group = pending.setdefault(bucket, [])
            group.append(raw)
            if len(group) >= self.cfg.batch_size:
                del pending[bucket]
                out = dict(skipped)
                skipped.clear()
                return group, bucket, out
            return None

        for si in mine:
            shard = self.shards[int(si)]
            sizes = read_sizes(shard.index_url)
            for raw in with_latents(iter_raw(shard.url), shard.latents_url):
                if by_sample:
                    mine_now = position % n_streams == sid
                    position += 1
                    if not mine_now:
                        continue
                key = raw["__key__"]
                if key in self.dropped:
                    skip("dropped_by_review")
                    continue
                if key in self.exclude:
                    skip("held_out")
                    continue
                if key not in sizes:
                    log.warning("%s: sample %s has no index row; skipped", shard.url, key)
                    skip("no_index_row")
                    continue
                buffer.append((raw, nearest_bucket(*sizes[key], self.buckets)))
                if len(buffer) >= self.cfg.shuffle_buffer:
                    j = int(rng.integers(len(buffer)))
                    buffer[j], buffer[-1] = buffer[-1], buffer[j]
                    done = place(*buffer.pop())
                    if done:
                        yield done
        for j in rng.permutation(len(buffer)):
            done = place(*buffer[int(j)])
            if done:
                yield done
        # the epoch's leftovers: partial batches, smallest bucket first
        for bucket in sorted(pending, key=lambda b: (b.height, b.width)):
            out = dict(skipped)
            skipped.clear()
            yield pending[bucket], bucket, out

    # decoding --------------------------------------------------------------------------------------------
    def _decode(self, raws: list[dict[str, Any]], bucket: Bucket, skipped: dict[str, int]) -> list:
        precomputed = all(RAW_LATENTS in raw for raw in raws)
        examples = []
        for raw in raws:
            uri = f"{raw.get('__url__', '?')}#{raw['__key__']}"
            try:
                if precomputed:
                    record = json.loads(raw[JSON_MEMBER])
                    tensors = load_safetensors(raw[RAW_LATENTS])
                    examples.append(latent_example(record, tensors, bucket, self.latent_factor, self.cfg.max_inputs))
                else:
                    examples.append(to_example(decode_sample(raw), bucket, self.cfg.max_inputs))
            except TooManyInputs as e:
                log.warning("%s: %s; skipped", uri, e)
                skipped["too_many_inputs"] = skipped.get("too_many_inputs", 0) + 1
            except (ValueError, KeyError) as e:
                log.warning("%s: cannot decode (%s); skipped", uri, e)
                skipped["undecodable"] = skipped.get("undecodable", 0) + 1
        return examples

    def __iter__(self) -> Iterator[Batch]:
        import cv2

        cv2.setNumThreads(1)  # one decoding thread per stream; the workers are the parallelism
        sid, n_streams, nw = self._stream_id()
        start_epoch, start_done = self._start(sid, nw)
        for epoch in count(start_epoch):
            if self.max_epochs is not None and epoch >= self.max_epochs:
                return
            skip_n = start_done if epoch == start_epoch else 0
            planned = 0
            for k, (raws, bucket, skipped) in enumerate(self.plan_epoch(epoch, sid, n_streams)):
                planned += 1
                if k < skip_n:
                    continue  # replayed for the position only: nothing decoded
                examples = self._decode(raws, bucket, skipped)
                if examples:
                    meta = {"stream": sid, "epoch": epoch, "done": k + 1, "skipped": skipped}
                    yield collate(examples, self.tokenizer, self.cfg.max_text_tokens, meta)
            if planned == 0:
                raise RuntimeError(
                    f"data stream {sid} of {n_streams} has no sample in epoch {epoch} (all skipped, or fewer samples "
                    f"than streams = ranks x data.num_workers); use fewer workers or more data"
                )


class LoaderPosition:
    """The training process's view of where each stream of this rank stands, from the batches it consumed
    (prefetched batches that were never trained on do not count)."""

    def __init__(self, rank: int, world: int, workers: int, resume: dict[str, Any] | None = None):
        self.rank, self.world, self.workers = rank, world, max(workers, 1)
        same = bool(resume) and resume.get("world") == world and resume.get("workers") == self.workers
        mine = {str(rank * self.workers + w) for w in range(self.workers)}
        self.positions: dict[str, list[int]] = (
            {k: list(v) for k, v in resume["positions"].items() if k in mine} if same else {}
        )
        # skip counts are totals over ranks: rank 0 carries the saved total on
        self.skipped: dict[str, int] = dict(resume.get("skipped", {})) if resume and rank == 0 else {}

    def update(self, meta: dict[str, Any]) -> None:
        self.positions[str(meta["stream"])] = [int(meta["epoch"]), int(meta["done"])]
        for k, v in meta.get("skipped", {}).items():
            self.skipped[k] = self.skipped.get(k, 0) + int(v)

    def epoch(self) -> int:
        return min((e for e, _ in self.positions.values()), default=0)

    def state(self) -> dict[str, Any]:
        return {
            "world": self.world,
            "workers": self.workers,
            "positions": dict(self.positions),
            "skipped": dict(self.skipped),
        }

    @staticmethod
    def merge(states: list[dict[str, Any]]) -> dict[str, Any]:
        """One resume record from every rank's state (streams are numbered globally, so they never collide)."""
        merged: dict[str, Any] = {
            "world": states[0]["world"],
            "workers": states[0]["workers"],
            "positions": {},
            "skipped": {},
        }
        for s in states:
            merged["positions"].update(s["positions"])
            for k, v in s["skipped"].items():
                merged["skipped"][k] = merged["skipped"].get(k, 0) + v
        return merged


def _worker_init(_: int) -> None:
    torch.set_num_threads(1)


def make_loader(stream: ShardStream, num_workers: int) -> DataLoader:
    return DataLoader(
        stream,
        batch_size=None,  # the stream batches by bucket itself
        num_workers=num_workers,
        worker_init_fn=_worker_init if num_workers else None,
        prefetch_factor=4 if num_workers else None,
        pin_memory=torch.cuda.is_available(),
        persistent_workers=False,
        # fresh worker processes: a forked child inherits OpenCV's and the OpenMP thread pools mid-state and can
        # deadlock in its first call (seen with cv2.setNumThreads after the parent had decoded images)
        multiprocessing_context="spawn" if num_workers else None,
    )
