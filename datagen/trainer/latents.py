"""The latents job (`datagen latents DIR --config RECIPE`): the VAE latents of every frame, at the bucket the trainer
puts it in, and the text encoder's states of every instruction, computed once so training need not run the encoders.

Beside the shards, DIR/latents/SHARD.tar holds one member per sample, KEY.safetensors (tensors `latents` [F, C, h, w]
the VAE's posterior mean in its dtype, `mask_latents` [F, 1, h, w] float32, `text.J` [valid tokens, d] per turn), in
the shard's order; DIR/latents/SHARD.json, written last, is its done-marker and holds the encoders' fingerprint. A
shard whose marker has this recipe's fingerprint is never redone, so a rerun of a finished job does nothing; the
trainer uses a shard's latents only where the fingerprint matches its own encoders. Shards are split over
RANK/WORLD_SIZE when launched by torchrun (no process group needed)."""

from __future__ import annotations

import io
import json
import logging
import os
import tarfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import fsspec
import numpy as np
import torch
from fsspec.implementations.local import LocalFileSystem
from safetensors.torch import save as save_safetensors
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from datagen import paths
from datagen.shards.codec import decode_sample
from datagen.trainer.buckets import make_buckets, nearest_bucket
from datagen.trainer.config import DataConfig, TrainRecipe
from datagen.trainer.encoders import LatentCodec, TextEncoder, encoder_fingerprint
from datagen.trainer.examples import TooManyInputs, TrainExample, masks_from_uint8, pixels_from_uint8, to_example
from datagen.trainer.loader import LATENTS_MEMBER, Shard, iter_raw, list_shards, read_sizes
from datagen.trainer.objectives import mask_to_latent
from datagen.trainer.tokens import tokenize_instruction

log = logging.getLogger(__name__)

LATENTS_DIR = "latents"
WINDOW = 64  # samples decoded together: their frames are encoded in batches by bucket, their texts in one batch


def latents_paths(shard: Shard) -> tuple[str, str]:
    """(tar URL, done-marker URL) of a shard's latents."""
    base = shard.url.rsplit("/", 1)
    root, name = base[0], base[1][: -len(".tar")]
    return f"{root}/{LATENTS_DIR}/{name}.tar", f"{root}/{LATENTS_DIR}/{name}.json"


def read_latents_marker(shard: Shard) -> dict[str, Any] | None:
    _, marker = latents_paths(shard)
    fs, p = fsspec.core.url_to_fs(marker)
    if not fs.exists(p):
        return None
    with fs.open(p, "rb") as f:
        return json.loads(f.read())


def attach_latents(shards: list[Shard], fingerprint: dict[str, Any]) -> tuple[list[Shard], dict[str, int]]:
    """The shards, each pointing at its latents where they were made with these encoders; and counts of shards
    with matching latents, with latents of other encoders or settings (ignored), and without."""
    out, counts = [], {"matching": 0, "other_encoders": 0, "none": 0}
    for s in shards:
        marker = read_latents_marker(s)
        if marker is None:
            counts["none"] += 1
            out.append(s)
        elif marker.get("fingerprint") != fingerprint:
            counts["other_encoders"] += 1
            out.append(s)
        else:
            counts["matching"] += 1
            out.append(Shard(s.url, s.index_url, latents_paths(s)[0]))
    return out, counts


# reading: shards decoded in DataLoader workers, a window of samples at a time ---------------------------------
@dataclass
class Window:
    shard: int  # index into the job's shard list
    examples: list[TrainExample]
    last: bool  # the shard's final window: the shard can be written once it is encoded
    skipped: dict[str, int] = field(default_factory=dict)


class ShardWindows(IterableDataset):
    """Every shard of the job, split over DataLoader workers by shard; each shard's windows in order."""

    def __init__(self, shards: list[Shard], data: DataConfig):
        self.shards = shards
        self.data = data

    def __iter__(self) -> Iterator[Window]:
        import cv2

        cv2.setNumThreads(1)
        info = get_worker_info()
        wid, nw = (info.id, info.num_workers) if info is not None else (0, 1)
        buckets = make_buckets(self.data.max_tokens, self.data.side_multiple, self.data.max_aspect)
        for i in range(wid, len(self.shards), nw):
            shard = self.shards[i]
            sizes = read_sizes(shard.index_url)
            examples: list[TrainExample] = []
            skipped: dict[str, int] = {}
            for raw in iter_raw(shard.url):
                key = raw["__key__"]
                reason = None
                try:
                    if key not in sizes:
                        raise KeyError("no index row")
                    examples.append(
                        to_example(decode_sample(raw), nearest_bucket(*sizes[key], buckets), self.data.max_inputs)
                    )
                except TooManyInputs:
                    reason = "too_many_inputs"
                except (ValueError, KeyError) as e:
                    log.warning("%s#%s: cannot decode (%s); no latents", shard.url, key, e)
                    reason = "undecodable"
                if reason:
                    skipped[reason] = skipped.get(reason, 0) + 1
                if len(examples) >= WINDOW:
                    yield Window(i, examples, False, skipped)
                    examples, skipped = [], {}
            yield Window(i, examples, True, skipped)


