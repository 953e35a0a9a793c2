"""GPU check, part `env`: the date, the GPU (nvidia-smi name, memory, driver), torch/CUDA and library versions,
and which of the packages the pipeline would use on a cluster are importable here."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import platform
import shutil
import subprocess
import time

from gpu_common import parser, row, write


def _version(mod: str) -> str:
    """The version of an importable package, "not installed", or why it does not import."""
    try:
        if importlib.util.find_spec(mod) is None:
            return "not installed"
        m = importlib.import_module(mod)
    except Exception as e:  # noqa: BLE001  (a broken or stubbed install is reported, not fatal)
        return f"not importable ({type(e).__name__}: {str(e)[:80]})"
    v = getattr(m, "__version__", None)
    if v is None:
        try:
            v = importlib.metadata.version(mod)
        except importlib.metadata.PackageNotFoundError:
            v = "installed"
    return str(v)


def main() -> None:
    args = parser(__doc__).parse_args()
    rows = [
        row(
            "date",
            "date (UTC)",
            time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            f"host {platform.node()}, {'CPU smoke run' if args.cpu_smoke else 'GPU run'}",
        )
    ]

    smi = shutil.which("nvidia-smi")
    if smi:
        q = subprocess.run(
            [smi, "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        gpus = [ln.strip() for ln in q.stdout.splitlines() if ln.strip()]
        first = [s.strip() for s in gpus[0].split(",")] if gpus else ["?", "?", "?"]
        rows.append(
            row(
                "gpu",
                "nvidia-smi: name, memory",
                f"{len(gpus)} x {first[0]}, {first[1]}",
                f"driver {first[2]}" if len(first) > 2 else q.stderr.strip()[-200:],
                gpus=gpus,
            )
        )
    else:
        rows.append(row("gpu", "nvidia-smi: name, memory", "no nvidia-smi", "no NVIDIA driver on this machine"))

    import torch

    cuda = torch.version.cuda or "none"
    dev = (
        f"{torch.cuda.device_count()} visible, {torch.cuda.get_device_name(0)}"
        if torch.cuda.is_available()
        else "no CUDA device"
    )
    rows.append(
        row(
            "torch",
            "torch / CUDA",
            f"torch {torch.__version__}, CUDA {cuda}",
            dev,
            cudnn=torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        )
    )
    libs = {m: _version(m) for m in ("timm", "transformers", "faiss", "ray", "open_clip", "diffusers")}
    rows.append(
        row(
            "libraries",
            "library versions",
            ", ".join(f"{k} {v}" for k, v in libs.items() if k in ("timm", "transformers")),
            "; ".join(f"{k} {v}" for k, v in libs.items() if k not in ("timm", "transformers")),
            **libs,
        )
    )
    write(args.json, "env", rows, python=platform.python_version())


if __name__ == "__main__":
    main()
