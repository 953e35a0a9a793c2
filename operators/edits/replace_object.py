"""Replace Object (model only): an object proposal's mask, grown to its box so a new shape fits, is inpainted by a
diffusers model with another object's prompt. OpenCV cannot invent an object, so without a checkpoint this is off."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from pydantic import Field

from datagen.batch import WorkBatch
from datagen.schema import Frame
from operators.edits.base import NO_OBJECT, EditConfig, dilate, emu_edit, pick, proposals_of
from operators.edits.inpaint import InpaintConfig, ObjectInpaintOperator

REPLACE = "Replace Object"
NEW_OBJECTS = [
    "a cat",
    "a dog",
    "a teddy bear",
    "a vase of flowers",
    "a red ball",
    "a potted plant",
    "a stack of books",
    "a wooden chair",
    "a bicycle",
    "a glass bottle",
    "a basket of apples",
    "a small robot",
    "a lamp",
    "a toy car",
]


class ReplaceObjectConfig(EditConfig):
    new_objects: list[str] = Field(
        NEW_OBJECTS, min_length=1, description="what a proposal may become (indefinite noun phrases)"
    )
    objects_per_image: int = Field(1, ge=1, le=8)
    dilate: int = Field(8, ge=0, description="px the object mask grows by")
    to_box: bool = Field(True, description="inpaint the object's whole box, so a new object of another shape fits")
    inpaint: InpaintConfig = InpaintConfig()


class ReplaceObject(ObjectInpaintOperator):
    name = "replace_object"
    version = "1"
    Config: ClassVar[type[ReplaceObjectConfig]] = ReplaceObjectConfig

    def unavailable_reason(self) -> str | None:
        if self.config.inpaint.backend != "model" or not self.config.inpaint.checkpoint:
            return (
                "Replace Object needs a diffusers inpainting model (inpaint.backend: model, inpaint.checkpoint); "
                "OpenCV cannot draw a new object"
            )
        return None

    def process(self, batch: WorkBatch) -> WorkBatch:
        self.setup()
        c = self.config
        stats = batch.stage(self.name)
        jobs = []
        for item in batch.items:
            props = proposals_of(item, self.name)[: c.objects_per_image]
            if not props:
                stats.skip(NO_OBJECT)
            for k, p in enumerate(props):
                rng = batch.rng(item.source_id, self.name, k)
                new = pick(rng, list(c.new_objects), 1, exclude=f"a {p.noun}")[0]
                mask = dilate(p.mask, c.dilate)
                if c.to_box:
                    x0, y0, x1, y1 = p.box
                    mask = mask.copy()
                    mask[y0:y1, x0:x1] = 255
                jobs.append((item, k, p, mask, new, int(rng.integers(2**62))))
        if not jobs:
            return batch
        prompts = [f"{new}, {item.caption}" if item.caption else new for item, _, _, _, new, _ in jobs]
        out = self._inpainter.fill(
            [j[0].image for j in jobs], [j[3] for j in jobs], prompts, [j[5] for j in jobs], c.batch_size
        )
        for (item, k, p, mask, new, _), edited in zip(jobs, out):
            emu = emu_edit("replace", edited_object=f"{new} {p.place}", output="", original_object=p.definite)
            drawn = {
                "object": p.record(),
                "new_object": new,
                "mask_area": round(float((np.asarray(mask) > 0).mean()), 4),
            }
            batch.samples.append(
                self.sample(
                    batch,
                    item,
                    REPLACE,
                    [Frame(item.image, mask=mask)],
                    Frame(edited),
                    emu,
                    {"object": p.definite, "new_object": new},
                    drawn,
                    variant=k,
                )
            )
        return batch
