"""GPU check, last step: merge the parts' JSON files into one table (stdout) and one JSON file.

    python bench/gpu_report.py WORKDIR --mode gpu|smoke [--out DIR] [--results DIR] [--commit SHA]
    python bench/gpu_report.py --table bench/results/gpu-DATE.json     # the docs' GPU table, from a results file

--results DIR also writes DIR/gpu-YYYY-MM-DD.json (gpu-smoke-... in smoke mode): the headline figures under fixed
keys (RESULT_KEYS; null where a part did not give them, MFU as a fraction), then every row and part status. The
docs' GPU table is made from that file; bench/results/gpu-*.json is committed.

WORKDIR holds status.tsv (part, status, rc, seconds, limit; written by bench/gpu_check.sh), PART.json and
PART.log. Every expected row is printed whatever happened to its part: a failed, timed-out or skipped part shows
that, with the last line of its log. Exit status 1 when a part failed or timed out."""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

# part -> the rows it must produce (tests/test_gpu_check.py checks that every one is printed)
EXPECTED = {
    "env": ["date", "gpu", "torch", "libraries"],
    "siglip": ["siglip_img_per_s"],
    "siglip_operator": ["siglip_operator_img_per_s"],
    "train": ["train_samples_per_s", "train_mfu", "train_online_samples_per_s"],
    "latents": ["latents_images_per_s"],
    "inpaint": ["inpaint_seconds_per_edit", "inpaint_batch_sweep"],
}
# parts that run only when asked for (gpu_check.sh --with PART): their rows are printed when they ran
OPTIONAL = {
    "kmeans": ["kmeans_small_k", "kmeans_large_k"],
}
# the results file's headline keys (tests/test_gpu_check.py checks them)
RESULT_KEYS = (
    "date",
    "device",
    "commit",
    "siglip_model_images_per_s",
    "siglip_model_mfu",
    "siglip_operator_images_per_s",
    "train_samples_per_s",
    "train_mfu",
    "train_samples_per_s_precomputed",
    "train_samples_per_s_online",
    "inpaint_seconds_per_edit",
    "latents_images_per_s",
)


def headline(rows: list[dict], metrics: dict, date: str, commit: str) -> dict:
    """RESULT_KEYS from the parts' `metrics` blocks (only parts that ran); every other metric a part reported
    (the inpainting part's edits per GPU-hour, best batch and Step1X-Edit reference among them) follows them."""
    val = {r["key"]: r["value"] for r in rows if r["status"] == "ok"}
    out = {"date": date, "device": val.get("gpu"), "commit": commit}
    out.update({k: metrics.get(k) for k in RESULT_KEYS if k not in out})
    out.update({k: v for k, v in sorted(metrics.items()) if k not in out})
    return out


