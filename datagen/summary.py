"""The run summary: counts per task, quarantined inputs by reason, per-stage throughput, overall throughput.
Built from the partition done-markers, so a resumed run reports the whole job, not just its last part."""

from __future__ import annotations

from typing import Any, Collection

from datagen.batch import StageStats


def aggregate(markers: list[dict[str, Any]], input_partitions: Collection[str] = ()) -> dict[str, Any]:
    """Totals over done-markers. `inputs`/`decoded` count `input_partitions` only (the partitions of the job that
    declares counts_inputs): later jobs (features, pairs) read the same photos again and would count them twice."""
    tasks: dict[str, int] = {}
    lcu_tasks: dict[str, int] = {}
    quarantine: dict[str, int] = {}
    stages: dict[str, StageStats] = {}
    funnel: dict[str, dict[str, Any]] = {}
    shards = samples = entries = items = nbytes = rejects = reject_shards = 0
    for m in markers:
        if m["partition"] in input_partitions:
            entries += m.get("entries", 0)
            items += m.get("items", 0)
        samples += m["samples"]
        shards += len(m["shards"])
        nbytes += sum(s["bytes"] for s in m["shards"])
        for k, v in m["tasks"].items():
            tasks[k] = tasks.get(k, 0) + v
        rejects += m.get("rejects", 0)
        reject_shards += len(m.get("reject_shards", []))
        # a marker written before the funnel existed: what it wrote is what it made
        part = m.get("funnel") or {t: {"made": n, "dropped": {}, "written": n} for t, n in m["tasks"].items()}
        for task, row in part.items():
            merge_funnel(funnel.setdefault(task, {"made": 0, "dropped": {}, "written": 0}), row)
        for k, v in m.get("lcu_tasks", {}).items():
            lcu_tasks[k] = lcu_tasks.get(k, 0) + v
        for k, v in m["quarantine"].items():
            quarantine[k] = quarantine.get(k, 0) + v
        for k, v in m["stages"].items():
            stages.setdefault(k, StageStats()).merge(StageStats.from_json(v))
    stage_rows = {}
    fallbacks = {k: dict(sorted(st.fallbacks.items())) for k, st in sorted(stages.items()) if st.fallbacks}
    for k, st in stages.items():
        row = st.to_json()
        row.pop("fallbacks", None)  # said once, under `fallbacks`
        row["items_per_s"] = round(st.items_in / st.seconds, 2) if st.seconds > 0 else None
        stage_rows[k] = row
    return {
        "partitions": len(markers),
        "inputs": entries,
        "decoded": items,
        "samples": samples,
        "shards": shards,
        "bytes": nbytes,
        "tasks": dict(sorted(tasks.items())),
        "lcu_tasks": dict(sorted(lcu_tasks.items())),
        "lcu_samples": sum(lcu_tasks.values()),
        "quarantined": sum(quarantine.values()),
        "quarantine_reasons": dict(sorted(quarantine.items())),
        "stages": stage_rows,
        # per task: made (reached the recipe's rules) = written + dropped (reason -> samples, kept in OUT/rejects/)
        "funnel": {t: funnel[t] for t in sorted(funnel)},
        "rejected": rejects,
        "reject_shards": reject_shards,
        # stage -> reason -> partitions that ran it otherwise than placed (CPU fallback) or without it (optional)
        "fallbacks": fallbacks,
    }


def merge_funnel(into: dict[str, Any], row: dict[str, Any]) -> None:
    into["made"] += row["made"]
    into["written"] += row["written"]
    for reason, n in row["dropped"].items():
        into["dropped"][reason] = into["dropped"].get(reason, 0) + n
    into["dropped"] = dict(sorted(into["dropped"].items()))


def format_summary(summary: dict[str, Any]) -> str:
    lines = []
    inv = summary.get("invocation", {})
    refused = summary.get("refused", 0)
    later = summary["quarantined"] - refused  # decoded inputs a later stage failed on (their other samples kept)
    lines.append(
        f"run {summary.get('name', '')}: {summary['samples']} samples in {summary['shards']} shards "
        f"({summary['bytes'] / 1e6:.1f} MB) from {summary['decoded']} decoded + {refused} refused = "
        f"{summary['inputs']} inputs; {summary['quarantined']} quarantined"
        + (f" ({later} by a stage after decoding)" if later > 0 else "")
    )
    if inv:
        if inv.get("nothing_to_do"):
            lines.append("  nothing to do: every partition was already complete")
        else:
            lines.append(
                f"  this invocation: {inv['partitions_done']} partitions in {inv['seconds']:.1f}s, "
                f"{inv['samples_per_s']:.1f} samples/s, {inv['inputs_per_s']:.1f} images/s"
            )
    if summary["tasks"]:
        lines.append("  samples per task:")
        w = max(len(t) for t in summary["tasks"])
        lcu = summary.get("lcu_tasks", {})
        for t, n in summary["tasks"].items():
            lines.append(f"    {t:<{w}}  {n}" + (f"  ({lcu[t]} multi-turn)" if t in lcu else ""))
    dropped = {t: f for t, f in summary.get("funnel", {}).items() if f["dropped"]}
    if dropped:
        lines.append(f"  dropped by the recipe's rules ({summary.get('rejected', 0)}, kept in rejects/):")
        w = max(len(t) for t in dropped)
        for t, f in dropped.items():
            why = ", ".join(f"{r} {n}" for r, n in f["dropped"].items())
            lines.append(f"    {t:<{w}}  {f['made']} made, {f['written']} written; {why}")
    if summary["quarantine_reasons"]:
        lines.append("  quarantined by reason:")
        for r, n in summary["quarantine_reasons"].items():
            lines.append(f"    {r:<24}  {n}")
    if summary.get("fallbacks"):
        lines.append("  fallbacks (stage: reason, partitions):")
        for s, reasons in summary["fallbacks"].items():
            for r, n in reasons.items():
                lines.append(f"    {s}: {r}  ({n})")
    if summary.get("mix"):
        lines.append("  task mix (target -> achieved):")
        for k, m in summary["mix"].items():
            lines.append(f"    {k:<24}  {m['target']:.1%} -> {m['achieved']:.1%}  ({m['samples']} samples)")
    if summary["stages"]:
        lines.append("  stages (worker seconds, items in, samples out, items/s):")
        w = max(len(s) for s in summary["stages"])
        for s, st in summary["stages"].items():
            ips = f"{st['items_per_s']:.1f}" if st["items_per_s"] else "-"
            skipped = f"  skipped {st['skipped']}" if st["skipped"] else ""
            lines.append(
                f"    {s:<{w}}  {st['seconds']:>8.2f}s  {st['items_in']:>6}  {st['samples_out']:>6}  {ips:>8}{skipped}"
            )
    return "\n".join(lines)
