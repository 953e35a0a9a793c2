"""A partition between Ray Data pools (datagen.transfer): every array comes back equal, one array held by several
frames stays one object, equal copies stay copies, and a batch of photos, masks and maps travels in a fraction of
its pickled size."""

from __future__ import annotations

import pickle

import numpy as np

from datagen.batch import SourceImage, WorkBatch
from datagen.schema import Frame, ObjectProposal, Provenance, Sample, Turn
from datagen.transfer import DELTA_ZSTD, RAW, ZSTD, encode, pack, unpack
from tests.conftest import load_photo


def _batch() -> WorkBatch:
    photo = load_photo()
    mask = np.zeros(photo.shape[:2], np.uint8)
    mask[40:120, 60:200] = 255
    item = SourceImage("mem://0", "id0", photo, "a photo")
    item.proposals = [ObjectProposal(mask.copy(), "cat", "on the left", 0.9, (60, 40, 200, 120), 0.1)]
    samples = []
    for k in range(3):  # three samples of one photo: its array held by every input frame, a mask copied into each
        turn = Turn(
            task="Remove Object",
            direction="edit",
            inputs=[Frame(photo, mask=mask.copy())],
            target=Frame(255 - photo),
            caption="",
        )
        samples.append(Sample([turn], Provenance(["mem://0"], ["id0"], "remove_object", "1", {}, "r", variant=k)))
    return WorkBatch("img-00000", {}, 0, "r", items=[item], samples=samples)


def test_a_packed_batch_comes_back_equal_and_shares_what_it_shared():
    batch = _batch()
    back = unpack(pack(batch))
    photo = back.items[0].image
    assert np.array_equal(photo, batch.items[0].image)
    assert all(s.current.inputs[0].image is photo for s in back.samples)  # one object, as before
    masks = [s.current.inputs[0].mask for s in back.samples]
    assert all(np.array_equal(m, batch.samples[0].current.inputs[0].mask) for m in masks)
    assert len({id(m) for m in masks}) == 3  # copies stay copies: writing one never changes another
    masks[0][:] = 0
    assert masks[1].any()
    assert np.array_equal(back.items[0].proposals[0].mask, batch.items[0].proposals[0].mask)
    assert back.samples[2].provenance.variant == 2 and back.items[0].proposals[0].definite == "the cat on the left"


def test_each_image_is_compressed_by_its_content_and_losslessly():
    rng = np.random.default_rng(0)
    mask = np.zeros((256, 256), np.uint8)
    mask[50:90, 10:200] = 255
    noise = rng.integers(0, 256, (128, 128, 3), dtype=np.uint8)
    for a, codec in ((mask, ZSTD), (load_photo(), DELTA_ZSTD), (noise, RAW), (load_photo()[:, ::2], DELTA_ZSTD)):
        got, shape, data = encode(a)
        assert got == codec and shape == a.shape
        assert len(data) <= a.nbytes
    assert len(encode(mask)[2]) < mask.nbytes / 100
    batch = _batch()
    assert len(pack(batch)) < len(pickle.dumps(batch, protocol=5)) / 2
