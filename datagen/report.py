"""The run report: samples per task as a bar chart coloured by ACE task group (like ACE's task-distribution
figure), quarantine reasons and per-stage throughput, a histogram of every quality score per task (from the index),
what the quality filter dropped or marked by reason, and the funnel (per task: made, dropped by reason, written);
written as OUT/report.png, report_funnel.png and a self-contained report.html."""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path
from typing import Any

from datagen import paths, schema


def _figure(**kw: Any):
    """A matplotlib Figure drawn by Agg, without pyplot (whose import alone costs the report a third of a second)."""
    from matplotlib.figure import Figure

    return Figure(**kw)


def _cmap(name: str):
    import matplotlib

    return matplotlib.colormaps[name]


def _panels(fig, labels: list[list[str]], ratios: list[float]) -> list:
    """Side-by-side axes whose left margins fit their y tick labels, measured by the Agg renderer: what
    tight_layout gives, without laying out (and so drawing) the whole figure once more (a third of a second)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.font_manager import FontProperties

    renderer = FigureCanvasAgg(fig).get_renderer()
    prop = FontProperties(size=10)  # rcParams' tick label size ("medium")

    def width(texts: list[str]) -> float:  # inches, with the tick and its padding
        widest = max((renderer.get_text_width_height_descent(t, prop, ismath=False)[0] for t in texts), default=0.0)
        return widest / renderer.dpi + 0.2

    total, height = fig.get_figwidth(), fig.get_figheight()
    margins = [width(t) for t in labels]
    usable = total - sum(margins) - 0.25 - 0.15 * (len(labels) - 1)
    bottom, top = 0.45 / height, 1 - 0.35 / height
    axes, x = [], 0.0
    for margin, ratio in zip(margins, ratios):
        x += margin
        w = usable * ratio / sum(ratios)
        axes.append(fig.add_axes((x / total, bottom, w / total, top - bottom)))
        x += w + 0.15
    return axes


def render_png(summary: dict[str, Any]) -> bytes:
    tasks = summary.get("tasks", {})
    stages = {k: v for k, v in summary.get("stages", {}).items() if v.get("items_per_s")}
    reasons = summary.get("quarantine_reasons", {})
    fig = _figure(figsize=(16, max(4, 0.32 * len(tasks) + 1.5)))
    axes = _panels(fig, [list(tasks), list(reasons), list(stages)], [2.2, 1, 1])
    groups = list(schema.TASK_GROUPS)
    cmap = _cmap("tab10")
    names = sorted(tasks, key=lambda t: (groups.index(schema.TASKS[t].group) if t in schema.TASKS else 99, t))
    colors = [cmap(groups.index(schema.TASKS[t].group) % 10) if t in schema.TASKS else "gray" for t in names]
    ax = axes[0]
    lcu = summary.get("lcu_tasks", {})
    ax.barh(names, [tasks[t] for t in names], color=colors)
    ax.barh(
        names, [lcu.get(t, 0) for t in names], color="none", edgecolor="black", hatch="//", label="multi-turn (LCU)"
    )
    ax.invert_yaxis()
    ax.set_title(f"samples per task ({summary.get('samples', 0)} in all)")
    seen = []
    for t, c in zip(names, colors):
        g = schema.TASKS[t].group if t in schema.TASKS else "other"
        if g not in seen:
            seen.append(g)
            ax.bar(0, 0, color=c, label=g.replace("_", " "))
    if seen:
        ax.legend(loc="lower right", fontsize=8)
    ax = axes[1]
    if reasons:
        ax.barh(list(reasons), list(reasons.values()), color="firebrick")
        ax.invert_yaxis()
    else:
        ax.text(0.5, 0.5, "none", ha="center", va="center", fontsize=14)
        ax.set_axis_off()
    ax.set_title(f"quarantined inputs ({summary.get('quarantined', 0)})")
    ax = axes[2]
    if stages:
        ax.barh(list(stages), [v["items_per_s"] for v in stages.values()], color="seagreen")
        ax.invert_yaxis()
        ax.set_xscale("log")
    ax.set_title("items/s per stage worker")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    return buf.getvalue()


def render_funnel(funnel: dict[str, dict[str, Any]]) -> bytes:
    """Per task one bar as long as what reached the recipe's rules (made): what was written, then what each rule
    dropped, one colour per reason across tasks, and written/made at the bar's end."""
    groups = list(schema.TASK_GROUPS)
    names = sorted(funnel, key=lambda t: (groups.index(schema.TASKS[t].group) if t in schema.TASKS else 99, t))
    reasons = sorted({r for f in funnel.values() for r in f["dropped"]})
    fig = _figure(figsize=(12, max(3.0, 0.3 * len(names) + 1.6)))
    (ax,) = _panels(fig, [names], [1])
    ax.barh(names, [funnel[t]["written"] for t in names], color="seagreen", label="written")
    left = [funnel[t]["written"] for t in names]
    cmap = _cmap("tab10")
    for i, r in enumerate(reasons):
        n = [funnel[t]["dropped"].get(r, 0) for t in names]
        ax.barh(names, n, left=left, color=cmap((i + 3) % 10), label=f"dropped: {r}")
        left = [a + b for a, b in zip(left, n)]
    most = max((funnel[t]["made"] for t in names), default=0)
    for y, t in enumerate(names):
        f = funnel[t]
        ax.text(f["made"] + most * 0.01, y, f"{f['written']}/{f['made']}", va="center", fontsize=8)
    ax.set_xlim(0, most * 1.12 + 1)
    ax.invert_yaxis()
    made = sum(f["made"] for f in funnel.values())
    written = sum(f["written"] for f in funnel.values())
    ax.set_title(f"funnel per task: {written} of {made} samples written, {made - written} dropped (in rejects/)")
    ax.set_xlabel("samples that reached the recipe's rules")
    ax.legend(loc="best", fontsize=8)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    return buf.getvalue()