def _last_error(log: Path) -> str:
    if not log.exists():
        return "no log"
    lines = [ln.strip() for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
    bad = [ln for ln in lines if any(w in ln for w in ("Error", "error", "exited", "No ", "no CUDA", "Killed"))]
    return (bad or lines or ["empty log"])[-1][:240]


# the docs' table: (results key, what, unit); MFU keys are fractions, shown as percentages
TABLE = (
    ("siglip_model_images_per_s", "SigLIP SO400M/14 alone, bf16, 384 px", "images/s"),
    ("siglip_model_mfu", "SigLIP SO400M/14 alone, MFU", "%"),
    ("siglip_operator_images_per_s", "siglip_features operator end to end", "images/s"),
    ("train_samples_per_s_precomputed", "ACE 0.6B DiT training from precomputed latents", "samples/s"),
    ("train_mfu", "ACE 0.6B DiT training, MFU", "%"),
    ("train_samples_per_s_online", "ACE 0.6B DiT training, VAE + T5-XXL online", "samples/s"),
    ("latents_images_per_s", "latents job per GPU (SD VAE + T5-XXL)", "images/s"),
    # Step1X-Edit's published figure (README: batch 1, 28 steps, one H800) is the yardstick beside ours
    ("inpaint_seconds_per_edit", "SDXL inpainting, 1024 px, 30 steps, best batch (Step1X-Edit: 22 s, H800)", "s/edit"),
    ("inpaint_edits_per_gpu_hour", "SDXL inpainting, edits per GPU-hour at that batch", "edits/GPU-h"),
)


def results_table(result: dict) -> str:
    """A results file's headline figures as the markdown table the docs show."""
    lines = [
        f"GPU check of {result['date']} on {result['device']}, commit {str(result['commit'])[:10]}:",
        "",
        "| what | figure |",
        "| --- | ---: |",
    ]
    for key, what, unit in TABLE:
        v = result.get(key)
        if v is None:
            cell = "not measured"
        elif unit == "%":
            cell = f"{100 * v:.1f}%"
        else:
            cell = f"{v:,.{ {'s/edit': 3, 'edits/GPU-h': 0}.get(unit, 1) }f} {unit}"
        lines.append(f"| {what} | {cell} |")
    return "\n".join(lines)


def main() -> int:
    if len(sys.argv) == 3 and sys.argv[1] == "--table":
        print(results_table(json.loads(Path(sys.argv[2]).read_text())))
        return 0
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("work", type=Path)
    ap.add_argument("--mode", choices=["gpu", "smoke"], default="gpu")
    ap.add_argument("--out", type=Path, help="write gpu_check.json and the parts' logs here")
    ap.add_argument("--total-s", type=float)
    ap.add_argument(
        "--results", type=Path, action="append", default=[], help="write the dated results file gpu-DATE.json here"
    )
    ap.add_argument("--commit", default="unknown", help="the commit measured")
    args = ap.parse_args()

    status: dict[str, dict] = {}
    tsv = args.work / "status.tsv"
    for ln in tsv.read_text().splitlines() if tsv.exists() else []:
        name, st, rc, secs, limit = (ln.split("\t") + ["", "", "", ""])[:5]
        status[name] = {"status": st, "rc": int(rc or 0), "seconds": int(secs or 0), "limit_s": int(limit or 0)}

    rows: list[dict] = []
    metrics: dict = {}  # the parts' headline figures (their JSON's `metrics` block), for the results file
    parts = {**EXPECTED, **{p: k for p, k in OPTIONAL.items() if p in status}}
    for part, keys in parts.items():
        st = status.get(part, {"status": "not run", "rc": 0, "seconds": 0, "limit_s": 0})
        got = {}
        f = args.work / f"{part}.json"
        if st["status"] == "ok" and f.exists():
            part_json = json.loads(f.read_text())
            got = {r["key"]: r for r in part_json["rows"]}
            metrics.update(part_json.get("metrics") or {})
        for key in keys:
            if key in got:
                rows.append({**got[key], "part": part, "status": "ok"})
                continue
            why = {
                "timeout": f"TIMEOUT after {st['limit_s']} s",
                "skipped": "skipped (--skip)",
                "no-time": "skipped: no time left in the budget",
                "failed": f"FAILED (exit {st['rc']})",
                "ok": "missing from the part's output",
            }.get(st["status"], st["status"])
            detail = _last_error(args.work / f"{part}.log") if st["status"] in ("failed", "timeout", "ok") else ""
            rows.append(
                {
                    "key": key,
                    "what": "",
                    "value": why,
                    "detail": detail,
                    "data": {},
                    "part": part,
                    "status": st["status"] if st["status"] != "ok" else "missing",
                }
            )

    date = next(
        (r["value"] for r in rows if r["key"] == "date" and r["status"] == "ok"),
        time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    )
    title = "GPU check" + (
        " (--cpu-smoke: tiny sizes on CPU; the figures say nothing about speed)" if args.mode == "smoke" else ""
    )
    print(f"\n## {title}, {date}" + (f", {args.total_s:.0f} s" if args.total_s else ""))
    print("| row | value | measured | how / notes |")
    print("|---|---|---|---|")
    for r in rows:
        cell = lambda s: str(s).replace("|", "/").replace("\n", " ")  # noqa: E731
        print(f"| {r['key']} | {cell(r['value'])} | {cell(r['what'])} | {cell(r['detail'])} |")
    print(
        "parts: "
        + ", ".join(
            f"{p} {status.get(p, {}).get('status', 'not run')} ({status.get(p, {}).get('seconds', 0)} s)" for p in parts
        )
    )

    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "gpu_check.json").write_text(
            json.dumps(
                {"mode": args.mode, "date": date, "total_s": args.total_s, "parts": status, "rows": rows}, indent=1
            )
        )
        logs = args.out / "gpu_check_logs"
        logs.mkdir(exist_ok=True)
        for log in args.work.glob("*.log"):
            shutil.copy(log, logs / log.name)
        print(f"wrote {args.out / 'gpu_check.json'}")
    day = date[:10] if date[:2] == "20" else time.strftime("%Y-%m-%d", time.gmtime())
    name = f"gpu-{'smoke-' if args.mode == 'smoke' else ''}{day}.json"
    result = {**headline(rows, metrics, date, args.commit), "mode": args.mode, "total_s": args.total_s}
    result.update({"parts": status, "rows": rows})
    for folder in args.results:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(json.dumps(result, indent=1) + "\n")
        print(f"wrote {folder / name}")
    return 1 if any(s["status"] in ("failed", "timeout") for s in status.values()) else 0


if __name__ == "__main__":
    raise SystemExit(main())
