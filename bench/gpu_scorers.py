"""The model scorers on a GPU, as a Ray worker runs them (no Ray needed): clip_scores with CLIP ViT-L/14 (open_clip,
random weights saved as a checkpoint file and loaded through the operator's own path) plus the LAION aesthetic MLP,
dino_score with DINOv2-base (transformers, saved and loaded as a local checkpoint), and nsfw_score (open_nsfw ONNX on
onnxruntime's CUDA provider when onnxruntime-gpu is there, else labelled CPU). Samples/s end to end, preprocessing
included, on edit pairs at 512 px (every photo distinct: the per-partition memo saves nothing here); one JSON row per
scorer, with where its preprocessing ran. The CPU smoke run takes the device path (tensor preprocessing) on the CPU.

    python bench/gpu_scorers.py --json OUT.json                # on the GPU machine (carry open_clip, pydantic wheels)
    python bench/gpu_scorers.py --json OUT.json --cpu-smoke    # tiny sizes on CPU: the same code path
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.gpu_common import parser  # noqa: E402


def _samples(n: int, side: int):
    import numpy as np

    from datagen.schema import Frame, Provenance, Sample, Turn

    rng = np.random.default_rng(0)
    out = []
    for k in range(n):
        a = rng.integers(0, 255, (side, side, 3), np.uint8)
        b = a.copy()
        b[: side // 2] = 255 - b[: side // 2]
        out.append(
            Sample(
                [
                    Turn(
                        "General Editing",
                        "edit",
                        [Frame(a)],
                        Frame(b),
                        instruction="Invert the top of {image}.",
                        caption=f"a picture {k}",
                    )
                ],
                Provenance(["u"], [str(k)], "bench", "1"),
            )
        )
    return out


def _time(op, samples, batch_size: int) -> float:
    from datagen.batch import WorkBatch

    op(WorkBatch("img-00000", {}, 0, "r", samples=samples[:batch_size]))  # warm-up (CUDA kernels, allocator)
    t0 = time.perf_counter()
    op(WorkBatch("img-00000", {}, 0, "r", samples=samples))
    return len(samples) / (time.perf_counter() - t0)


def main() -> int:
    args = parser(__doc__.splitlines()[0]).parse_args()
    import torch

    from datagen import devices

    devices.assign_gpus([] if args.cpu_smoke else ["0"])
    n, side, bs = (8, 64, 4) if args.cpu_smoke else (1024, 512, 128)
    on_device = True if args.cpu_smoke else None  # None: the operators' default, on for CUDA
    samples = _samples(n, side)
    rows: dict[str, object] = {
        "device": devices.resolve_device("auto"),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none",
    }
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        try:
            import open_clip
            from safetensors.torch import save_file

            from operators.scoring.aesthetic_mlp import build_mlp
            from operators.scoring.clip import ClipScores, ClipScoresConfig

            if args.cpu_smoke:
                cfg = {
                    "embed_dim": 32,
                    "vision_cfg": {"image_size": 64, "layers": 1, "width": 32, "patch_size": 16, "head_width": 16},
                    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
                }
                local = tmp / "clip"
                local.mkdir()
                (local / "open_clip_config.json").write_text(json.dumps({"model_cfg": cfg, "preprocess_cfg": {}}))
                save_file(
                    {k: v.contiguous() for k, v in open_clip.CLIP(**cfg).state_dict().items()},
                    str(local / "open_clip_model.safetensors"),
                )
                model, pretrained, dim = "ViT-L-14", f"local-dir:{local}", 32
            else:
                clip = open_clip.create_model("ViT-L-14", pretrained=None)
                pretrained = str(tmp / "vit_l_14.safetensors")
                save_file({k: v.contiguous() for k, v in clip.state_dict().items()}, pretrained)
                model, dim = "ViT-L-14", 768
                del clip
            aes = tmp / "aesthetic.pth"
            torch.save(build_mlp(dim).state_dict(), aes)
            op = ClipScores(
                ClipScoresConfig(
                    model=model,
                    pretrained=pretrained,
                    aesthetic_checkpoint=str(aes),
                    batch_size=bs,
                    preprocess_on_device=on_device,
                )
            )
            op.setup()
            rows["clip_scores_preprocess"] = "on the model's device" if op._encoder else "PIL on the CPU"
            rows["clip_scores_samples_per_s"] = round(_time(op, samples, bs), 1)
            rows["clip_scores_scores"] = sorted(samples[0].provenance.scores)
        except ImportError as e:
            rows["clip_scores"] = f"skipped: {e}"
        from transformers import BitImageProcessor, Dinov2Config, Dinov2Model

        from operators.scoring.dino import DinoScore, DinoScoreConfig

        size = (
            dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64, image_size=56)
            if args.cpu_smoke
            else {}
        )
        Dinov2Model(Dinov2Config(patch_size=14, **size)).save_pretrained(tmp / "dino")  # Dinov2Config() is dinov2-base
        crop = 56 if args.cpu_smoke else 224
        BitImageProcessor(
            size={"shortest_edge": crop + crop // 7}, crop_size={"height": crop, "width": crop}
        ).save_pretrained(tmp / "dino")
        op = DinoScore(DinoScoreConfig(checkpoint=str(tmp / "dino"), batch_size=bs, preprocess_on_device=on_device))
        op.setup()
        rows["dino_score_preprocess"] = "on the model's device" if op._encoder else "transformers on the CPU"
        rows["dino_score_samples_per_s"] = round(_time(op, samples, bs), 1)
        try:
            import onnxruntime

            from operators.scoring.nsfw import NsfwScore, NsfwScoreConfig

            op = NsfwScore(NsfwScoreConfig(batch_size=bs))
            op.setup()
            rows["nsfw_provider"] = op._session.get_providers()[0]
            rows["nsfw_score_samples_per_s"] = round(_time(op, samples, bs), 1)
            rows["onnxruntime"] = onnxruntime.__version__
        except (ImportError, FileNotFoundError) as e:
            rows["nsfw_score"] = f"skipped: {e}"
    Path(args.json).write_text(json.dumps(rows, indent=1))
    print(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
