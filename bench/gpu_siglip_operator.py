"""GPU check, part `siglip_operator`: the `siglip_features` operator end to end from JPEG files on disk, as a Ray
worker runs it (no Ray needed), against the model alone in the same process.

GPU discipline first (a worker given no GPU sees no CUDA; one given GPU 0 resolves `device: auto` to cuda and
`precision: auto` to bf16). Then SigLIP SO400M/14 at 384 px is loaded through the operator's own checkpoint-file
path (random weights, saved and loaded as users' checkpoints are; open_clip travels to the lent machine as a wheel)
and timed three ways on the same compiled tower: the model alone on ready tensors; the operator from JPEG files
(read, nvjpeg decode, resize, normalise on the GPU, the next batch prepared while this one runs); the operator from
decoded arrays (the pipeline's path, where the read stage decodes on CPU workers). The files are photo-like
1024x768 JPEGs written first (so they are in the page cache: "disk" here means the file read, not the drive).
The part's JSON carries `metrics`: siglip_operator_images_per_s (from files), siglip_operator_arrays_images_per_s,
siglip_operator_model_images_per_s, siglip_operator_fraction_of_model.

    python bench/gpu_siglip_operator.py --json out.json              # on a GPU machine with open_clip (wheel)
    python bench/gpu_siglip_operator.py --json out.json --cpu-smoke  # tiny sizes on CPU: the same code path
"""

from __future__ import annotations

import io
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from gpu_common import ROOT, device, parser, peak_mem_gib, row, sync, write

sys.path.insert(0, str(ROOT))

HIDDEN = (
    "from datagen import devices; devices.assign_gpus([]); import torch; "
    "print(devices.resolve_device('auto'), torch.cuda.is_available())"
)


