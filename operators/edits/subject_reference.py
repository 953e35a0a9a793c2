"""Reference Generation from one photo (subject-driven): the subject, cut out along its matte (GrabCut), centred and
scaled on a plain canvas, is the reference; the photo that holds it is the target. The pairing job makes the other
kind of reference samples, from related real photos; this one needs no second photo."""

from __future__ import annotations

from typing import ClassVar

import cv2
import numpy as np
from pydantic import Field

from datagen.batch import WorkBatch
from datagen.schema import Frame
from operators.edits.base import EditConfig, emu_edit
from operators.edits.matte import MatteEditOperator, describe_matte

REFERENCE = "Reference Generation"


class SubjectReferenceConfig(EditConfig):
    fill: int = Field(
        255, ge=0, le=255, description="grey level of the reference canvas around the subject (255: white)"
    )
    subject_share: float = Field(
        0.7, gt=0.1, le=1.0, description="the subject's longer side as a share of the canvas side"
    )
    min_foreground: float = Field(0.03, gt=0, lt=1)
    max_foreground: float = Field(0.7, gt=0, lt=1)


def subject_on_canvas(image: np.ndarray, matte: np.ndarray, fill: int, share: float) -> np.ndarray:
    """The matte's pixels, cropped to their box, scaled so the longer side is `share` of the canvas, centred on a
    canvas the size of the photo filled with `fill`."""
    h, w = image.shape[:2]
    ys, xs = np.nonzero(matte)
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    crop = np.where(matte[y0:y1, x0:x1, None] > 0, image[y0:y1, x0:x1], np.uint8(fill)).astype(np.uint8)
    s = share * min(h, w) / max(y1 - y0, x1 - x0)
    ch, cw = max(1, int(round((y1 - y0) * s))), max(1, int(round((x1 - x0) * s)))
    crop = cv2.resize(crop, (cw, ch), interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_CUBIC)
    canvas = np.full_like(image, fill)
    oy, ox = (h - ch) // 2, (w - cw) // 2
    canvas[oy : oy + ch, ox : ox + cw] = crop
    return canvas


class SubjectReference(MatteEditOperator):
    name = "subject_reference"
    version = "1"
    Config: ClassVar[type[SubjectReferenceConfig]] = SubjectReferenceConfig

    def describe(self) -> str:
        return (
            f"subject_reference: the subject cut out along the matte of {describe_matte(self.proposal_settings)} -> "
            f"the photo"
        )

    def process(self, batch: WorkBatch) -> WorkBatch:
        self.setup()
        c = self.config
        stats = batch.stage(self.name)
        for item, p, matte, share in self.subjects(batch, stats):
            ref = subject_on_canvas(item.image, matte, c.fill, c.subject_share)
            subject = f"the {p.noun}"
            emu = emu_edit("reference", edited_object=subject, output=item.caption, original_object=subject)
            drawn = {"object": p.record(), "foreground_area": round(share, 4), "matte": "grabcut"}
            batch.samples.append(
                self.sample(batch, item, REFERENCE, [Frame(ref)], Frame(item.image), emu, {"object": subject}, drawn)
            )
        return batch
