"""What a partition weighs between Ray Data pools: the demo's images job run in the plain loop, each partition
measured at every boundary the runtime's plan puts between stage groups, as Ray would pickle the WorkBatch before
(the whole object, raw arrays) and as datagen.transfer packs it now; with the time packing and unpacking take.

    PYTHONPATH=. python bench/bench_partition_bytes.py [configs/demo.yaml [--every-stage]]"""

from __future__ import annotations

import pickle
import sys
import tempfile
import time
from pathlib import Path

from datagen.planning import ClusterShape, plan_wave
from datagen.runtime import _run_stages, setup_stages
from datagen.transfer import pack, unpack
from pipelines import images, load_recipe


def main(path: str = "configs/demo.yaml", *flags: str) -> None:
    recipe = load_recipe(path, ["runtime.progress=false"])
    # what the run's probe leaves out: optional stages that cannot run here (the demo's depth, replace_object)
    stages = [op for op in images.stages(recipe) if not (op.optional() and op.unavailable_reason())]
    specs = images.plan(recipe, Path(tempfile.mkdtemp()))
    plans = plan_wave([("images", stages, len(specs))], recipe.runtime, ClusterShape(cpus=8))
    groups = [list(sp.ops) for sp in plans.jobs["images"]]
    if "--every-stage" in flags:  # as on a GPU cluster, where most stages are pools of their own
        groups = [[op] for op in stages]
    print("groups:", " | ".join("+".join(op.name for op in g) for g in groups))
    setup_stages(stages)
    raw = packed = 0
    pack_s = unpack_s = 0.0
    crossings = 0
    from datagen.batch import WorkBatch

    for spec in specs:
        rest = {k: v for k, v in spec.items() if k != "entries"}
        batch = WorkBatch(spec["name"], rest, recipe.seed, recipe.fingerprint(), entries=list(spec["entries"]))
        for g in groups[:-1]:  # the last group commits: nothing leaves it
            batch = _run_stages(g, batch)
            raw += len(pickle.dumps(batch, protocol=5))
            t0 = time.perf_counter()
            p = pack(batch)
            t1 = time.perf_counter()
            batch = unpack(p)
            unpack_s += time.perf_counter() - t1
            pack_s += t1 - t0
            packed += len(p)
            crossings += 1
    print(f"{len(specs)} partitions, {crossings} pool crossings")
    if not crossings:
        return
    print(f"pickled WorkBatch (before): {raw / 1e6:.1f} MB in all, {raw / crossings / 1e6:.2f} MB per crossing")
    print(f"packed (datagen.transfer):  {packed / 1e6:.1f} MB in all, {packed / crossings / 1e6:.2f} MB per crossing")
    print(
        f"ratio {raw / packed:.1f}x; pack {pack_s / crossings * 1000:.0f} ms, "
        f"unpack {unpack_s / crossings * 1000:.0f} ms per crossing"
    )


if __name__ == "__main__":
    main(*sys.argv[1:])
