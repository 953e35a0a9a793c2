"""GPU check, part `latents`: images/s per GPU of the latents job (datagen/trainer/latents.py), end to end: a shard
folder of JPEG samples (one input photo + target each, 512 px) is written first, then the job reads it, decodes in
DataLoader workers, encodes every frame with SD's VAE and every instruction with T5-v1.1-XXL (random weights at the
published sizes, bf16), and writes the latents tars and their done-markers. One warm-up window is encoded first.

Needs datagen's shard dependencies (pydantic, webdataset, fsspec, pyarrow, opencv) and diffusers on the GPU machine:
carry their wheels. `--cpu-smoke`: tiny encoders and 64 px frames on CPU (checks the code path, not speed)."""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from gpu_common import ROOT, device, parser, peak_mem_gib, row, sync, write

sys.path.insert(0, str(ROOT))

WORDS = "make the {image} look like a watercolor painting with soft light and a blue sky over the old town".split()


def write_shards(root: Path, n: int, px: int, per_shard: int) -> None:
    import numpy as np

    from datagen import schema
    from datagen.schema import Frame, Provenance, Sample, Turn
    from datagen.shards.writer import PartitionWriter

    rng = np.random.default_rng(0)
    w = PartitionWriter(root, "img-00000", samples_per_shard=per_shard)
    for i in range(n):
        base = rng.integers(0, 256, (px // 8, px // 8, 3), dtype=np.uint8)  # smooth photos: JPEG sizes like real ones
        photo = np.kron(base, np.ones((8, 8, 1), np.uint8))
        turn = Turn(
            task="Style Transfer",
            direction="edit",
            inputs=[Frame(photo)],
            target=Frame(255 - photo, role=schema.ROLE_PHOTO),
            instruction=" ".join(rng.permutation(WORDS)[: 8 + i % 12]),
            instruction_method="template",
        )
        prov = Provenance(sources=[f"file:///p{i}.jpg"], source_ids=[f"id{i}"], operator="bench", operator_version="1")
        w.add(Sample([turn], prov))
    w.close()


def build_encoders(dev, smoke: bool, corpus: list[str], tmp: Path):
    """LatentCodec + TextEncoder around SD's VAE and T5-XXL built on the device (tiny ones for the smoke run)."""
    import torch
    from diffusers import AutoencoderKL
    from transformers import T5Config, T5EncoderModel, T5Tokenizer

    from datagen.trainer.encoders import LatentCodec, TextEncoder, tiny_unigram_vocab

    dtype = torch.float32 if smoke else torch.bfloat16
    if smoke:
        vae_kw = dict(block_out_channels=(16, 16, 32, 32), layers_per_block=1, norm_num_groups=8)
        t5_kw = dict(d_model=32, d_kv=8, d_ff=64, num_layers=2, num_heads=4)
    else:
        vae_kw = dict(block_out_channels=(128, 256, 512, 512), layers_per_block=2)
        t5_kw = dict(d_model=4096, d_kv=64, d_ff=10240, num_layers=24, num_heads=64)
    tokenizer = T5Tokenizer(vocab=tiny_unigram_vocab(corpus), extra_ids=0)
    with torch.device(dev):
        vae = AutoencoderKL(
            down_block_types=("DownEncoderBlock2D",) * 4,
            up_block_types=("UpDecoderBlock2D",) * 4,
            latent_channels=4,
            **vae_kw,
        ).to(dtype)
        t5 = T5EncoderModel(
            T5Config(vocab_size=max(len(tokenizer), 32128 if not smoke else 0), feed_forward_proj="gated-gelu", **t5_kw)
        ).to(dtype)
    return LatentCodec(vae, dev, dtype), TextEncoder(t5, tokenizer, dev, dtype)


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--samples", type=int, default=512)
    ap.add_argument("--px", type=int, default=512)
    ap.add_argument("--batch", type=int, default=32, help="frames per VAE batch")
    ap.add_argument("--workers", type=int, default=8, help="decoding workers")
    args = ap.parse_args()
    dev = device(args.cpu_smoke)
    if args.cpu_smoke:
        args.samples, args.px, args.batch, args.workers = 12, 64, 8, 0

    from datagen.trainer.config import DataConfig
    from datagen.trainer.examples import TrainExample
    from datagen.trainer.latents import encode_window, run_latents_job
    from datagen.trainer.loader import list_shards

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "shards"
        t0 = time.perf_counter()
        write_shards(root, args.samples, args.px, per_shard=max(1, args.samples // 16))  # work for 8 workers
        write_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        codec, text = build_encoders(dev, args.cpu_smoke, WORDS, Path(tmp))
        build_s = time.perf_counter() - t0
        side = args.px
        data = DataConfig(path=str(root), max_tokens=(side // 16) ** 2, max_text_tokens=120, num_workers=args.workers)
        import numpy as np

        warm = [
            TrainExample(
                "warm",
                np.zeros((2, side, side, 3), np.uint8),
                np.zeros((2, side, side), np.uint8),
                [0, 0],
                [2, 1],
                [False, True],
                ["warm up"],
                [{}],
            )
        ] * max(1, args.batch // 2)
        encode_window(warm, codec, text, data.max_text_tokens, args.batch)  # cuDNN picks its kernels here
        sync(dev)
        shards = list_shards(str(root))
        summary = run_latents_job(
            shards, codec, text, data, {"bench": "gpu_latents"}, batch_frames=args.batch, num_workers=args.workers
        )
        written = sorted(p.name for p in (root / "latents").iterdir())
    assert summary["encoded_shards"] == len(shards) and summary["frames"] == 2 * args.samples, summary
    assert len(written) == 2 * len(shards), written  # a tar and a done-marker per shard
    ips = summary["steady_images_per_s"]  # from the first decoded window on: the workers' start-up is once per job
    what = (
        f"latents job end to end: {args.samples} samples x 2 frames, {side} px JPEG, "
        + ("tiny VAE/T5 (smoke)" if args.cpu_smoke else "SD VAE + T5-v1.1-XXL, bf16")
        + f", {dev.type}"
    )
    write(
        args.json,
        "latents",
        [
            row(
                "latents_images_per_s",
                what,
                f"{ips:,.1f} img/s",
                f"{summary['seconds']:.1f} s for {summary['frames']} frames in {len(shards)} shards with the "
                f"workers' start-up ({summary['images_per_s']:,.1f} img/s), VAE batch "
                f"{args.batch}, {args.workers} decoding workers; shards written in {write_s:.1f} s, encoders built "
                f"in {build_s:.1f} s" + (f"; peak mem {peak_mem_gib(dev)} GiB" if dev.type == "cuda" else ""),
                images_per_s=ips,
                frames=summary["frames"],
                seconds=summary["seconds"],
                px=side,
                batch=args.batch,
                workers=args.workers,
            )
        ],
        metrics={"latents_images_per_s": ips},
    )


if __name__ == "__main__":
    main()
