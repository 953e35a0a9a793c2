"""Images into a model's input where the model runs: JPEG bytes decoded on the GPU (nvjpeg through torchvision),
resize, centre crop and normalisation as tensor ops on the model's device, and the next batch prepared on a side
CUDA stream while this batch's forward pass runs. The same code runs on the CPU (tests, CPU workers); a format the
GPU decoder lacks (PNG, WebP, CMYK JPEG, ...) is decoded on the CPU, with JPEG draft mode when the target allows."""

from __future__ import annotations

import io
import logging
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, Literal, Optional, Sequence

import numpy as np

log = logging.getLogger(__name__)

JPEG_MAGIC = b"\xff\xd8\xff"
EXIF_ORIENTATION = 0x0112


@dataclass(frozen=True)
class Preprocess:
    """How a model's input is made from an RGB image, as the model's own CPU transform does it.
    squash: straight to `size`; shortest: the shorter side to `short_side` (aspect kept), then a centre crop to
    `size`. Pixels are rounded to 8 bits after resizing (PIL resizes in 8 bits), then scaled to [0, 1] and
    normalised by mean/std."""

    size: tuple[int, int]  # (height, width) of the model input
    resize: Literal["squash", "shortest"]
    interpolation: Literal["bicubic", "bilinear"]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    short_side: int = 0  # shortest: the shorter side before the crop (0: the crop's side)
    crop_offset: Literal["round", "floor"] = "round"  # torchvision rounds the crop's offset, transformers floors it

    @classmethod
    def from_open_clip(cls, cfg: Any) -> Optional["Preprocess"]:
        """From an open_clip PreprocessCfg (or its dict); None for what the tensor path does not reproduce
        (resize_mode longest pads, and interpolations other than bicubic/bilinear)."""
        get = cfg.get if isinstance(cfg, dict) else lambda k, d=None: getattr(cfg, k, d)
        size = get("size", 224)
        size = (size, size) if isinstance(size, int) else tuple(size)
        mode, interp = get("resize_mode", "shortest"), get("interpolation", "bicubic")
        if mode not in ("squash", "shortest") or interp not in ("bicubic", "bilinear"):
            return None
        if mode == "shortest" and size[0] != size[1]:
            return None
        return cls(size, mode, interp, tuple(get("mean")), tuple(get("std")), short_side=size[0])

    @classmethod
    def from_hf_processor(cls, proc: Any) -> Optional["Preprocess"]:
        """From a transformers image processor of the resize-shortest-edge + centre-crop kind (DINOv2's
        BitImageProcessor, CLIPImageProcessor); None for any other."""
        size, crop = getattr(proc, "size", None) or {}, getattr(proc, "crop_size", None) or {}
        resample = {2: "bilinear", 3: "bicubic"}.get(int(getattr(proc, "resample", -1)))
        if (
            "shortest_edge" not in size
            or not getattr(proc, "do_center_crop", False)
            or not getattr(proc, "do_resize", True)
            or not getattr(proc, "do_normalize", True)
            or abs(float(getattr(proc, "rescale_factor", 1 / 255)) - 1 / 255) > 1e-9
            or resample is None
        ):
            return None
        return cls(
            (int(crop["height"]), int(crop["width"])),
            "shortest",
            resample,
            tuple(float(v) for v in proc.image_mean),
            tuple(float(v) for v in proc.image_std),
            short_side=int(size["shortest_edge"]),
            crop_offset="floor",
        )

    def resized_size(self, h: int, w: int) -> tuple[int, int]:
        """(height, width) after the resize, before any crop (the rule torchvision and transformers share)."""
        if self.resize == "squash":
            return self.size
        short = self.short_side or self.size[0]
        if h <= w:
            return short, int(short * w / h)
        return int(short * h / w), short


def _resize_one(x: Any, spec: Preprocess) -> Any:
    """One CxHxW uint8 tensor -> 3 x size float tensor of 8-bit values (resized, centre-cropped)."""
    import torch.nn.functional as F

    if x.shape[0] == 1:
        x = x.expand(3, -1, -1)
    h, w = x.shape[1:]
    rh, rw = spec.resized_size(h, w)
    y = x[None].float()
    # width first, then height, each rounded to 8 bits, as PIL resamples (one pass per axis, uint8 in between)
    if rw != w:
        y = F.interpolate(y, size=(h, rw), mode=spec.interpolation, align_corners=False, antialias=True)
        y = y.round_().clamp_(0, 255)
    if rh != h:
        y = F.interpolate(y, size=(rh, rw), mode=spec.interpolation, align_corners=False, antialias=True)
        y = y.round_().clamp_(0, 255)
    th, tw = spec.size
    if (rh, rw) != (th, tw):
        if spec.crop_offset == "round":
            top, left = int(round((rh - th) / 2.0)), int(round((rw - tw) / 2.0))
        else:
            top, left = (rh - th) // 2, (rw - tw) // 2
        y = y[..., top : top + th, left : left + tw]
    return y[0]


