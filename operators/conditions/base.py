"""The shared shape of the ten low-level condition operators: compute a condition map from a photo, then emit
one CU per enabled direction (analysis: photo -> map; controllable generation: map -> photo).
A condition module only implements `make_condition`."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, Literal, Optional

import numpy as np
from pydantic import Field, model_validator

from datagen import schema
from datagen.batch import ITEMS, SAMPLES, WorkBatch
from datagen.devices import resolve_device  # noqa: F401  (the condition operators resolve "auto" through it)
from datagen.operator import Operator, OperatorConfig, Resources, Role
from datagen.schema import Frame, Provenance, Sample, Turn


class SkipImage(Exception):
    """This image cannot give this condition (for example: no person for pose). Counted with its reason."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class ConditionConfig(OperatorConfig):
    directions: list[Literal["analysis", "generation"]] = ["analysis", "generation"]


# Keys that say how to run, not what to make: left out of provenance so a CPU rerun keeps the sample keys.
EXECUTION_KEYS = {"enabled", "device", "num_gpus", "batch_size"}


class ModelConditionConfig(ConditionConfig):
    """A condition with a model path and, unless the operator says otherwise, a classical default."""

    backend: Literal["classical", "model"] = Field(
        "classical", description="classical: embedded algorithm; model: load `checkpoint`"
    )
    checkpoint: Optional[str] = Field(
        None, description="local path (or hub id where the loader takes one) of the model weights"
    )
    device: str = Field("auto", description="auto (CUDA only where Ray assigned this worker a GPU), cpu, cuda, cuda:N")
    num_gpus: float = Field(0.0, ge=0, description="GPUs per actor when the model runs (cluster recipes set e.g. 0.25)")
    batch_size: int = Field(8, ge=1, description="images per model call")

    @model_validator(mode="after")
    def _model_needs_checkpoint(self):
        if self.backend == "model" and not self.checkpoint:
            raise ValueError("backend=model needs `checkpoint` (a local path to the weights)")
        return self


class ModelOnlyConfig(ConditionConfig):
    """A condition that exists only as a model: without a checkpoint the operator is off."""

    checkpoint: Optional[str] = Field(
        None, description="local path or hub id of the model; unset means this condition is OFF"
    )
    device: str = Field("auto", description="auto (CUDA only where Ray assigned this worker a GPU), cpu, cuda, cuda:N")
    num_gpus: float = Field(0.0, ge=0, description="GPUs per actor (cluster recipes set e.g. 0.25)")
    batch_size: int = Field(4, ge=1, description="images per model call")


def uses_model(config: Any) -> bool:
    return getattr(config, "backend", "model") == "model"


def model_resources(config: Any) -> Resources:
    if not uses_model(config):
        return Resources(batch_size=16)
    return Resources(num_cpus=1.0, num_gpus=float(config.num_gpus), batch_size=int(config.batch_size))


def provenance_params(config: Any) -> dict[str, Any]:
    return config.model_dump(mode="json", exclude=EXECUTION_KEYS)


class ConditionOperator(Operator):
    condition: ClassVar[str] = ""
    Config: ClassVar[type[ConditionConfig]] = ConditionConfig
    role = Role.MAKE  # makes samples from source images
    reads = (ITEMS,)
    writes = (SAMPLES,)

    def make_condition(self, image: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, dict[str, Any]]:
        """Photo (HxWx3 uint8 RGB) -> (condition map HxWx3 uint8, per-image parameters drawn from rng)."""
        raise NotImplementedError

    def make_conditions(
        self, images: list[np.ndarray], rngs: list[np.random.Generator]
    ) -> list[tuple[np.ndarray, dict] | SkipImage]:
        """Batched form; model-backed operators override this to run the model on a whole batch at once."""
        out: list[tuple[np.ndarray, dict] | SkipImage] = []
        for image, rng in zip(images, rngs):
            try:
                out.append(self.make_condition(image, rng))
            except SkipImage as s:
                out.append(s)
        return out

    def process(self, batch: WorkBatch) -> WorkBatch:
        stats = batch.stage(self.name)
        bs = max(1, self.resources().batch_size)
        params = self.params()
        directions = list(self.config.directions)
        for start in range(0, len(batch.items), bs):
            items = batch.items[start : start + bs]
            rngs = [batch.rng(it.source_id, self.name) for it in items]
            for item, res in zip(items, self.make_conditions([it.image for it in items], rngs)):
                if isinstance(res, SkipImage):
                    stats.skip(res.reason)
                    continue
                cmap, drawn = res
                photo = Frame(item.image)
                cond = Frame(cmap, role=schema.ROLE_CONDITION)
                prov = Provenance(
                    sources=[item.uri],
                    source_ids=[item.source_id],
                    operator=self.name,
                    operator_version=self.version,
                    params={**params, **drawn},
                    recipe=batch.recipe,
                )
                for d in directions:
                    inputs, target = ([photo], cond) if d == schema.DIRECTION_ANALYSIS else ([cond], photo)
                    turn = Turn(
                        task=schema.condition_task(self.condition, d),
                        direction=d,
                        inputs=inputs,
                        target=target,
                        caption=item.caption,
                    )
                    # each direction its own provenance: later stages write per-sample records and scores into it
                    own = dataclasses.replace(prov, params=dict(prov.params), scores={})
                    batch.samples.append(Sample(turns=[turn], provenance=own))
        return batch


def gray3(gray: np.ndarray) -> np.ndarray:
    """HxW uint8 -> HxWx3 uint8: condition maps are stored as RGB like every frame."""
    return np.ascontiguousarray(np.repeat(gray[..., None], 3, axis=2))
