"""GPU check, last step: merge the parts' JSON files into one table (stdout) and one JSON file.

    python bench/gpu_report.py WORKDIR --mode gpu|smoke [--out DIR]

WORKDIR holds status.tsv (part, status, rc, seconds, limit; written by bench/gpu_check.sh), PART.json and
PART.log. Every expected row is printed whatever happened to its part: a failed, timed-out or skipped part shows
that, with the last line of its log. Exit status 1 when a part failed or timed out."""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

# part -> the rows it must produce (tests/test_gpu_check.py checks that every one is printed)
EXPECTED = {
    "env": ["date", "gpu", "torch", "libraries"],
    "siglip": ["siglip_img_per_s"],
    "kmeans": ["kmeans_small_k", "kmeans_large_k"],
    "train": ["train_samples_per_s", "train_mfu"],
}
# parts that run only when asked for (gpu_check.sh --with PART): their rows are printed when they ran
OPTIONAL = {
    "inpaint": ["inpaint_img_per_s"],
}


def _last_error(log: Path) -> str:
    if not log.exists():
        return "no log"
    lines = [ln.strip() for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
    bad = [ln for ln in lines if any(w in ln for w in ("Error", "error", "exited", "No ", "no CUDA", "Killed"))]
    return (bad or lines or ["empty log"])[-1][:240]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("work", type=Path)
    ap.add_argument("--mode", choices=["gpu", "smoke"], default="gpu")
    ap.add_argument("--out", type=Path, help="write gpu_check.json and the parts' logs here")
    ap.add_argument("--total-s", type=float)
    args = ap.parse_args()

    status: dict[str, dict] = {}
    tsv = args.work / "status.tsv"
    for ln in tsv.read_text().splitlines() if tsv.exists() else []:
        name, st, rc, secs, limit = (ln.split("\t") + ["", "", "", ""])[:5]
        status[name] = {"status": st, "rc": int(rc or 0), "seconds": int(secs or 0), "limit_s": int(limit or 0)}

    rows: list[dict] = []
    parts = {**EXPECTED, **{p: k for p, k in OPTIONAL.items() if p in status}}
    for part, keys in parts.items():
        st = status.get(part, {"status": "not run", "rc": 0, "seconds": 0, "limit_s": 0})
        got = {}
        f = args.work / f"{part}.json"
        if st["status"] == "ok" and f.exists():
            got = {r["key"]: r for r in json.loads(f.read_text())["rows"]}
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
    return 1 if any(s["status"] in ("failed", "timeout") for s in status.values()) else 0


if __name__ == "__main__":
    raise SystemExit(main())
