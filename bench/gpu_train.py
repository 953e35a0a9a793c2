"""GPU check, part `train`: samples/s and MFU of the ACE 0.6B DiT training step in bf16 on one GPU, measured by
bench/bench_train_gpu.py with its defaults (ACE-0.6B, 512 px, 2 frames, batch 8, 5 warm-up + 20 timed steps, blocks
compiled, no attention mask: the flash path; see its docstring for what is timed), from precomputed latents (the
DiT step alone) and with the VAE and T5-XXL encoding online beside it (`--encoders both`). This wrapper runs that
script and reads its table back into rows.
`--cpu-smoke` passes `--cpu-smoke` on (a tiny config on CPU plus its FLOP-formula check).

bench_train_gpu.py imports datagen.trainer.models and datagen.trainer.distributed only (torch, no Ray), so it runs
on the lent machine from a copy of the working tree without installing datagen."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from gpu_common import ROOT, parser, row, write


def parse_table(text: str) -> dict[str, dict[str, str]]:
    """The last markdown table bench_train_gpu.py printed: {encoders: {column: value}}, one per data row."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip().startswith("|")]
    heads = [i for i, ln in enumerate(lines) if "samples/s" in ln and "MFU" in ln]
    if not heads or heads[-1] + 2 >= len(lines):
        raise SystemExit("bench_train_gpu.py printed no result table:\n" + text[-2000:])
    h = heads[-1]
    cells = lambda ln: [c.strip() for c in ln.strip("|").split("|")]  # noqa: E731
    rows = [dict(zip(cells(lines[h]), cells(ln))) for ln in lines[h + 2 :]]
    return {r.get("encoders", "precomputed"): r for r in rows}


def mfu_fraction(text: str) -> float | None:
    """'45.2%' -> 0.452; None where the GPU's peak is unknown."""
    return float(text.rstrip("%")) / 100 if text.endswith("%") else None


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("extra", nargs="*", help="more arguments for bench_train_gpu.py (after --)")
    args = ap.parse_args()
    cmd = [
        sys.executable,
        str(ROOT / "bench" / "bench_train_gpu.py"),
        "--encoders",
        "both",
        *(["--cpu-smoke"] if args.cpu_smoke else []),
        *args.extra,
    ]
    p = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    sys.stderr.write(p.stdout[-4000:] + p.stderr[-4000:])
    if p.returncode != 0:
        raise SystemExit(f"bench_train_gpu.py exited {p.returncode}")
    table = parse_table(p.stdout)
    t = table["precomputed"]
    setup = next((ln for ln in p.stdout.splitlines() if " x" in ln and "strategy" in ln), "").strip()
    what = (
        f"{t['config']} DiT ({t['params']} params) train step, {t['res']} px, {t['frames']} frames, batch "
        f"{t['batch/GPU']}/GPU"
    )
    detail = (
        f"{setup}; {t['step ms']} ms/step, {t['tokens/s']} image tokens/s, {t['TFLOP/s']} TFLOP/s, peak "
        f"{t['mem GiB']} GiB"
    )
    rows = [
        row("train_samples_per_s", what + ", from precomputed latents", f"{t['samples/s']} samples/s", detail, **t),
        row(
            "train_mfu",
            what,
            t["MFU"],
            "model FLOPs (analytic, forward x 3) / dense bf16 peak of the GPU",
            mfu_fraction=mfu_fraction(t["MFU"]),
            **t,
        ),
    ]
    online = table.get("online")
    if online:
        rows.append(
            row(
                "train_online_samples_per_s",
                what + ", encoding online (SD VAE + T5-XXL every step)",
                f"{online['samples/s']} samples/s",
                f"{online['step ms']} ms/step, MFU of the DiT {online['MFU']}; peak {online['mem GiB']} GiB",
                **online,
            )
        )
    else:
        no = next((ln for ln in p.stdout.splitlines() if ln.startswith("online encoders")), "not measured")
        rows.append(row("train_online_samples_per_s", what + ", encoding online", "not measured", no))
    precomputed = float(t["samples/s"])
    metrics = {
        "train_samples_per_s": precomputed,
        "train_mfu": mfu_fraction(t["MFU"]),
        "train_samples_per_s_precomputed": precomputed,  # the DiT step alone: what training from latents costs
        "train_samples_per_s_online": float(online["samples/s"]) if online else None,
    }
    write(
        args.json,
        "train",
        rows,
        metrics=metrics,
        command=" ".join(str(Path(c).relative_to(ROOT)) if c.startswith(str(ROOT)) else c for c in cmd[1:]),
    )


if __name__ == "__main__":
    main()
