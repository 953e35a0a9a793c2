"""Fan light planning work out (the kmeans job's plan reads the features files' footers): the same function over many
inputs, as Ray tasks when the recipe runs on Ray (large shared arrays are put in the object store once), or in a
plain loop for runtime.executor=local. The pairing's heavy steps are jobs of their own (datagen/pairing/steps.py)."""

from __future__ import annotations

from typing import Any, Callable, Sequence

from datagen.config import RuntimeConfig


def _in_worker(fn: Callable[..., Any], item: Any, **shared: Any) -> Any:
    """Run `fn` in a Ray task after telling datagen.devices which GPUs Ray gave it (none: CUDA hidden, so faiss-gpu
    in a CPU task cannot land on a GPU another task reserved)."""
    import ray

    from datagen import devices

    devices.assign_gpus(ray.get_gpu_ids())
    return fn(item, **shared)


def parallel_map(
    fn: Callable[..., Any],
    items: Sequence[Any],
    runtime: RuntimeConfig,
    num_cpus: float = 1,
    num_gpus: float = 0,
    always_remote: bool = False,
    **shared: Any,
) -> list[Any]:
    """[fn(item, **shared) for item in items], in order. A single CPU item runs in this process unless
    `always_remote` (work that reads embeddings: under Ray the driver must never hold them); work that wants a GPU
    always goes to a Ray task, since the driver of a cluster job often has none."""
    if runtime.executor == "local" or (len(items) <= 1 and not num_gpus and not always_remote):
        return [fn(item, **shared) for item in items]
    import ray

    from datagen.runtime import init_ray

    init_ray(runtime)
    refs = {k: ray.put(v) for k, v in shared.items()}
    remote = ray.remote(num_cpus=num_cpus, num_gpus=num_gpus, max_retries=runtime.max_task_retries)(_in_worker)
    return ray.get([remote.remote(fn, item, **refs) for item in items])
