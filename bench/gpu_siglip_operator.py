"""The `siglip_features` operator itself on a GPU, as a Ray worker runs it (no Ray needed): GPU discipline first (a
worker given no GPU sees no CUDA; one given GPU 0 resolves `device: auto` to cuda and `precision: auto` to bf16),
then SigLIP SO400M/14 at 384 px loaded through the operator's own checkpoint-file path (random weights, saved and
loaded as users' checkpoints are) and timed end to end, PIL preprocessing included, against the model alone.

    python bench/gpu_siglip_operator.py             # on a GPU machine with open_clip and pydantic (carried wheels)
    python bench/gpu_siglip_operator.py --cpu-smoke # tiny sizes on CPU: the same code path
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

HIDDEN = (
    "from datagen import devices; devices.assign_gpus([]); import torch; "
    "print(devices.resolve_device('auto'), torch.cuda.is_available())"
)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cpu-smoke", action="store_true")
    ap.add_argument("--images", type=int, default=1024, help="images timed per setting")
    args = ap.parse_args()
    import torch
    from safetensors.torch import save_file

    from datagen import devices
    from operators.features.siglip import SiglipFeatures, SiglipFeaturesConfig

    rows = {}
    hidden = subprocess.run([sys.executable, "-c", HIDDEN], capture_output=True, text=True, cwd=ROOT).stdout.split()
    rows["worker_without_gpu"] = " ".join(hidden)  # expect: cpu False
    devices.assign_gpus([] if args.cpu_smoke else ["0"])
    rows["worker_with_gpu0_device_auto"] = devices.resolve_device("auto")
    with tempfile.TemporaryDirectory() as tmp:
        if args.cpu_smoke:
            from datagen.pairing.tiny_models import make_tiny_siglip

            tiny = make_tiny_siglip(Path(tmp))
            model, ckpt, n, bs = tiny["model"], tiny["file"], 16, 8
        else:
            import open_clip

            model, n, bs = "ViT-SO400M-14-SigLIP-384", args.images, 256
            t0 = time.perf_counter()
            clip = open_clip.create_model(model, pretrained=None)
            ckpt = str(Path(tmp) / "so400m.safetensors")
            save_file({k: v.contiguous() for k, v in clip.state_dict().items()}, ckpt)
            del clip
            rows["checkpoint_written_s"] = round(time.perf_counter() - t0, 1)
        op = SiglipFeatures(SiglipFeaturesConfig(model=model, pretrained=ckpt, batch_size=bs))
        res = op.resources()
        rows["resources"] = {
            "num_gpus": res.num_gpus,
            "gpus_if_available": res.gpus_if_available,
            "num_cpus": res.num_cpus,
        }
        t0 = time.perf_counter()
        op.setup()
        rows["setup_s"] = round(time.perf_counter() - t0, 1)
        rows["device"], rows["dtype"] = op._device, str(op._dtype)
        rng = np.random.default_rng(0)
        images = [rng.integers(0, 256, (512, 640, 3), dtype=np.uint8) for _ in range(bs)]
        op.compute(images)  # warm-up
        for threads in [1, 2] if args.cpu_smoke else [1, 4, 8]:  # preprocessing threads = the actor's num_cpus
            op.config.num_cpus, op._pool = threads, None
            if op._device == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            done = 0
            while done < n:
                out = op.compute(images)
                done += len(out)
            if op._device == "cuda":
                torch.cuda.synchronize()
            rows[f"operator_img_per_s_{threads}_cpus"] = round(done / (time.perf_counter() - t0), 1)
        rows["embedding_dim"] = int(out[0].embedding.shape[0])
        x = torch.stack([op._transform(__import__("PIL.Image", fromlist=["Image"]).fromarray(im)) for im in images]).to(
            op._device, op._dtype
        )
        with torch.inference_mode():
            op._visual(x)
            if op._device == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            steps = max(1, n // bs)
            for _ in range(steps):
                op._visual(x)
            if op._device == "cuda":
                torch.cuda.synchronize()
        rows["model_only_img_per_s"] = round(steps * bs / (time.perf_counter() - t0), 1)
        rows["batch"], rows["images_timed"], rows["image_size"] = bs, done, "512x640 -> model input"
        if op._device == "cuda":
            rows["peak_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    print(json.dumps(rows, indent=1))
    if os.environ.get("OUT"):
        Path(os.environ["OUT"], "siglip_operator.json").write_text(json.dumps(rows, indent=1))
    ok = rows["worker_without_gpu"] == "cpu False" and (
        args.cpu_smoke or (rows["device"] == "cuda" and "bfloat16" in rows["dtype"])
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
