"""The shared shape of the ten low-level condition operators: compute a condition map from a photo, then emit
one CU per enabled direction (analysis: photo -> map; controllable generation: map -> photo).
A condition module only implements `make_condition`."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, Literal, Optional

import numpy as np
from pydantic import Field, model_validator

from datagen import placement, schema
from datagen.batch import ITEMS, SAMPLES, WorkBatch
from datagen.devices import resolve_device
from datagen.operator import Operator, OperatorConfig, Resources, Role
from datagen.placement import Placement
from datagen.schema import Frame, Provenance, Sample, Turn


class SkipImage(Exception):
    """This image cannot give this condition (for example: no person for pose). Counted with its reason."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class ConditionConfig(OperatorConfig):
    directions: list[Literal["analysis", "generation"]] = ["analysis", "generation"]


class ModelConditionConfig(ConditionConfig, Placement):
    """A condition with a model path and, unless the operator says otherwise, a classical default."""

    backend: Literal["classical", "model"] = Field(
        "classical", description="classical: embedded algorithm; model: load `checkpoint`"
    )
    checkpoint: Optional[str] = Field(
        None, description="local path (or hub id where the loader takes one) of the model weights"
    )
    batch_size: int = Field(8, ge=1, description="images per model call")

    @model_validator(mode="after")
    def _model_needs_checkpoint(self):
        if self.backend == "model" and not self.checkpoint:
            raise ValueError("backend=model needs `checkpoint` (a local path to the weights)")
        return self


class ModelOnlyConfig(ConditionConfig, Placement):
    """A condition that exists only as a model: without a checkpoint the operator is off."""

    checkpoint: Optional[str] = Field(
        None, description="local path or hub id of the model; unset means this condition is OFF"
    )
    batch_size: int = Field(4, ge=1, description="images per model call")


def uses_model(config: Any) -> bool:
    return getattr(config, "backend", "model") == "model"


def model_resources(config: Any, uses_gpu: bool = True) -> Resources:
    """The classical backend runs in the partition's task, 16 images a call; the model where its placement says."""
    if not uses_model(config):
        return Resources(batch_size=16)
    return placement.resources(config, uses_gpu)


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
        return _each(self.make_condition, images, rngs)

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


class ModelCondition(ConditionOperator):
    """A condition made only by a model (ModelOnlyConfig): off without a checkpoint, loaded once per actor."""

    Config: ClassVar[type[ConditionConfig]] = ModelOnlyConfig
    stateful = True

    def resources(self) -> Resources:
        return model_resources(self.config)

    def params(self) -> dict[str, Any]:
        return super().params()


class ClassicalOrModelCondition(ConditionOperator):
    """A condition with an embedded classical algorithm and, with backend=model, a model instead. This class holds
    the wiring (state only where a model loads, resources, which keys enter provenance, describe, loading once);
    an operator states its two algorithms: `classical_conditions` and `load_model` + `model_conditions` (or the
    per-image `classical_condition` / `model_condition`), and `describe_classical` / `describe_model`."""

    Config: ClassVar[type[ConditionConfig]] = ModelConditionConfig
    classical_keys: ClassVar[tuple[str, ...]] = ()  # config keys only the classical algorithm reads
    model_keys: ClassVar[tuple[str, ...]] = ()  # config keys only the model reads

    def __init__(self, config=None, **context: Any):
        super().__init__(config, **context)
        self.stateful = uses_model(self.config)  # a model loads once per actor; the classical side needs no state
        self._model: Any = None
        self._device = "cpu"

    @property
    def uses_model(self) -> bool:
        return uses_model(self.config)

    def resources(self) -> Resources:
        return model_resources(self.config)

    def unused_keys(self) -> tuple[str, ...]:
        """Config keys the chosen side does not read: left out of provenance, so they do not change sample keys."""
        return self.classical_keys if self.uses_model else self.model_keys

    def params(self) -> dict[str, Any]:
        p = super().params()
        for k in self.unused_keys():
            p.pop(k)
        return p

    def describe(self) -> str:
        return self.describe_model() if self.uses_model else self.describe_classical()

    def describe_classical(self) -> str:
        raise NotImplementedError

    def describe_model(self) -> str:
        raise NotImplementedError

    def load_model(self, device: str) -> Any:
        """The model from `config.checkpoint` on `device`."""
        raise NotImplementedError

    def setup(self) -> None:
        if self.uses_model and self._model is None:
            self._device = resolve_device(self.config.device)
            self._model = self.load_model(self._device)

    def make_conditions(
        self, images: list[np.ndarray], rngs: list[np.random.Generator]
    ) -> list[tuple[np.ndarray, dict] | SkipImage]:
        if not self.uses_model:
            return self.classical_conditions(images, rngs)
        self.setup()
        return self.model_conditions(images, rngs)

    def make_condition(self, image: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, dict[str, Any]]:
        res = self.make_conditions([image], [rng])[0]
        if isinstance(res, SkipImage):
            raise res
        return res

    def classical_conditions(self, images: list[np.ndarray], rngs: list[np.random.Generator]) -> list:
        return _each(self.classical_condition, images, rngs)

    def model_conditions(self, images: list[np.ndarray], rngs: list[np.random.Generator]) -> list:
        return _each(self.model_condition, images, rngs)

    def classical_condition(self, image: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, dict[str, Any]]:
        raise NotImplementedError

    def model_condition(self, image: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, dict[str, Any]]:
        raise NotImplementedError


def _each(make, images: list[np.ndarray], rngs: list[np.random.Generator]) -> list[tuple[np.ndarray, dict] | SkipImage]:
    """One image at a time, a SkipImage kept in its place."""
    out: list[tuple[np.ndarray, dict] | SkipImage] = []
    for image, rng in zip(images, rngs):
        try:
            out.append(make(image, rng))
        except SkipImage as s:
            out.append(s)
    return out
