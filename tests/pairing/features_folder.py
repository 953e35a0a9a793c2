"""A features folder as the features job writes it (schema.FEATURES_SCHEMA, float16 embeddings, one file per
partition), filled with synthetic clustered embeddings: groups of 4 related images around topic directions. Only
what pass 1 and the cleaning read is set; keypoints, faces and dHashes are null (routes score with `none`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa

from datagen import schema


def embeddings(n: int, dim: int, seed: int = 0, topics: int = 12, group: int = 4) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = rng.standard_normal((topics, dim))
    t /= np.linalg.norm(t, axis=1, keepdims=True)
    centres = t[rng.integers(0, topics, -(-n // group))] + 0.5 * rng.standard_normal((-(-n // group), dim)) / np.sqrt(
        dim
    )
    x = np.repeat(centres, group, axis=0)[:n] + 0.35 * rng.standard_normal((n, dim)) / np.sqrt(dim)
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float16)


def features_table(x: np.ndarray, start: int) -> pa.Table:
    n = len(x)
    ids = [f"{start + i:08d}" for i in range(n)]
    cols = {
        "source_id": ids,
        "uri": [f"mem://{s}.jpg" for s in ids],
        "entry": [f'{{"uri": "mem://{s}.jpg"}}' for s in ids],
        "caption": [""] * n,
        "width": pa.array(np.full(n, 640, np.int32)),
        "height": pa.array(np.full(n, 480, np.int32)),
        "encoder": ["synthetic"] * n,
        "embedding": pa.FixedSizeListArray.from_arrays(pa.array(x.reshape(-1)), x.shape[1]).cast(
            pa.list_(pa.float16())
        ),
        "face_count": pa.array(np.full(n, -1, np.int16)),
    }
    return pa.table(
        {f.name: cols.get(f.name, pa.nulls(n, f.type)) for f in schema.FEATURES_SCHEMA}, schema=schema.FEATURES_SCHEMA
    )


def write_features(out_dir: Path, x: np.ndarray, rows_per_file: int) -> list[Path]:
    """OUT/features/feat-NNNNN.parquet, `rows_per_file` rows each (the features job's images_per_partition)."""
    import pyarrow.parquet as pq

    d = Path(out_dir) / schema.FEATURES_DIR
    d.mkdir(parents=True, exist_ok=True)
    files = []
    for i, s in enumerate(range(0, len(x), rows_per_file)):
        f = d / f"feat-{i:05d}.parquet"
        pq.write_table(features_table(x[s : s + rows_per_file], s), f)
        files.append(f)
    return files


def run_pairing(out: Path, cfg, executor: str = "local", seed: int = 7, jobs: tuple[str, ...] | None = None):
    """The pairing's global step on OUT/features as a run does it: the kmeans, assign and unionfind jobs (with their
    done-markers), then the pairs job's plan (frozen, as a run freezes it). `jobs`: run only these of the three
    (a run stopped between jobs). Returns (the pairs job's partitions or None, the run's summary)."""
    from datagen import run as datagen_run
    from datagen.config import OutputConfig, Recipe, RuntimeConfig
    from datagen.jobs import JobSpec
    from datagen.pairing import plan, steps

    routes = [("general_editing", cfg.routes.general_editing)]
    settings = steps.Settings(band=cfg.pass1.band, center=True, routes=routes)
    recipe = Recipe(
        seed=seed,
        output=OutputConfig(dir=str(out)),
        runtime=RuntimeConfig(executor=executor, progress=False),
        sections={"pairing": cfg},
    )
    features = JobSpec("features", plan=lambda r, o: [], stages=lambda r: [])  # OUT/features is already there
    step_jobs = [j for j in steps.jobs(lambda r: settings) if jobs is None or j.name in jobs]
    summary = datagen_run.run(recipe, [features, *step_jobs])
    if jobs is not None:
        return None, summary
    band = cfg.pass1.band
    parts = datagen_run.frozen_plan(
        Path(out), "pairs", recipe, lambda r: plan.plan_pairs(r, Path(out), band=band, center=True, routes=routes)
    )
    return parts, summary
