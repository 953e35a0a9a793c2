"""Helpers shared by the GPU check's parts (bench/gpu_*.py, driven by bench/gpu_check.sh).

Every part runs in its own process under `timeout`, writes one JSON file (`--json PATH`) with its rows, and
imports only torch (plus timm for SigLIP, faiss when present): the lent GPU machine has no Ray, open_clip, faiss
or diffusers, and nothing can be downloaded there."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # random init only: never reach for a hub
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

# dense bf16 tensor-core peaks, the same table as bench/bench_train_gpu.py (longest names first where they share one)
PEAK_BF16 = {"H200": 989e12, "H100 PCIe": 756e12, "H100": 989e12, "A100": 312e12, "L40S": 362e12, "B200": 2250e12}


def parser(description: str) -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--json", required=True, help="write this part's result here")
    ap.add_argument("--cpu-smoke", action="store_true", help="tiny sizes on CPU: checks the code path, not speed")
    return ap


def device(cpu_smoke: bool):
    import torch

    if cpu_smoke:
        torch.set_num_threads(1)  # the CI machine has 2 cores shared by everyone
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise SystemExit("no CUDA device (use --cpu-smoke to check the code path on CPU)")
    return torch.device("cuda", 0)


def sync(dev) -> None:
    import torch

    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def peak_bf16(dev) -> float | None:
    import torch

    if dev.type != "cuda":
        return None
    name = torch.cuda.get_device_name(dev)
    return next((v for k, v in PEAK_BF16.items() if k in name), None)


def peak_mem_gib(dev) -> float | None:
    import torch

    return round(torch.cuda.max_memory_allocated(dev) / 2**30, 2) if dev.type == "cuda" else None


def row(key: str, what: str, value: str, detail: str = "", **data: Any) -> dict[str, Any]:
    """One line of the report: a fixed key (the test checks every key is there), what was measured (with its
    sizes), the figure, and how it was obtained."""
    return {"key": key, "what": what, "value": value, "detail": detail, "data": data}


def write(path: str, part: str, rows: list[dict[str, Any]], **extra: Any) -> None:
    out = {"part": part, "rows": rows, "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **extra}
    Path(path).write_text(json.dumps(out, indent=1))
    for r in rows:
        print(f"{r['key']}: {r['value']}  ({r['what']}; {r['detail']})", file=sys.stderr)