# encoding -----------------------------------------------------------------------------------------------------
def encode_window(
    examples: list[TrainExample],
    codec: LatentCodec,
    text_encoder: TextEncoder,
    max_text_tokens: int,
    batch_frames: int,
) -> list[bytes]:
    """One safetensors member per example: its frames' latents (batched by frame size) and texts' states."""
    per_frame: dict[tuple[int, int], list[tuple[int, int]]] = {}
    pixels = [pixels_from_uint8(ex.images) for ex in examples]
    masks = [masks_from_uint8(ex.masks) for ex in examples]
    for e, px in enumerate(pixels):
        for f in range(px.shape[0]):
            per_frame.setdefault(tuple(px.shape[-2:]), []).append((e, f))
    latents: list[list[torch.Tensor | None]] = [[None] * px.shape[0] for px in pixels]
    for frames in per_frame.values():
        for a in range(0, len(frames), batch_frames):
            chunk = frames[a : a + batch_frames]
            frames_px = torch.stack([pixels[e][f] for e, f in chunk]).contiguous(memory_format=torch.channels_last)
            z = codec.encode_raw(frames_px).cpu()
            for (e, f), zf in zip(chunk, z):
                latents[e][f] = zf

    texts = [
        tokenize_instruction(text_encoder.tokenizer, t, imap, max_text_tokens)
        for ex in examples
        for t, imap in zip(ex.texts, ex.text_indicators)
    ]
    states = []
    for a in range(0, len(texts), 256):
        ids = torch.from_numpy(np.stack([t[0] for t in texts[a : a + 256]]))
        valid = torch.from_numpy(np.stack([t[1] for t in texts[a : a + 256]]))
        states.extend(text_encoder.encode_raw(ids, valid).cpu())
    members, m = [], 0
    for e, ex in enumerate(examples):
        lat = torch.stack(latents[e])
        mlat = mask_to_latent(masks[e].to(codec.device), tuple(lat.shape[-2:])).cpu()
        tensors = {"latents": lat.contiguous(), "mask_latents": mlat.contiguous()}
        for j in range(len(ex.texts)):
            n = int(texts[m][1].sum())
            tensors[f"text.{j}"] = states[m][:n].contiguous()
            m += 1
        members.append(save_safetensors(tensors, metadata={"key": ex.key}))
    return members


def _write(url: str, data: bytes) -> None:
    fs, p = fsspec.core.url_to_fs(url)
    if isinstance(fs, LocalFileSystem):
        paths.atomic_write_bytes(Path(p), data)
    else:  # object stores replace an object whole
        fs.pipe_file(p, data)


class ShardLatents:
    """One shard's members as they are encoded, in the shard's order."""

    def __init__(self) -> None:
        self.buf = io.BytesIO()
        self.tar = tarfile.open(fileobj=self.buf, mode="w", format=tarfile.USTAR_FORMAT)
        self.samples = 0
        self.frames = 0
        self.skipped: dict[str, int] = {}

    def add(self, key: str, member: bytes) -> None:
        info = tarfile.TarInfo(f"{key}.{LATENTS_MEMBER}")
        info.size = len(member)
        info.mtime = 0  # the same inputs give the same bytes
        self.tar.addfile(info, io.BytesIO(member))
        self.samples += 1

    def close(self) -> bytes:
        self.tar.close()
        return self.buf.getvalue()


