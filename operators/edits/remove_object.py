"""Remove Object, and Add Object as its reverse: an object proposal's (dilated) mask is filled in, by OpenCV
inpainting (Telea or Navier-Stokes; only masks small enough for it to look plausible) or by a diffusers inpainting
model. Remove: photo -> object-free image. Add: object-free image -> photo, pixel-exact outside the mask."""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import AfterValidator, Field

from datagen.batch import WorkBatch
from datagen.config import no_repeats
from datagen.schema import Frame
from operators.edits.base import NO_OBJECT, EditConfig, dilate, emu_edit, proposals_of
from operators.edits.inpaint import TOO_LARGE, InpaintConfig, ObjectInpaintOperator

REMOVE, ADD = "Remove Object", "Add Object"


class RemoveObjectConfig(EditConfig):
    tasks: Annotated[list[Literal["Remove Object", "Add Object"]], AfterValidator(no_repeats)] = Field(
        [REMOVE, ADD], min_length=1
    )
    objects_per_image: int = Field(1, ge=1, le=8, description="objects removed per photo, best proposals first")
    dilate: int = Field(6, ge=0, description="px the object mask grows by before filling (its soft edge and fringe)")
    inpaint: InpaintConfig = InpaintConfig()


class RemoveObject(ObjectInpaintOperator):
    name = "remove_object"
    version = "1"
    Config: ClassVar[type[RemoveObjectConfig]] = RemoveObjectConfig

    def process(self, batch: WorkBatch) -> WorkBatch:
        self.setup()
        c = self.config
        stats = batch.stage(self.name)
        jobs = []  # (item, object index, proposal, dilated mask)
        for item in batch.items:
            props = proposals_of(item, self.name)
            if not props:
                stats.skip(NO_OBJECT)
                continue
            taken = 0
            for k, p in enumerate(props):
                if taken >= c.objects_per_image:
                    break
                mask = dilate(p.mask, c.dilate)
                if self._inpainter.too_large(mask):
                    stats.skip(TOO_LARGE)
                    continue
                jobs.append((item, k, p, mask))
                taken += 1
        if not jobs:
            return batch
        seeds = [int(batch.rng(it.source_id, self.name, k).integers(2**62)) for it, k, _, _ in jobs]
        filled = self._inpainter.fill(
            [it.image for it, _, _, _ in jobs],
            [m for *_, m in jobs],
            [c.inpaint.prompt] * len(jobs),
            seeds,
            c.batch_size,
        )
        how = "opencv_" + c.inpaint.method if c.inpaint.backend == "classical" else "diffusers"
        for (item, k, p, mask), clean in zip(jobs, filled):
            drawn = {"object": p.record(), "fill": how, "mask_area": round(float((mask > 0).mean()), 4)}
            if REMOVE in c.tasks:
                emu = emu_edit("remove", edited_object="", output=item.caption, original_object=p.definite)
                batch.samples.append(
                    self.sample(
                        batch,
                        item,
                        REMOVE,
                        [Frame(item.image, mask=mask)],
                        Frame(clean),
                        emu,
                        {"object": p.definite},
                        drawn,
                        variant=k,
                    )
                )
            if ADD in c.tasks:
                emu = emu_edit("add", edited_object=p.indefinite, output=item.caption, original_object="")
                batch.samples.append(
                    self.sample(
                        batch,
                        item,
                        ADD,
                        [Frame(clean, mask=mask)],
                        Frame(item.image),
                        emu,
                        {"object": p.indefinite},
                        drawn,
                        variant=k,
                    )
                )
        return batch