def to_model_input(images: Sequence[Any], spec: Preprocess, dtype: Any = None) -> Any:
    """CxHxW (or HxWxC numpy) uint8 images on one device -> the normalised NxCxHxW batch the model takes, on that
    device, in `dtype` (float32 when None)."""
    import torch

    xs = []
    for im in images:
        if isinstance(im, np.ndarray):
            im = torch.from_numpy(np.ascontiguousarray(im))
        if im.ndim == 2:
            im = im[None]
        elif im.shape[-1] in (1, 3) and im.shape[0] not in (1, 3):
            im = im.permute(2, 0, 1)
        xs.append(_resize_one(im, spec))
    x = torch.stack(xs)
    mean = torch.tensor(spec.mean, device=x.device).view(1, 3, 1, 1) * 255.0
    std = torch.tensor(spec.std, device=x.device).view(1, 3, 1, 1) * 255.0
    x = (x - mean) / std
    return x if dtype is None else x.to(dtype)


def upload(images: Sequence[np.ndarray], device: Any) -> list[Any]:
    """HxWxC uint8 arrays -> CxHxW uint8 tensors on `device`; to CUDA through pinned memory without blocking (the
    caller's stream orders the copy before its use)."""
    import torch

    out = []
    for im in images:
        t = torch.from_numpy(np.ascontiguousarray(im))
        if t.ndim == 2:
            t = t[..., None]
        if device.type == "cuda":
            t = t.pin_memory().to(device, non_blocking=True)
        out.append(t.permute(2, 0, 1))
    return out


def _exif_orientation(data: bytes) -> int:
    """The EXIF orientation tag of an image file (1 when none): nvjpeg ignores it and PIL reads it from the header
    alone."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as im:
            return int(im.getexif().get(EXIF_ORIENTATION, 1) or 1)
    except (OSError, ValueError, SyntaxError):
        return 1


def _orient(t: Any, orientation: int) -> Any:
    """Apply an EXIF orientation (2-8) to a CxHxW tensor, as PIL's ImageOps.exif_transpose does."""
    import torch

    if orientation == 2:
        return torch.flip(t, dims=[2])
    if orientation == 3:
        return torch.rot90(t, 2, dims=[1, 2])
    if orientation == 4:
        return torch.flip(t, dims=[1])
    if orientation == 5:  # PIL's TRANSPOSE
        return t.transpose(1, 2)
    if orientation == 6:  # 90 degrees clockwise
        return torch.rot90(t, -1, dims=[1, 2])
    if orientation == 7:  # PIL's TRANSVERSE
        return torch.rot90(t.transpose(1, 2), 2, dims=[1, 2])
    if orientation == 8:
        return torch.rot90(t, 1, dims=[1, 2])
    return t


def _decode_on_cpu(data: bytes, draft_side: int) -> np.ndarray:
    from datagen.ingest.decode import decode_image

    return decode_image(data, draft=draft_side, draft_by="short")[0]


def decode(datas: Sequence[bytes], device: Any, draft_side: int = 0) -> tuple[list[Any], int]:
    """Encoded images -> (CxHxW uint8 RGB tensors on `device` with EXIF orientation applied, how many decoded on the
    GPU). On CUDA the JPEGs decode in one nvjpeg batch; the rest (other formats, CMYK, what nvjpeg refuses) decode
    on the CPU through datagen.ingest.decode, which may use JPEG draft mode down to `draft_side` (0: full size)."""
    import torch

    out: list[Any] = [None] * len(datas)
    on_gpu = 0
    jpeg = [i for i, d in enumerate(datas) if d[:3] == JPEG_MAGIC] if device.type == "cuda" else []
    if jpeg:
        from torchvision.io import ImageReadMode, decode_jpeg

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torchvision 0.29 marks its decoders deprecated in favour of torchcodec
            try:
                got = decode_jpeg(
                    [torch.frombuffer(bytearray(datas[i]), dtype=torch.uint8) for i in jpeg],
                    mode=ImageReadMode.RGB,
                    device=device,
                )
            except RuntimeError as e:  # one bad file fails the batch: those fall back to the CPU below
                log.info("nvjpeg refused a batch of %d (%s); decoding it on the CPU", len(jpeg), e)
                got = []
        for i, t in zip(jpeg, got):
            out[i] = _orient(t, _exif_orientation(datas[i]))
            on_gpu += 1
    for i, d in enumerate(datas):
        if out[i] is None:
            out[i] = upload([_decode_on_cpu(d, draft_side)], device)[0]
    return out, on_gpu


