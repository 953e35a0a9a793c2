"""GPU benchmark of the instruction captioner path: the same CaptionerInstructions stage the pipeline runs, on
real photo pairs, through the vLLM in-process engine, compared in the same run against transformers in-process
(and optionally a `vllm serve` endpoint). Prints pairs/s, latency per pair and the usable-answer rate.

Needs a CUDA GPU, vllm (`pip install 'datagen[vllm]'`) and an InternVL checkpoint on local disk or in the hub
cache, for example the `datagen finetune-captioner` output or OpenGVLab/InternVL3-2B-hf:

    python bench/gpu_vllm_captioner.py --model /models/datagen-instruction-captioner/merged --pairs 512 --tp 1
    python bench/gpu_vllm_captioner.py --model OpenGVLab/InternVL3-2B-hf --skip-transformers --openai-url http://localhost:8000/v1
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from datagen.batch import WorkBatch  # noqa: E402
from datagen.ingest.listing import BUILTIN_CAPTIONS, builtin_photos  # noqa: E402
from datagen.schema import Frame, Provenance, Sample, Turn  # noqa: E402
from operators.instructions.captioner import CaptionerInstructions  # noqa: E402
from operators.instructions.config import CaptionerConfig  # noqa: E402
from operators.instructions.templates import TemplateInstructions  # noqa: E402
from operators.models.backends.base import BackendConfig  # noqa: E402


def edited(image: np.ndarray, k: int) -> np.ndarray:
    """A plausible 'result' image for a pair: real global edits a captioner can describe."""
    import cv2

    kind = k % 4
    if kind == 0:
        return np.ascontiguousarray(image[:, ::-1])
    if kind == 1:
        g = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
        return np.repeat(g[..., None], 3, axis=2)
    if kind == 2:
        hsv = cv2.cvtColor(image, cv2.COLOR_RGB2HSV)
        hsv[..., 0] = (hsv[..., 0].astype(int) + 60) % 180
        return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
    return cv2.GaussianBlur(image, (0, 0), 4)


def make_pairs(n: int, side: int) -> list[tuple[np.ndarray, np.ndarray, str]]:
    import cv2

    photos = []
    for rel, path in builtin_photos():
        bgr = cv2.imread(path, cv2.IMREAD_COLOR)
        s = side / max(bgr.shape[:2])
        bgr = cv2.resize(bgr, None, fx=s, fy=s, interpolation=cv2.INTER_AREA)
        photos.append((cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), BUILTIN_CAPTIONS.get(rel, "")))
    return [
        (photos[k % len(photos)][0], edited(photos[k % len(photos)][0], k), photos[k % len(photos)][1])
        for k in range(n)
    ]


def batch_of(pairs) -> WorkBatch:
    batch = WorkBatch("bench", {}, seed=0, recipe="bench")
    for k, (a, b, cap) in enumerate(pairs):
        turn = Turn("General Editing", "edit", [Frame(a)], Frame(b), caption=cap)
        batch.samples.append(
            Sample([turn], Provenance([f"bench://{k}"], [f"id{k}"], "bench_pairs", "1", params={"k": k}))
        )
    TemplateInstructions()(batch)
    return batch


def bench(name: str, backend: BackendConfig, pairs, warmup: int) -> dict:
    stage = CaptionerInstructions(CaptionerConfig(tasks=["General Editing"], backend=backend))
    why = stage.unavailable_reason()
    if why:
        return {"backend": name, "error": why}
    t0 = time.perf_counter()
    stage.setup()
    load = time.perf_counter() - t0
    stage(batch_of(pairs[:warmup]))  # compile / cuda graphs / first-call allocations
    batch = batch_of(pairs)
    t0 = time.perf_counter()
    stage(batch)
    secs = time.perf_counter() - t0
    methods = [s.current.instruction_method for s in batch.samples]
    example = next((s.current.instruction for s in batch.samples if s.current.instruction_method == "captioner"), "")
    return {
        "backend": name,
        "load_s": load,
        "pairs_per_s": len(pairs) / secs,
        "ms_per_pair": 1000 * secs / len(pairs),
        "usable": methods.count("captioner") / len(methods),
        "fallbacks": dict(batch.stats["captioner_instructions"].skipped),
        "example": example,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True)
    ap.add_argument("--pairs", type=int, default=256)
    ap.add_argument("--side", type=int, default=448, help="long side of the pair images")
    ap.add_argument("--tp", type=int, default=1, help="vLLM tensor_parallel_size")
    ap.add_argument("--batch-size", type=int, default=64, help="vLLM requests per call")
    ap.add_argument("--hf-batch-size", type=int, default=8, help="transformers requests per generate")
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument(
        "--trust-remote-code", action="store_true", help="original (non -hf) InternVL checkpoints under vLLM"
    )
    ap.add_argument("--skip-transformers", action="store_true")
    ap.add_argument("--openai-url", default="", help="also time a `vllm serve` endpoint serving --model")
    args = ap.parse_args()

    import torch

    if not torch.cuda.is_available():
        sys.exit("needs a CUDA GPU")
    pairs = make_pairs(args.pairs, args.side)
    common = dict(model=args.model, max_new_tokens=args.max_new_tokens, image_max_side=args.side)
    rows = []
    if not args.skip_transformers:
        # first, so that its memory is back before vLLM reserves gpu_memory_utilization of the card
        rows.append(
            bench(
                "transformers",
                BackendConfig(
                    kind="transformers", device="cuda", dtype="bfloat16", batch_size=args.hf_batch_size, **common
                ),
                pairs[: max(16, args.pairs // 4)],
                2,
            )
        )
        import gc

        gc.collect()
        torch.cuda.empty_cache()
    rows.append(
        bench(
            "vllm",
            BackendConfig(
                kind="vllm",
                tensor_parallel_size=args.tp,
                batch_size=args.batch_size,
                trust_remote_code=args.trust_remote_code,
                dtype="bfloat16",
                **common,
            ),
            pairs,
            8,
        )
    )
    if args.openai_url:
        rows.append(
            bench(
                "openai (vllm serve)",
                BackendConfig(
                    kind="openai",
                    base_url=args.openai_url,
                    concurrency=64,
                    batch_size=args.batch_size,
                    timeout_s=120,
                    **common,
                ),
                pairs,
                8,
            )
        )
    print(f"instruction captioner {args.model}: {args.pairs} pairs at {args.side}px, {torch.cuda.get_device_name()}")
    print(f"{'backend':<22} {'load s':>8} {'pairs/s':>9} {'ms/pair':>9} {'usable':>8}  fallbacks")
    for r in rows:
        if "error" in r:
            print(f"{r['backend']:<22} not run: {r['error']}")
            continue
        print(
            f"{r['backend']:<22} {r['load_s']:>8.1f} {r['pairs_per_s']:>9.2f} {r['ms_per_pair']:>9.1f} "
            f"{r['usable']:>8.1%}  {r['fallbacks']}"
        )
    for r in rows:
        if r.get("example"):
            print(f"  {r['backend']}: e.g. {r['example']!r}")


if __name__ == "__main__":
    main()