def photo_like(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A smooth scene with edges and fine texture: compresses and decodes like a photo, unlike random noise."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.empty((h, w, 3), np.float32)
    for c in range(3):
        fx, fy, ph = rng.uniform(0.002, 0.02, 2).tolist() + [rng.uniform(0, 6.3)]
        img[..., c] = 128 + 70 * np.sin(xx * fx + ph) * np.cos(yy * fy)
    for _ in range(6):  # a few flat objects with sharp edges
        y0, x0 = rng.integers(0, h - h // 4), rng.integers(0, w - w // 4)
        img[y0 : y0 + rng.integers(h // 10, h // 4), x0 : x0 + rng.integers(w // 10, w // 4)] = rng.uniform(0, 255, 3)
    img += rng.normal(0, 6, img.shape).astype(np.float32)  # sensor-like grain
    return np.clip(img, 0, 255).astype(np.uint8)


def write_jpegs(folder: Path, n_distinct: int, h: int, w: int) -> list[Path]:
    from PIL import Image

    rng = np.random.default_rng(0)
    paths = []
    for i in range(n_distinct):
        buf = io.BytesIO()
        Image.fromarray(photo_like(rng, h, w)).save(buf, format="JPEG", quality=90)
        p = folder / f"photo_{i:04d}.jpg"
        p.write_bytes(buf.getvalue())
        paths.append(p)
    return paths


def main() -> int:
    ap = parser(__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=2048, help="images timed per path")
    ap.add_argument("--files", type=int, default=256, help="distinct JPEG files written (read round robin)")
    ap.add_argument("--batch", type=int, default=256)
    args = ap.parse_args()
    import torch
    from safetensors.torch import save_file

    from datagen import devices
    from operators.features.siglip import SiglipFeatures, SiglipFeaturesConfig

    dev = device(args.cpu_smoke)
    data: dict = {}
    hidden = subprocess.run([sys.executable, "-c", HIDDEN], capture_output=True, text=True, cwd=ROOT).stdout.split()
    data["worker_without_gpu"] = " ".join(hidden)  # expect: cpu False
    devices.assign_gpus([] if args.cpu_smoke else ["0"])
    data["worker_with_gpu0_device_auto"] = devices.resolve_device("auto")
    with tempfile.TemporaryDirectory() as tmp:
        if args.cpu_smoke:
            from datagen.pairing.tiny_models import make_tiny_siglip

            tiny = make_tiny_siglip(Path(tmp))
            model, ckpt = tiny["model"], tiny["file"]
            n, bs, n_files, hw = 16, 4, 8, (96, 128)
            # the device path (tensor preprocessing, prefetch loop) on the CPU; no inductor build on a CI machine
            extra = {"preprocess_on_device": True, "compile": False}
        else:
            import open_clip

            model, n, bs, n_files, hw = "ViT-SO400M-14-SigLIP-384", args.images, args.batch, args.files, (768, 1024)
            extra = {}
            t0 = time.perf_counter()
            clip = open_clip.create_model(model, pretrained=None)
            ckpt = str(Path(tmp) / "so400m.safetensors")
            save_file({k: v.contiguous() for k, v in clip.state_dict().items()}, ckpt)
            del clip
            data["checkpoint_written_s"] = round(time.perf_counter() - t0, 1)
        t0 = time.perf_counter()
        paths = write_jpegs(Path(tmp), n_files, *hw)
        data["files_written_s"] = round(time.perf_counter() - t0, 1)
        data["file_kib"] = round(sum(p.stat().st_size for p in paths) / len(paths) / 1024, 1)
        op = SiglipFeatures(SiglipFeaturesConfig(model=model, pretrained=ckpt, batch_size=bs, **extra))
        res = op.resources()
        data["resources"] = {"num_gpus": res.num_gpus, "gpus_if_available": res.gpus_if_available}
        t0 = time.perf_counter()
        op.setup()
        data["setup_s"] = round(time.perf_counter() - t0, 1)
        data["device"], data["dtype"] = op._device, str(op._dtype)
        enc = op._encoder
        assert enc is not None, "the device path did not engage"
        per_call = bs * op.batches_per_call()  # what FeatureOperator.process hands compute at once

        def from_files(names: list[Path]) -> list:
            return op.compute_encoded([p.read_bytes() for p in names])

        from datagen.ingest.decode import decode_image

        arrays = [decode_image(p.read_bytes())[0] for p in paths[:per_call]]
        order = [paths[i % len(paths)] for i in range(n)]
        t0 = time.perf_counter()
        from_files(order[:per_call])  # warm-up: compiles the tower for the batch shape, starts nvjpeg
        op.compute(arrays[:bs])
        sync(dev)
        data["warmup_s"] = round(time.perf_counter() - t0, 1)
        if dev.type == "cuda":
            torch.cuda.reset_peak_memory_stats(dev)

        def rate(fn, items: list) -> float:
            sync(dev)
            t = time.perf_counter()
            done = 0
            for i in range(0, len(items), per_call):
                done += len(fn(items[i : i + per_call]))
            sync(dev)
            return done / (time.perf_counter() - t)

        enc.decoded_on_gpu = 0
        files_ips = rate(from_files, order)
        data["jpegs_decoded_on_gpu"] = enc.decoded_on_gpu
        arrays_ips = rate(op.compute, [arrays[i % len(arrays)] for i in range(n)])
        x = enc._from_arrays(arrays[:bs])
        sync(dev)
        with torch.inference_mode():
            from operators.models.precision import attention_context

            with attention_context(enc.attention):
                enc.forward(x)
                sync(dev)
                t = time.perf_counter()
                steps = max(1, n // bs)
                for _ in range(steps):
                    enc.forward(x)
                sync(dev)
        model_ips = steps * bs / (time.perf_counter() - t)
        out = from_files(order[:2])
        data["embedding_dim"] = int(out[0].embedding.shape[0])
        data.update(batch=bs, batches_per_call=op.batches_per_call(), images_timed=n, image_size=f"{hw[1]}x{hw[0]}")
        data["peak_mem_gib"] = peak_mem_gib(dev)
    frac = files_ips / model_ips
    metrics = {
        "siglip_operator_images_per_s": files_ips,
        "siglip_operator_arrays_images_per_s": arrays_ips,
        "siglip_operator_model_images_per_s": model_ips,
        "siglip_operator_fraction_of_model": frac,
    }
    name = "SigLIP SO400M/14 384 px" if not args.cpu_smoke else "tiny SigLIP (smoke)"
    write(
        args.json,
        "siglip_operator",
        [
            row(
                "siglip_operator_img_per_s",
                f"siglip_features operator, {name}, from {hw[1]}x{hw[0]} JPEG files, batch {bs}, {data['dtype']}, "
                f"{data['device']}",
                f"{files_ips:,.1f} img/s",
                f"{100 * frac:.0f}% of the model alone in the same run ({model_ips:,.1f} img/s); from decoded "
                f"arrays {arrays_ips:,.1f} img/s; {data['jpegs_decoded_on_gpu']} of {n} JPEGs decoded on the GPU; "
                f"setup {data['setup_s']} s, warm-up {data['warmup_s']} s",
                **data,
                **metrics,
            )
        ],
        metrics=metrics,
    )
    ok = data["worker_without_gpu"] == "cpu False" and (
        args.cpu_smoke or (data["device"] == "cuda" and "bfloat16" in data["dtype"])
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
