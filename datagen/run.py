"""Run a recipe end to end: plan each job's partitions once (frozen in OUT/_plan/), skip partitions that have a
done-marker, execute the rest, then merge quarantine rows and write the summary to OUT/run.json.
Rerunning a finished job does nothing; a killed run resumes where its markers end."""
from __future__ import annotations

import fcntl
import json
import logging
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Sequence

import pyarrow as pa
import pyarrow.parquet as pq

from datagen import paths, schema
from datagen.config import ConfigError, Recipe
from datagen.ingest.read import STAGE as READ_STAGE
from datagen.jobs import JobSpec, check_stage_order
from datagen.runtime import Job, execute, stage_plan
from datagen.shards.commit import read_marker
from datagen.summary import aggregate, format_summary

log = logging.getLogger(__name__)


@contextmanager
def output_lock(out: Path) -> Iterator[None]:
    out.mkdir(parents=True, exist_ok=True)
    with open(out / ".lock", "w") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ConfigError(f"output.dir={str(out)!r} is in use by another datagen run") from None
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def frozen_plan(out: Path, job: str, recipe: Recipe, make_plan) -> list[dict[str, Any]]:
    """The job's partitions, planned on the first run and reused after, so that a resumed run cuts its inputs
    exactly as the first one did."""
    path = paths.plan_file(out, job)
    fp = recipe.fingerprint()
    if path.exists():
        saved = json.loads(path.read_text())
        if saved["recipe"] != fp:
            raise ConfigError(
                f"output.dir={str(out)!r} holds output of a different recipe (fingerprint {saved['recipe']}, now {fp}); "
                "use a new output.dir, or delete the old one"
            )
        return saved["partitions"]
    partitions = make_plan(recipe)
    paths.atomic_write_json(path, {"recipe": fp, "job": job, "partitions": partitions})
    return partitions




def merge_quarantine(out: Path, partitions: Sequence[str] = ()) -> pa.Table:
    """OUT/quarantine.parquet: one row per quarantined input, with the first reason it got. `partitions` gives the
    order (jobs in running order, then their partitions): the features job reads the photos the images job read and
    refuses the same bad file again, perhaps in other words; that is still one quarantined input, listed with the
    images job's reason. Files of partitions not named come after, by name."""
    qdir = out / paths.QUARANTINE_DIR
    files = {f.stem: f for f in sorted(qdir.glob("*.parquet"))} if qdir.exists() else {}
    ordered = [files.pop(p) for p in partitions if p in files] + list(files.values())
    seen: set[str] = set()
    unique = []
    for f in ordered:
        for r in pq.read_table(f).to_pylist():
            if r["uri"] not in seen:
                seen.add(r["uri"])
                unique.append(r)
    table = pa.Table.from_pylist(unique, schema=schema.QUARANTINE_SCHEMA)
    paths.atomic_write_parquet(out / paths.QUARANTINE_FILE, table)
    return table


def quarantine_counts(table: pa.Table) -> dict[str, int]:
    reasons: dict[str, int] = {}
    for r in table.column("reason").to_pylist():
        reasons[r] = reasons.get(r, 0) + 1
    return dict(sorted(reasons.items()))


def run(recipe: Recipe, jobs: Sequence[JobSpec], progress: bool | None = None) -> dict[str, Any]:
    """Run `jobs` (in this order; a later job may read what an earlier one wrote) over the recipe. pipelines.run
    calls this with datagen's own jobs."""
    out = Path(recipe.output.dir).resolve()
    show = recipe.runtime.progress if progress is None else progress
    t0 = time.perf_counter()
    with output_lock(out):
        stale = paths.remove_stale_temps(out)
        if stale:
            log.info("removed %d temporary files left by an interrupted run", stale)
        all_markers: list[dict[str, Any]] = []
        fresh: list[dict[str, Any]] = []  # results of this invocation
        job_plans: dict[str, list[dict[str, Any]]] = {}  # how each job's stages ran: tasks or actor pools, sizes
        partition_order: list[str] = []  # every job's partitions, jobs in running order: quarantine's first reasons
        for spec in jobs:
            job_name = spec.name
            stages = check_stage_order(job_name, spec.stages(recipe))
            if not stages:
                log.info("job %s: no operator enabled, skipped", job_name)
                continue
            partitions = frozen_plan(out, job_name, recipe, lambda r: spec.plan(r, out))
            partition_order += [p["name"] for p in partitions]
            markers = {p["name"]: read_marker(out, p["name"]) for p in partitions}
            pending = [p for p in partitions if markers[p["name"]] is None]
            if not pending:
                log.info("job %s: all %d partitions complete; nothing to do", job_name, len(partitions))
            else:
                for op in stages:
                    log.info("job %s stage %s", job_name, op.describe())
                log.info("job %s: %d of %d partitions to do", job_name, len(pending), len(partitions))
                job = Job(job_name, pending, stages, out, recipe.output, recipe.seed, recipe.fingerprint())
                plans = stage_plan(job, recipe.runtime)
                for sp in plans:
                    log.info("job %s runs %s", job_name, sp.describe())
                job_plans[job_name] = [sp.to_json() for sp in plans]
                bar = None
                if show:
                    from tqdm import tqdm

                    bar = tqdm(total=len(partitions), initial=len(partitions) - len(pending), desc=job_name, unit="part")
                n_samples = 0
                for result in execute(job, recipe.runtime, plans):
                    markers[result["partition"]] = result
                    fresh.append(result)
                    n_samples += result["samples"]
                    if bar is not None:
                        bar.update(1)
                        bar.set_postfix(samples=n_samples, quarantined=sum(result["quarantine"].values()))
                if bar is not None:
                    bar.close()
            all_markers.extend(m for m in markers.values() if m is not None)
        done_now = len(fresh)
        if done_now or not (out / paths.QUARANTINE_FILE).exists():
            quarantine = merge_quarantine(out, partition_order)
        else:
            quarantine = pq.read_table(out / paths.QUARANTINE_FILE)
        seconds = time.perf_counter() - t0
        summary = {"name": recipe.name, "recipe": recipe.fingerprint(), "output": str(out), **aggregate(all_markers)}
        # counted from the merged file, not the markers: an input refused by two jobs is one quarantined input
        summary["quarantine_reasons"] = quarantine_counts(quarantine)
        summary["quarantined"] = quarantine.num_rows
        # inputs = decoded + refused (could not be read or decoded); `quarantined` also holds decoded inputs that a
        # later stage failed on (an operator error), which still gave their other samples
        summary["refused"] = sum(1 for s in quarantine.column("stage").to_pylist() if s == READ_STAGE)
        inv_inputs = sum(m.get("entries", 0) for m in fresh if m["partition"].startswith("img-"))
        inv_samples = sum(m["samples"] for m in fresh)
        summary["invocation"] = {
            "nothing_to_do": done_now == 0,
            "partitions_done": done_now,
            "seconds": round(seconds, 3),
            "samples_per_s": round(inv_samples / seconds, 2) if seconds > 0 else 0.0,
            "inputs_per_s": round(inv_inputs / seconds, 2) if seconds > 0 else 0.0,
        }
        if job_plans:
            summary["invocation"]["stages"] = job_plans
        for spec in jobs:
            if spec.summarize is not None:
                summary.update(spec.summarize(recipe, out) or {})
        if done_now or not (out / paths.RUN_FILE).exists():
            paths.atomic_write_json(out / paths.RUN_FILE, summary)
            from datagen.report import write_report

            write_report(out, summary)
    log.debug("summary\n%s", format_summary(summary))
    return summary
