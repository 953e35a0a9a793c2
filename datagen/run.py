"""Run a recipe end to end: plan each job's partitions once (frozen in OUT/_plan/), skip partitions that have a
done-marker, execute the rest, then merge quarantine rows and write the summary to OUT/run.json.
Rerunning a finished job does nothing; a killed run resumes where its markers end."""

from __future__ import annotations

import fcntl
import json
import logging
import os
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Optional, Sequence

import pyarrow as pa
import pyarrow.parquet as pq

from datagen import paths, probe, schema
from datagen.config import ConfigError, Recipe, RuntimeConfig
from datagen.ingest.read import STAGE as READ_STAGE
from datagen.jobs import JobSpec, check_stage_order
from datagen.planning import StagePlan, WavePlan
from datagen.runtime import Job, execute_jobs, plan_jobs, release_ray, warm_workers
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
                f"output.dir={str(out)!r} holds output of a different recipe (fingerprint {saved['recipe']}, now "
                f"{fp}); "
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


@dataclass
class JobOutcome:
    """One job of this invocation: its partitions, their done-markers, and what it has left to do."""

    spec: JobSpec
    partitions: list[str] = field(default_factory=list)  # in plan order
    markers: dict[str, Optional[dict[str, Any]]] = field(default_factory=dict)  # partition -> done-marker (or None)
    fresh: list[dict[str, Any]] = field(default_factory=list)  # results of this invocation
    job: Optional[Job] = None  # the partitions still to do and the stages; None when there is nothing to do
    plans: Optional[list[StagePlan]] = None  # how its stages run: tasks or actor pools, sizes
    skipped_whole: bool = False  # an optional stage it cannot do without cannot run (datagen.probe)


def prepare_job(spec: JobSpec, recipe: Recipe, out: Path) -> JobOutcome:
    """Plan one job (once; frozen) and find its partitions without a done-marker."""
    o = JobOutcome(spec)
    stages = check_stage_order(spec.name, spec.stages(recipe), spec.given)
    if not stages:
        log.info("job %s: no operator enabled, skipped", spec.name)
        return o
    partitions = frozen_plan(out, spec.name, recipe, lambda r: spec.plan(r, out))
    o.partitions = [p["name"] for p in partitions]
    o.markers = {p["name"]: read_marker(out, p["name"]) for p in partitions}
    pending = [p for p in partitions if o.markers[p["name"]] is None]
    if not pending:
        log.info("job %s: all %d partitions complete; nothing to do", spec.name, len(partitions))
        return o
    for op in stages:
        log.info("job %s stage %s", spec.name, op.describe())
    log.info("job %s: %d of %d partitions to do", spec.name, len(pending), len(partitions))
    o.job = Job(
        spec.name,
        pending,
        stages,
        out,
        recipe.output,
        recipe.seed,
        recipe.fingerprint(),
        allow_cpu_fallback=recipe.runtime.allow_cpu_fallback,
    )
    return o


def check_stages(active: list[JobOutcome], rt: RuntimeConfig) -> WavePlan:
    """Ask each stage, on a worker of its placement, whether it can run (datagen.probe), before any data flows: a
    stage that cannot fails the run unless it is optional; an optional one is left out, said in the log and counted
    under run.json's fallbacks. A job left without a stage it cannot do without is skipped whole. The plan of
    what is left."""
    plan = plan_jobs([o.job for o in active], rt)
    unavailable = probe.check_plans({o.spec.name: plan.jobs[o.spec.name] for o in active}, rt)
    probe.refuse_required(unavailable)
    if not unavailable:
        return plan
    for o in active:
        skipped = {u.stage: probe.skipped_reason(u) for u in unavailable if u.job == o.spec.name}
        if not skipped:
            continue
        for name, why in skipped.items():
            log.warning("job %s: stage %s is skipped: %s", o.spec.name, name, why)
        stages = probe.remaining(o.job.stages, skipped)
        if stages is None:
            log.warning("job %s: skipped whole, it cannot run without %s", o.spec.name, ", ".join(skipped))
            o.job, o.skipped_whole = None, True
            continue
        o.job.stages = check_stage_order(o.spec.name, stages, o.spec.given)
        o.job.skipped = skipped
    active[:] = [o for o in active if o.job is not None]
    return plan_jobs([o.job for o in active], rt) if active else plan


def waves(jobs: Sequence[JobSpec], together: bool) -> list[list[JobSpec]]:
    """Jobs grouped into what runs at once: each wave holds the jobs whose `after` jobs are in earlier waves (in the
    listed order); with together=False every job is a wave of its own."""
    names = [s.name for s in jobs]
    for s in jobs:
        unknown = [a for a in s.after if a not in names[: names.index(s.name)]]
        if unknown:
            raise ConfigError(f"job {s.name}: runs after {unknown}, which are not jobs listed before it ({names})")
    if not together:
        return [[s] for s in jobs]
    out: list[list[JobSpec]] = []
    done: set[str] = set()
    left = list(jobs)
    while left:
        wave = [s for s in left if set(s.after) <= done]
        out.append(wave)
        done |= {s.name for s in wave}
        left = [s for s in left if s not in wave]
    return out