def score_values(out: Path) -> dict[str, dict[str, list[float]]]:
    """score -> task -> values, from the score_* columns of the output's index."""
    from datagen.shards.reader import read_index

    index = read_index(out, ["task", *(schema.SCORE_COLUMN_PREFIX + name for name in schema.SCORES)])
    if index.num_rows == 0:
        return {}
    tasks = index.column("task").to_pylist()
    found: dict[str, dict[str, list[float]]] = {}
    for name in schema.SCORES:
        col = schema.SCORE_COLUMN_PREFIX + name
        if col not in index.column_names:
            continue
        for task, v in zip(tasks, index.column(col).to_pylist()):
            if v is not None:
                found.setdefault(name, {}).setdefault(task, []).append(float(v))
    return found


def render_score_histograms(values: dict[str, dict[str, list[float]]]) -> bytes:
    """One panel per score, one step histogram per task, over the score's range."""
    import numpy as np

    names = list(values)
    cols = min(3, len(names))
    rows = (len(names) + cols - 1) // cols
    all_tasks = sorted({t for per in values.values() for t in per})
    legend_rows = (len(all_tasks) + 3) // 4
    fig = _figure(figsize=(5.5 * cols, 3.2 * rows + 0.22 * legend_rows))
    axes = fig.subplots(rows, cols, squeeze=False)
    cmap = _cmap("tab20")
    handles = {}
    for ax, name in zip(axes.flat, names):
        spec = schema.SCORES[name]
        lo = min(spec.low, min(min(v) for v in values[name].values()))
        hi = max(spec.high, max(max(v) for v in values[name].values()))
        for task, v in sorted(values[name].items()):
            counts, edges = np.histogram(v, bins=20, range=(lo, hi))
            handles[task] = ax.stairs(counts, edges, linewidth=1.4, color=cmap(all_tasks.index(task) % 20))
        ax.set_title(f"{name} ({spec.better} is better)" if spec.better else name, fontsize=10)
        ax.text(
            0.99,
            0.97,
            f"{sum(len(v) for v in values[name].values())} samples, {len(values[name])} tasks",
            transform=ax.transAxes,
            ha="right",
            va="top",
            fontsize=7,
        )
    for ax in list(axes.flat)[len(names) :]:
        ax.set_axis_off()
    # one legend for every panel: a task keeps its colour across scores
    fig.legend([handles[t] for t in all_tasks], all_tasks, loc="lower center", ncol=4, fontsize=7, frameon=False)
    # fixed margins: tight_layout would draw the figure once more only to measure it (a second per report)
    height = 3.2 * rows + 0.22 * legend_rows
    fig.subplots_adjust(
        left=0.05,
        right=0.98,
        top=1 - 0.45 / height,
        bottom=(0.22 * legend_rows + 0.45) / height,
        wspace=0.2,
        hspace=0.45,
    )
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80)
    return buf.getvalue()


