"""How a partition travels between Ray Data pools: the WorkBatch pickled once, its images out of band, each distinct
image once and compressed losslessly by content (masks and flat maps as they are, photos after a left-neighbour
delta, both by zstd), rather than every raw array of every frame pickled again at every pool boundary."""

from __future__ import annotations

import hashlib
import io
import pickle
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from datagen.batch import WorkBatch

# smaller arrays (embeddings, boxes, tiny thumbnails) pickle as they are: compressing them saves nothing worth a call
MIN_BYTES = 4096
RAW, ZSTD, DELTA_ZSTD = 0, 1, 2
# zstd at its fast level. On a 512 px photo (skimage's astronaut, 786 kB raw) on one core: PNG (OpenCV, zlib level 1)
# 464 kB in 47 ms + 18 ms to decode; the left-neighbour delta + zstd 468 kB in 3 ms + 4 ms; zstd alone 670 kB. A
# binary mask: 288 bytes of 262 kB. PNG's size at a fifteenth of its time, so a batch can cross many pools.
_CODEC = pa.Codec("zstd", compression_level=1)
# a 2D map compressed to more than this share is no mask: its rows are tried as deltas too
_NOT_A_MASK = 0.25


@dataclass(frozen=True)
class Packed:
    """A packed WorkBatch as it sits in a Ray Data row (pickled by Ray as one object: no Arrow binary size limit)."""

    data: bytes

    def __len__(self) -> int:
        return len(self.data)


def _encodable(a: Any) -> bool:
    return type(a) is np.ndarray and a.dtype == np.uint8 and a.nbytes >= MIN_BYTES and a.ndim in (2, 3)


def _zstd(a: np.ndarray) -> bytes:
    return _CODEC.compress(memoryview(a).cast("B"), asbytes=True)


def encode(a: np.ndarray) -> tuple[int, tuple[int, ...], bytes]:
    """(codec, shape, bytes), lossless. Photos (3 channels) and 2D maps that zstd alone does not shrink to a quarter
    (depth, soft edges) go as left-neighbour differences (wrapping uint8), which zstd packs like PNG's filters do;
    masks and flat maps as they are. The raw bytes when neither saves a tenth."""
    a = np.ascontiguousarray(a)
    best = (RAW, a.tobytes())
    if a.ndim == 2:
        best = min(best, (ZSTD, _zstd(a)), key=lambda c: len(c[1]))
    if a.ndim == 3 or len(best[1]) > _NOT_A_MASK * a.nbytes:
        d = a.copy()
        d[:, 1:] -= a[:, :-1]
        best = min(best, (DELTA_ZSTD, _zstd(d)), key=lambda c: len(c[1]))
    if best[0] != RAW and len(best[1]) > 0.9 * a.nbytes:
        best = (RAW, a.tobytes())
    return best[0], a.shape, best[1]


def decode(codec: int, shape: tuple[int, ...], data: bytes) -> np.ndarray:
    n = int(np.prod(shape))
    if codec == RAW:
        return np.frombuffer(data, np.uint8).reshape(shape).copy()
    raw = np.frombuffer(_CODEC.decompress(data, decompressed_size=n, asbytes=True), np.uint8)
    if codec == ZSTD:
        return raw.reshape(shape).copy()
    return np.cumsum(raw.reshape(shape), axis=1, dtype=np.uint8)


class _Pickler(pickle.Pickler):
    """Pickles everything as usual but uint8 images, which it sends out of band: an array object once however many
    frames hold it, and equal contents (a mask copied into two frames) encoded once."""

    def __init__(self, file: io.BytesIO):
        super().__init__(file, protocol=pickle.HIGHEST_PROTOCOL)
        self.blobs: list[tuple[int, tuple[int, ...], bytes]] = []
        self.objects: list[int] = []  # array number -> blob index
        self._by_id: dict[int, int] = {}  # id(array) -> array number
        self._by_content: dict[tuple, int] = {}
        self._alive: list[np.ndarray] = []  # keep ids stable while pickling

    def persistent_id(self, obj: Any) -> Any:
        if not _encodable(obj):
            return None
        n = self._by_id.get(id(obj))
        if n is None:
            a = np.ascontiguousarray(obj)
            key = (a.shape, hashlib.blake2b(memoryview(a).cast("B"), digest_size=16).digest())
            blob = self._by_content.get(key)
            if blob is None:
                blob = self._by_content[key] = len(self.blobs)
                self.blobs.append(encode(a))
            n = self._by_id[id(obj)] = len(self.objects)
            self.objects.append(blob)
            self._alive.append(obj)
        return n


class _Unpickler(pickle.Unpickler):
    def __init__(self, file: io.BytesIO, blobs: list, objects: list[int]):
        super().__init__(file)
        self.blobs, self.objects = blobs, objects
        self._arrays: dict[int, np.ndarray] = {}  # array number -> array: one object where there was one
        self._decoded: dict[int, np.ndarray] = {}  # blob index -> the first array decoded from it

    def persistent_load(self, n: int) -> np.ndarray:
        if n not in self._arrays:
            blob = self.objects[n]
            if blob in self._decoded:  # equal content, another object: a copy, as the sender had
                self._arrays[n] = self._decoded[blob].copy()
            else:
                self._arrays[n] = self._decoded[blob] = decode(*self.blobs[blob])
        return self._arrays[n]


def pack(batch: WorkBatch) -> Packed:
    body = io.BytesIO()
    p = _Pickler(body)
    p.dump(batch)
    return Packed(pickle.dumps((p.blobs, p.objects, body.getvalue()), protocol=pickle.HIGHEST_PROTOCOL))


def unpack(packed: Packed) -> WorkBatch:
    blobs, objects, body = pickle.loads(packed.data)
    return _Unpickler(io.BytesIO(body), blobs, objects).load()