def run_jobs(jobs: Sequence[JobSpec], recipe: Recipe, out: Path, show: bool) -> list[JobOutcome]:
    """Every job, in waves (see `waves`): the jobs of a wave run as one streaming execution on Ray, their partitions
    interleaved (runtime.concurrent_jobs), so the last partitions of one job share the CPUs with another's instead of
    leaving them idle; a job whose plan reads another job's output (the pairs job reads the features) waits for it."""
    rt = recipe.runtime
    outcomes: list[JobOutcome] = []
    skipped_jobs: set[str] = set()
    for wave in waves(jobs, rt.concurrent_jobs and rt.executor == "ray"):
        after_skipped = [s for s in wave if set(s.after) & skipped_jobs]
        for spec in after_skipped:
            why = ", ".join(sorted(set(spec.after) & skipped_jobs))
            log.warning("job %s: skipped, it runs after %s", spec.name, why)
            skipped_jobs.add(spec.name)
        prepared = [prepare_job(spec, recipe, out) for spec in wave if spec not in after_skipped]
        outcomes += prepared
        active = [o for o in prepared if o.job is not None]
        if not active:
            continue
        # one plan for the jobs that run at once: their pools share the cluster (datagen.planning); every stage
        # asked first, on a worker of its placement, whether it can run (datagen.probe)
        plan = check_stages(active, rt)
        skipped_jobs |= {o.spec.name for o in prepared if o.skipped_whole}
        if not active:
            continue
        for o in active:
            o.plans = plan.jobs[o.spec.name]
        log.info("plan of jobs %s:\n%s", ", ".join(o.spec.name for o in active), plan.table())
        owner = {p: o for o in active for p in o.markers}
        warm_workers([sp for o in active for sp in o.plans], rt)
        bars = {}
        if show:
            from tqdm import tqdm

            for i, o in enumerate(active):
                bars[o.spec.name] = tqdm(
                    total=len(o.partitions),
                    initial=len(o.partitions) - len(o.job.partitions),
                    desc=o.spec.name,
                    unit="part",
                    position=i,
                )
        samples = {o.spec.name: 0 for o in active}
        for result in execute_jobs([(o.job, o.plans) for o in active], rt):
            o = owner[result["partition"]]
            o.markers[result["partition"]] = result
            o.fresh.append(result)
            samples[o.spec.name] += result["samples"]
            bar = bars.get(o.spec.name)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(samples=samples[o.spec.name], quarantined=sum(result["quarantine"].values()))
        for bar in bars.values():
            bar.close()
    order = [s.name for s in jobs]
    return sorted(outcomes, key=lambda o: order.index(o.spec.name))


def run(recipe: Recipe, jobs: Sequence[JobSpec], progress: bool | None = None, release: bool = False) -> dict[str, Any]:
    """Run `jobs` over the recipe (a job starts once the jobs it runs `after` have finished; see run_jobs).
    pipelines.run calls this with datagen's own jobs. `release`: the caller is done with Ray once the jobs are
    (the CLI): Ray shuts down while the summary and the report are written."""
    out = Path(recipe.output.dir).resolve()
    os.environ.update(recipe.runtime.env)  # the plain loop's stages see the recipe's environment too
    show = recipe.runtime.progress if progress is None else progress
    t0 = time.perf_counter()
    with output_lock(out):
        stale = paths.remove_stale_temps(out)
        if stale:
            log.info("removed %d temporary files left by an interrupted run", stale)
        outcomes = run_jobs(jobs, recipe, out, show)
        closing = release_ray() if release and recipe.runtime.executor == "ray" else None
        all_markers = [m for o in outcomes for m in o.markers.values() if m is not None]
        fresh = [r for o in outcomes for r in o.fresh]
        # every job's partitions, jobs in listed order: quarantine's first reasons
        partition_order = [p for o in outcomes for p in o.partitions]
        job_plans = {o.spec.name: [sp.to_json() for sp in o.plans] for o in outcomes if o.plans is not None}
        done_now = len(fresh)
        if done_now or not (out / paths.QUARANTINE_FILE).exists():
            quarantine = merge_quarantine(out, partition_order)
        else:
            quarantine = pq.read_table(out / paths.QUARANTINE_FILE)
        seconds = time.perf_counter() - t0
        # the partitions of the job that counts the run's input photos (JobSpec.counts_inputs)
        input_partitions = {p for o in outcomes if o.spec.counts_inputs for p in o.partitions}
        totals = aggregate(all_markers, input_partitions)
        summary = {"name": recipe.name, "recipe": recipe.fingerprint(), "output": str(out), **totals}
        # counted from the merged file, not the markers: an input refused by two jobs is one quarantined input
        summary["quarantine_reasons"] = quarantine_counts(quarantine)
        summary["quarantined"] = quarantine.num_rows
        # inputs = decoded + refused (could not be read or decoded); `quarantined` also holds decoded inputs that a
        # later stage failed on (an operator error), which still gave their other samples
        summary["refused"] = sum(1 for s in quarantine.column("stage").to_pylist() if s == READ_STAGE)
        inv_inputs = sum(m.get("entries", 0) for m in fresh if m["partition"] in input_partitions)
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
        if closing is not None:
            closing.join()
    log.debug("summary\n%s", format_summary(summary))
    return summary
