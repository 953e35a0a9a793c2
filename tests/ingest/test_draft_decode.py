"""JPEG draft mode (libjpeg's DCT scaling): opt-in, never below the size asked for, limits and reported size of the
full image, pixels close to a full decode resized, and nothing changed for other formats or without it."""

import io

import numpy as np
import pytest
from PIL import Image

from datagen.ingest.decode import TOO_SMALL, RejectedInput, decode_image
from datagen.testing import load_photo


def _encode(arr: np.ndarray, fmt: str = "JPEG", orientation: int = 1) -> bytes:
    buf = io.BytesIO()
    im = Image.fromarray(arr)
    exif = im.getexif()
    if orientation != 1:
        exif[0x0112] = orientation
    im.save(buf, format=fmt, exif=exif.tobytes()) if fmt == "JPEG" else im.save(buf, format=fmt)
    return buf.getvalue()


@pytest.fixture(scope="module")
def photo():
    return load_photo("astronaut.png", 512)[:, :400]  # 512 high, 400 wide


def test_draft_decodes_smaller_but_never_below_the_size_asked(photo):
    full, meta = decode_image(_encode(photo), max_side=120)
    drafted, dmeta = decode_image(_encode(photo), max_side=120, draft=120)
    assert drafted.shape == full.shape == (120, 94, 3)
    assert (dmeta["orig_width"], dmeta["orig_height"]) == (meta["orig_width"], meta["orig_height"]) == (400, 512)
    diff = np.abs(drafted.astype(int) - full)  # close to the full decode, not the same pixels
    assert 0 < diff.mean() < 6 and np.corrcoef(drafted.ravel(), full.ravel())[0, 1] > 0.98
    raw, _ = decode_image(_encode(photo), draft=100, draft_by="short")  # no max_side: the drafted size itself
    assert raw.shape == (128, 100, 3)  # 1/4 scale keeps the short side at 100
    assert decode_image(_encode(photo), draft=101, draft_by="short")[0].shape == (256, 200, 3)


def test_limits_judge_the_full_oriented_image(photo):
    data = _encode(photo, orientation=6)  # turned: 512 wide, 400 high
    arr, meta = decode_image(data, draft=64, min_side=300)
    assert (meta["orig_width"], meta["orig_height"]) == (512, 400) and arr.shape[1] > arr.shape[0]
    with pytest.raises(RejectedInput) as e:
        decode_image(data, draft=64, min_side=401)
    assert e.value.reason == TOO_SMALL


def test_without_draft_or_for_other_formats_nothing_changes(photo):
    png = _encode(photo, "PNG")
    assert np.array_equal(decode_image(png, max_side=120, draft=120)[0], decode_image(png, max_side=120)[0])
    jpg = _encode(photo)
    assert np.array_equal(decode_image(jpg, max_side=120, draft=0)[0], decode_image(jpg, max_side=120)[0])