def _filtered(summary: dict[str, Any]) -> dict[str, int]:
    """What the FILTER stages dropped or marked, by reason (their stage stats in run.json)."""
    out: dict[str, int] = {}
    for stage, row in summary.get("stages", {}).items():
        if stage.endswith("_filter"):
            for reason, n in row.get("skipped", {}).items():
                out[f"{stage}: {reason}"] = n
    return out


def _table(rows: dict[str, Any], head: tuple[str, str]) -> str:
    body = "".join(f"<tr><td>{html.escape(str(k))}</td><td>{html.escape(str(v))}</td></tr>" for k, v in rows.items())
    return f"<table><tr><th>{head[0]}</th><th>{head[1]}</th></tr>{body}</table>"


def write_report(out_dir: str | Path, summary: dict[str, Any] | None = None) -> Path:
    out = Path(out_dir)
    if summary is None:
        summary = json.loads((out / paths.RUN_FILE).read_text())
    png = render_png(summary)
    paths.atomic_write_bytes(out / "report.png", png)
    mix = summary.get("mix") or {}
    mix_rows = {k: f"target {v['target']:.1%}, achieved {v['achieved']:.1%} ({v['samples']})" for k, v in mix.items()}
    stage_rows = {
        k: f"{v['items_in']} in, {v['samples_out']} out, {v['seconds']:.2f}s, {v['items_per_s'] or '-'} items/s"
        for k, v in summary.get("stages", {}).items()
    }
    inv = summary.get("invocation", {})
    scores = score_values(out)
    hist = ""
    if scores:
        hist_png = render_score_histograms(scores)
        paths.atomic_write_bytes(out / "report_scores.png", hist_png)
        hist = (
            f"<h2>quality scores per task</h2><img src='data:image/png;base64,{base64.b64encode(hist_png).decode()}' "
            "style='max-width:100%'>"
        )
    filtered = _filtered(summary)
    funnel_html = ""
    if summary.get("funnel"):
        funnel_png = render_funnel(summary["funnel"])
        paths.atomic_write_bytes(out / "report_funnel.png", funnel_png)
        rows = {
            t: f"{f['made']} made, {f['written']} written" + "".join(f"; {r} {n}" for r, n in f["dropped"].items())
            for t, f in summary["funnel"].items()
        }
        funnel_html = (
            f"<h2>funnel</h2><img src='data:image/png;base64,{base64.b64encode(funnel_png).decode()}' "
            f"style='max-width:100%'>{_table(rows, ('task', 'made, written, dropped by reason'))}"
        )
    page = (
        "<!doctype html><html><head><meta charset='utf-8'><title>datagen run report</title><style>"
        "body{font-family:system-ui,sans-serif;margin:1.5em}table{border-collapse:collapse;margin:.5em 0 1.5em}"
        "td,th{border:1px solid #ccc;padding:.2em .6em;text-align:left}</style></head><body>"
        f"<h1>run {html.escape(str(summary.get('name', '')))}</h1>"
        f"<p>{summary.get('samples')} samples in {summary.get('shards')} shards from {summary.get('decoded')} decoded "
        f"+ "
        f"{summary.get('refused', 0)} refused = {summary.get('inputs')} inputs; {summary.get('quarantined')} "
        f"quarantined. Last invocation: "
        f"{inv.get('seconds', '?')} s, {inv.get('inputs_per_s', '?')} images/s, {inv.get('samples_per_s', '?')} "
        f"samples/s.</p>"
        f"<img src='data:image/png;base64,{base64.b64encode(png).decode()}' style='max-width:100%'>"
        f"<h2>samples per task</h2>{_table(summary.get('tasks', {}), ('task', 'samples'))}"
        + (f"<h2>task mix</h2>{_table(mix_rows, ('key', 'target / achieved'))}" if mix_rows else "")
        + funnel_html
        + (f"<h2>quality filter</h2>{_table(filtered, ('reason', 'samples'))}" if filtered else "")
        + hist
        + f"<h2>quarantine</h2>{_table(summary.get('quarantine_reasons', {}), ('reason', 'inputs'))}"
        f"<h2>stages</h2>{_table(stage_rows, ('stage', 'work'))}</body></html>"
    )
    path = out / "report.html"
    paths.atomic_write_bytes(path, page.encode())
    return path
