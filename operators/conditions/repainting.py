"""Repainting: inpainting (brush strokes or boxes) and outpainting (a kept inner box) CUs from a photo. The input is
the photo with the masked region filled, its mask (255 = repaint), and the target is the untouched photo."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

import numpy as np
from pydantic import AfterValidator, Field

from datagen import schema
from datagen.batch import ITEMS, SAMPLES, WorkBatch
from datagen.config import no_repeats
from datagen.operator import Operator, OperatorConfig, Role
from datagen.schema import Frame, Provenance, Sample, Turn
from operators.conditions.masks import BoxParams, OutpaintParams, StrokeParams, inpaint_mask, outpaint_mask

INPAINTING, OUTPAINTING = "Inpainting", "Outpainting"  # ACE task names, registered in datagen/schema.py
for _task in (INPAINTING, OUTPAINTING):
    assert schema.TASKS[_task].group == "repainting", _task


class RepaintingConfig(OperatorConfig):
    tasks: Annotated[list[Literal["Inpainting", "Outpainting"]], AfterValidator(no_repeats)] = Field(
        [INPAINTING, OUTPAINTING], min_length=1, description="one CU per task per photo"
    )
    fill: int = Field(
        0, ge=0, le=255, description="grey level written into the masked region of the input (scepter: 0)"
    )
    stroke_prob: float = Field(
        0.5, ge=0, le=1, description="inpainting mask kind: strokes with this probability, else boxes"
    )
    strokes: StrokeParams = StrokeParams()
    boxes: BoxParams = BoxParams()
    outpaint: OutpaintParams = OutpaintParams()


def masked_source(image: np.ndarray, mask: np.ndarray, fill: int) -> np.ndarray:
    out = image.copy()
    out[mask == 255] = fill
    return out


class Repainting(Operator):
    name = "repainting"
    version = "1"
    role = Role.MAKE
    reads = (ITEMS,)
    writes = (SAMPLES,)
    Config: ClassVar[type[RepaintingConfig]] = RepaintingConfig

    def describe(self) -> str:
        c = self.config
        return (
            f"repainting: {', '.join(c.tasks)}; strokes {c.strokes.strokes} (width<={c.strokes.width[1]}, "
            f"length<={c.strokes.length[1]}) "
            f"p={c.stroke_prob} else boxes {c.boxes.boxes} of {c.boxes.size} px; outpaint sides {c.outpaint.sides} "
            f"(classical masks)"
        )

    def _params_for(self, task: str) -> dict[str, Any]:
        c = self.config
        if task == INPAINTING:
            return c.model_dump(mode="json", include={"fill", "stroke_prob", "strokes", "boxes"})
        return c.model_dump(mode="json", include={"fill", "outpaint"})

    def process(self, batch: WorkBatch) -> WorkBatch:
        c = self.config
        for item in batch.items:
            h, w = item.image.shape[:2]
            for task in c.tasks:
                rng = batch.rng(item.source_id, self.name, task)
                if task == INPAINTING:
                    mask, drawn = inpaint_mask(h, w, rng, c.strokes, c.boxes, c.stroke_prob)
                else:
                    mask, drawn = outpaint_mask(h, w, rng, c.outpaint)
                turn = Turn(
                    task=task,
                    direction=schema.TASKS[task].direction,
                    inputs=[Frame(masked_source(item.image, mask, c.fill), mask=mask)],
                    target=Frame(item.image),
                    caption=item.caption,
                )
                prov = Provenance(
                    sources=[item.uri],
                    source_ids=[item.source_id],
                    operator=self.name,
                    operator_version=self.version,
                    params={**self._params_for(task), **drawn},
                    recipe=batch.recipe,
                )
                batch.samples.append(Sample(turns=[turn], provenance=prov))
        return batch
