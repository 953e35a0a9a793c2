"""Does the shard loader outpace the tiny trainer on CPU? Measures the loader alone (samples/s with 0, 1, 2
DataLoader workers), the tiny trainer alone (samples/s on batches already in memory), and both together as
`datagen train` runs them (share of each step spent waiting for data). Prints a table.

    python bench/bench_loader.py [--data out/demo] [--batches 40] [--max-tokens 16]

Without --data it first writes a shard folder with the demo recipe (real photos, all weight-free conditions).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from itertools import islice
from pathlib import Path

os.environ.setdefault("RAY_AUTH_MODE", "disabled")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from datagen.trainer.config import load_train_recipe  # noqa: E402
from datagen.trainer.distributed import DistInfo  # noqa: E402
from datagen.trainer.encoders import load_text_encoder, load_vae, prepare_tiny_models  # noqa: E402
from datagen.trainer.loader import ShardStream, make_loader  # noqa: E402
from datagen.trainer.loop import cpu_threads  # noqa: E402
from datagen.trainer.models import ACEDiT, size_spec  # noqa: E402
from datagen.trainer.objectives import make_objective, training_loss  # noqa: E402


def build_shards(out: Path, limit: int) -> None:
    from pipelines import load_recipe, run

    run(
        load_recipe(
            "configs/demo.yaml",
            [f"output.dir={out}", f"input.limit={limit}", "runtime.executor=local", "runtime.progress=false"],
        )
    )


def loader_rate(recipe, tokenizer, workers: int, n: int) -> tuple[float, float]:
    """(samples/s after the first batch, seconds to the first batch)."""
    stream = ShardStream(recipe.data, tokenizer, seed=0)
    it = iter(make_loader(stream, workers))
    t0 = time.perf_counter()
    next(it)
    first = time.perf_counter() - t0
    t1 = time.perf_counter()
    samples = sum(b.n_samples for b in islice(it, n))
    return samples / (time.perf_counter() - t1), first


def make_trainer(recipe, codec, text):
    spec = size_spec(recipe.model.size)
    torch.manual_seed(0)
    model = ACEDiT(latent_channels=codec.channels, text_dim=text.dim, **spec)
    opt = torch.optim.AdamW(model.parameters(), lr=recipe.optim.lr)
    objective = make_objective(recipe.loss)

    def step(batch, i):
        res = training_loss(
            model, objective, codec, text, batch, recipe.loss, torch.Generator().manual_seed(i), spec["patch"], False
        )
        res.loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return res.n_samples

    return step


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", help="shard folder (default: build one from configs/demo.yaml)")
    ap.add_argument("--limit", type=int, default=12, help="photos for the built shard folder")
    ap.add_argument("--batches", type=int, default=40)
    ap.add_argument("--max-tokens", type=int, default=16, help="data.max_tokens (train_tiny: 16 = 64x64 frames)")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench_loader_"))
    data = Path(args.data) if args.data else tmp / "shards"
    if not args.data:
        build_shards(data, args.limit)
    recipe = load_train_recipe(
        "configs/train_tiny.yaml", [f"data.path={data}", f"data.max_tokens={args.max_tokens}", "data.holdout=0"]
    )
    from datagen.shards.reader import iter_samples

    corpus = [t.instruction for s in islice(iter_samples(data), 200) for t in s.turns]
    prepare_tiny_models(tmp / "tiny", corpus, None, vae=True, t5=True)
    cpu = torch.device("cpu")
    torch.set_num_threads(cpu_threads(recipe, DistInfo(0, 1, 0, cpu)))  # what `datagen train` uses here
    codec = load_vae(recipe.vae, cpu, tmp / "tiny" / "vae")
    text = load_text_encoder(recipe.text_encoder, cpu, tmp / "tiny" / "t5")

    rows = []
    for w in (0, 1, 2):
        rate, first = loader_rate(recipe, text.tokenizer, w, args.batches)
        rows.append((f"loader, {w} worker(s)", rate, f"first batch after {first:.1f}s"))

    step = make_trainer(recipe, codec, text)
    cached = list(islice(iter(ShardStream(recipe.data, text.tokenizer, seed=0)), args.batches + 3))
    for i, b in enumerate(cached[:3]):
        step(b, i)  # warm-up: first calls per bucket shape are slower
    t0 = time.perf_counter()
    n = sum(step(b, i) for i, b in enumerate(cached[3:]))
    train_rate = n / (time.perf_counter() - t0)
    rows.append(("tiny trainer, data in memory", train_rate, "model+VAE+T5 step, CPU"))

    # both together, as `datagen train` runs them (train_tiny: one worker)
    it = iter(make_loader(ShardStream(recipe.data, text.tokenizer, seed=1), recipe.data.num_workers))
    next(it)
    wait = compute = 0.0
    n = 0
    for i in range(args.batches):
        t0 = time.perf_counter()
        b = next(it)
        t1 = time.perf_counter()
        n += step(b, i)
        t2 = time.perf_counter()
        wait += t1 - t0
        compute += t2 - t1
    rows.append(
        (
            f"train loop, {recipe.data.num_workers} worker",
            n / (wait + compute),
            f"{100 * wait / (wait + compute):.1f}% of step time waiting for data",
        )
    )

    print(
        f"\nshards: {data}   frames: data.max_tokens={args.max_tokens} cells   batch: {recipe.data.batch_size} "
        f"samples   threads: {torch.get_num_threads()}"
    )
    print(f"| {'what':<32} | {'samples/s':>9} | note")
    print(f"|{'-' * 34}|{'-' * 11}|{'-' * 40}")
    for name, rate, note in rows:
        print(f"| {name:<32} | {rate:>9.1f} | {note}")
    best_loader = max(r[1] for r in rows[:3])
    verdict = "yes" if best_loader > train_rate else "NO"
    print(
        f"\nloader outpaces the tiny trainer: {verdict} ({best_loader:.1f} vs {train_rate:.1f} samples/s, "
        f"x{best_loader / train_rate:.1f})"
    )


if __name__ == "__main__":
    main()
