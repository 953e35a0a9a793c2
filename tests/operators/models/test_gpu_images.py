"""The device path of image encoders, run on the CPU as the tests' fallback: tensor resize/crop/normalise against the
models' own PIL transforms, decoding with EXIF orientation, the prefetching loop, padding for a compiled shape, and
the compile helper."""

import io

import numpy as np
import pytest
import torch
from PIL import Image, ImageOps

from datagen.ingest.decode import decode_image
from datagen.testing import load_photo
from operators.models.gpu_images import DeviceEncoder, Prefetch, Preprocess, _orient, decode, to_model_input
from operators.models.precision import attention_backends, compile_fixed_shape, resolve_compile

CPU = torch.device("cpu")


def _jpeg(arr: np.ndarray, orientation: int = 1, quality: int = 92) -> bytes:
    buf = io.BytesIO()
    im = Image.fromarray(arr)
    exif = im.getexif()
    if orientation != 1:
        exif[0x0112] = orientation
    im.save(buf, format="JPEG", quality=quality, exif=exif.tobytes())
    return buf.getvalue()


@pytest.mark.parametrize(
    "cfg",
    [
        {"size": 64, "resize_mode": "squash", "interpolation": "bicubic", "mean": (0.5,) * 3, "std": (0.5,) * 3},
        {
            "size": 56,
            "resize_mode": "shortest",
            "interpolation": "bicubic",
            "mean": (0.48145466, 0.4578275, 0.40821073),
            "std": (0.26862954, 0.26130258, 0.27577711),
        },
    ],
    ids=["siglip-squash", "clip-shortest-crop"],
)
def test_tensor_preprocessing_matches_open_clips_pil_transform(cfg):
    from open_clip.transform import PreprocessCfg, image_transform_v2

    spec = Preprocess.from_open_clip(cfg)
    pil = image_transform_v2(PreprocessCfg(**cfg), is_train=False)
    images = [load_photo("astronaut.png", 181), load_photo("chelsea.png", 150)[:, :131]]  # odd, non-square sizes
    ours = to_model_input(images, spec).numpy()
    ref = torch.stack([pil(Image.fromarray(im)) for im in images]).numpy()
    assert ours.shape == ref.shape
    # PIL rounds to 8 bits between its horizontal and vertical passes: at most a level or two apart, rarely
    levels = np.abs(ours - ref) * np.array(cfg["std"])[None, :, None, None] * 255
    assert levels.max() <= 3.01 and levels.mean() < 0.3


def test_tensor_preprocessing_matches_the_dinov2_processor():
    from transformers import BitImageProcessor

    proc = BitImageProcessor(
        size={"shortest_edge": 40},
        crop_size={"height": 32, "width": 32},
        resample=3,
        image_mean=[0.485, 0.456, 0.406],
        image_std=[0.229, 0.224, 0.225],
        do_convert_rgb=True,
    )
    spec = Preprocess.from_hf_processor(proc)
    assert spec is not None and spec.crop_offset == "floor"
    images = [load_photo("coffee.png", 97), load_photo("chelsea.png", 75)]
    ours = to_model_input(images, spec).numpy()
    ref = proc(images=images, return_tensors="np")["pixel_values"]
    assert ours.shape == ref.shape
    assert (np.abs(ours - ref) * 0.229 * 255).max() <= 3.01


def test_a_resize_the_tensor_path_lacks_is_left_to_pil():
    norm = {"size": 64, "mean": (0,) * 3, "std": (1,) * 3}
    assert Preprocess.from_open_clip({**norm, "resize_mode": "longest"}) is None
    assert Preprocess.from_open_clip({**norm, "interpolation": "lanczos"}) is None


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied_as_pil_does(orientation):
    arr = load_photo("astronaut.png", 48)[:, :40]
    ref = np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(_jpeg(arr, orientation)))))
    raw = np.asarray(Image.open(io.BytesIO(_jpeg(arr, orientation))))
    ours = _orient(torch.from_numpy(raw.copy()).permute(2, 0, 1), orientation).permute(1, 2, 0).numpy()
    assert np.array_equal(ours, ref)


def test_decode_falls_back_to_the_cpu_decoder_for_every_format():
    arr = load_photo("coffee.png", 120)
    png = io.BytesIO()
    Image.fromarray(arr).save(png, format="PNG")
    datas = [_jpeg(arr, orientation=6), png.getvalue()]
    tensors, on_gpu = decode(datas, CPU)
    assert on_gpu == 0
    for t, d in zip(tensors, datas):
        assert np.array_equal(t.permute(1, 2, 0).numpy(), decode_image(d)[0])
    assert tensors[0].shape[1:] == (arr.shape[1], arr.shape[0])  # orientation 6 turns it


def test_prefetch_on_the_cpu_prepares_in_order():
    assert list(Prefetch(CPU)([[1, 2], [3]], sum)) == [3, 3]


def test_padding_for_a_fixed_shape_and_the_compile_path_change_nothing():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 16 * 16, 8)).eval()
    spec = Preprocess((16, 16), "squash", "bilinear", (0.5,) * 3, (0.5,) * 3)
    images = [load_photo(n, 40) for n in ("astronaut.png", "coffee.png", "chelsea.png")]
    plain = DeviceEncoder(net, spec, "cpu", torch.float32, batch_size=2).arrays(images)
    compiled = compile_fixed_shape(net, backend="eager")
    padded = DeviceEncoder(compiled, spec, "cpu", torch.float32, batch_size=2, fixed_shape=True).arrays(images)
    assert plain.shape == (3, 8) and np.allclose(np.linalg.norm(plain, axis=1), 1, atol=1e-5)
    assert np.allclose(plain, padded, atol=1e-6)
    jpegs = [_jpeg(im, quality=100) for im in images]
    # from files: decoded on the CPU here, in draft mode (1/2 scale still covers 16 px): close, not equal
    from_files = DeviceEncoder(net, spec, "cpu", torch.float32, 2).encoded(jpegs)
    assert ((from_files * plain).sum(axis=1) > 0.98).all()


def test_compile_and_attention_resolve_per_device():
    assert resolve_compile(None, "cuda") and not resolve_compile(None, "cpu") and resolve_compile(True, "cpu")
    assert attention_backends("auto", "cpu") == []
    from torch.nn.attention import SDPBackend

    assert attention_backends("auto", "cuda") == [SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION]
    assert attention_backends("math", "cuda") == [SDPBackend.MATH]