def run_latents_job(
    shards: list[Shard],
    codec: LatentCodec,
    text_encoder: TextEncoder,
    data: DataConfig,
    fingerprint: dict[str, Any],
    batch_frames: int = 32,
    num_workers: int = 0,
    rank: int = 0,
    world: int = 1,
) -> dict[str, Any]:
    """Encode the shards of this rank that have no done-marker with this fingerprint; returns counts and speed."""
    t0 = time.perf_counter()
    mine = shards[rank::world]
    todo, done = [], 0
    for s in mine:
        marker = read_latents_marker(s)
        if marker is not None and marker.get("fingerprint") == fingerprint:
            done += 1
            continue
        if marker is not None:
            log.info("%s: latents of other encoders or settings: made again", s.url)
        todo.append(s)
    summary: dict[str, Any] = {"shards": len(mine), "already_done": done, "encoded_shards": 0, "samples": 0}
    summary.update({"frames": 0, "skipped": {}, "seconds": 0.0, "images_per_s": 0.0, "steady_images_per_s": 0.0})
    if not todo:
        log.info("latents: all %d shards of rank %d already done", len(mine), rank)
        return summary
    loader = DataLoader(
        ShardWindows(todo, data),
        batch_size=None,
        num_workers=num_workers,
        multiprocessing_context="spawn" if num_workers else None,  # see datagen.trainer.loader.make_loader
    )
    open_shards: dict[int, ShardLatents] = {}
    t_first = None  # when the first window arrived: the rate after it leaves out the decoding workers' start-up
    for win in loader:
        if t_first is None:
            t_first = time.perf_counter()
        out = open_shards.setdefault(win.shard, ShardLatents())
        if win.examples:
            members = encode_window(win.examples, codec, text_encoder, data.max_text_tokens, batch_frames)
            for ex, member in zip(win.examples, members):
                out.add(ex.key, member)
                out.frames += len(ex.frame_text)
        for k, v in win.skipped.items():
            out.skipped[k] = out.skipped.get(k, 0) + v
        if win.last:
            shard = todo[win.shard]
            tar_url, marker_url = latents_paths(shard)
            _write(tar_url, open_shards.pop(win.shard).close())
            marker = {
                "shard": shard.url,
                "samples": out.samples,
                "frames": out.frames,
                "skipped": out.skipped,
                "fingerprint": fingerprint,
            }
            _write(marker_url, (json.dumps(marker, indent=1, sort_keys=True) + "\n").encode())  # last: the marker
            summary["encoded_shards"] += 1
            summary["samples"] += out.samples
            summary["frames"] += out.frames
            for k, v in out.skipped.items():
                summary["skipped"][k] = summary["skipped"].get(k, 0) + v
            log.info("latents: %s done (%d samples, %d frames)", tar_url, out.samples, out.frames)
    if codec.device.type == "cuda":
        torch.cuda.synchronize(codec.device)
    dt = time.perf_counter() - t0
    summary["seconds"] = round(dt, 3)
    summary["images_per_s"] = round(summary["frames"] / dt, 3) if dt > 0 else 0.0
    steady = time.perf_counter() - (t_first or t0)
    summary["steady_images_per_s"] = round(summary["frames"] / steady, 3) if steady > 0 else 0.0
    return summary


def latents(recipe: TrainRecipe, batch_frames: int = 32) -> dict[str, Any]:
    """The job as `datagen latents` runs it: the encoders exactly as `datagen train` builds them for this recipe
    (tiny:random ones in output.dir/tiny_models, where the trainer finds them again)."""
    from datagen.trainer.config import TINY_RANDOM
    from datagen.trainer.distributed import DistInfo
    from datagen.trainer.encoders import load_text_encoder, load_vae, prepare_tiny_models
    from datagen.trainer.loop import TINY_DIR, _tiny_inputs, cpu_threads

    rank, world = int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    device = torch.device("cuda", local) if torch.cuda.is_available() else torch.device("cpu")
    if device.type == "cpu":  # as the trainer: threads beyond the free cores spin against the decoding workers
        torch.set_num_threads(cpu_threads(recipe, DistInfo(rank, world, local, device)))
    shards = list_shards(recipe.data.path)
    tiny_root = Path(recipe.output.dir).resolve() / TINY_DIR
    if TINY_RANDOM in (recipe.vae.path, recipe.text_encoder.path):
        if world > 1:
            raise ValueError("tiny:random encoders are built by one process: run the latents job without torchrun")
        corpus, cal = _tiny_inputs(recipe, shards)
        prepare_tiny_models(
            tiny_root, corpus, cal, recipe.vae.path == TINY_RANDOM, recipe.text_encoder.path == TINY_RANDOM
        )
    codec = load_vae(recipe.vae, device, tiny_root / "vae")
    text_encoder = load_text_encoder(recipe.text_encoder, device, tiny_root / "t5")
    fingerprint = encoder_fingerprint(recipe.vae, recipe.text_encoder, codec, text_encoder, recipe.data)
    summary = run_latents_job(
        shards,
        codec,
        text_encoder,
        recipe.data,
        fingerprint,
        batch_frames=batch_frames,
        num_workers=recipe.data.num_workers,
        rank=rank,
        world=world,
    )
    summary.update({"rank": rank, "world": world, "device": str(device), "dir": recipe.data.path})
    return summary