class Prefetch:
    """Prepares batch i+1 (decode, upload, resize, normalise: `prepare(batch) -> tensor`) in a worker thread on a
    side CUDA stream while the caller runs batch i on its own stream; the caller's stream waits on an event, never
    the host. On the CPU each batch is prepared in line, in order."""

    def __init__(self, device: Any):
        self.device = device
        self._local = threading.local()
        self._pool: Optional[ThreadPoolExecutor] = None

    def _side(self, prepare: Callable[[Any], Any], batch: Any) -> tuple[Any, Any]:
        import torch

        stream = getattr(self._local, "stream", None)
        if stream is None:
            stream = self._local.stream = torch.cuda.Stream(self.device)
        with torch.cuda.device(self.device), torch.cuda.stream(stream):
            x = prepare(batch)
            done = torch.cuda.Event()
            done.record(stream)
        return x, done

    def __call__(self, batches: Iterable[Any], prepare: Callable[[Any], Any]) -> Iterator[Any]:
        if self.device.type != "cuda":
            for b in batches:
                yield prepare(b)
            return
        import torch

        if self._pool is None:
            self._pool = ThreadPoolExecutor(1, thread_name_prefix="prefetch")
        it = iter(batches)
        nxt = next(it, None)
        pending = self._pool.submit(self._side, prepare, nxt) if nxt is not None else None
        while pending is not None:
            x, done = pending.result()
            nxt = next(it, None)
            pending = self._pool.submit(self._side, prepare, nxt) if nxt is not None else None
            stream = torch.cuda.current_stream(self.device)
            stream.wait_event(done)
            x.record_stream(stream)  # made on the side stream, used on this one: keep its memory until then
            yield x

    def __getstate__(self) -> dict:
        return {"device": self.device}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["device"])


class DeviceEncoder:
    """An image encoder run over many images where it lives: batches of `batch_size` prepared by Prefetch (upload
    or GPU decode, resize, normalise on the device), the forward pass under the chosen SDPA kernels, the last batch
    padded to the full size when the forward is compiled for one shape, and one host sync for the whole call.
    `forward(x) -> (N, D)` embeddings; what comes back is L2-normalised float32 numpy."""

    def __init__(
        self,
        forward: Callable[[Any], Any],
        spec: Preprocess,
        device: Any,
        dtype: Any,
        batch_size: int,
        *,
        fixed_shape: bool = False,
        attention: Sequence[Any] = (),
    ):
        import torch

        self.forward = forward
        self.spec = spec
        self.device = torch.device(device)
        self.dtype = dtype
        self.batch_size = batch_size
        self.fixed_shape = fixed_shape
        self.attention = list(attention)
        self.decoded_on_gpu = 0  # JPEGs nvjpeg decoded, for the bench and the logs
        self.draft_side = spec.short_side or min(spec.size)
        self._prefetch = Prefetch(self.device)

    def _from_arrays(self, images: Sequence[np.ndarray]) -> Any:
        return to_model_input(upload(images, self.device), self.spec, self.dtype)

    def _from_bytes(self, datas: Sequence[bytes]) -> Any:
        tensors, n = decode(datas, self.device, draft_side=self.draft_side)
        self.decoded_on_gpu += n
        return to_model_input(tensors, self.spec, self.dtype)

    def arrays(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """HxWx3 uint8 RGB arrays -> (N, D) embeddings."""
        return self._run(images, self._from_arrays)

    def encoded(self, datas: Sequence[bytes]) -> np.ndarray:
        """Encoded image files (JPEG decoded on the GPU, other formats on the CPU) -> (N, D) embeddings."""
        return self._run(datas, self._from_bytes)

    def _run(self, items: Sequence[Any], prepare: Callable[[Any], Any]) -> np.ndarray:
        import torch
        import torch.nn.functional as F

        from operators.models.precision import attention_context

        bs = self.batch_size
        batches = [items[i : i + bs] for i in range(0, len(items), bs)]
        outs = []
        with torch.inference_mode(), attention_context(self.attention):
            for x in self._prefetch(batches, prepare):
                n = x.shape[0]
                if self.fixed_shape and n < bs:  # one shape for the compiled graph: pad, then drop the padding
                    x = torch.cat([x, x.new_zeros((bs - n, *x.shape[1:]))])
                outs.append(F.normalize(self.forward(x)[:n].float(), dim=-1))
            if not outs:
                return np.zeros((0, 0), np.float32)
            return torch.cat(outs).cpu().numpy()
