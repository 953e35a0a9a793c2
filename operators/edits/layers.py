"""Layer editing from a foreground matte (the main subject by GrabCut; with a detector, its best object refined). A
layer is a photo frame
whose mask is its alpha (255 = the layer's pixels). Decomposition: photo -> foreground layer (on white), and photo ->
background layer (the foreground's place left empty, its mask the hole). Fusion: foreground layer + background layer
-> the photo, pixel-exact."""

from __future__ import annotations

from typing import ClassVar, Literal

import numpy as np
from pydantic import Field

from datagen.batch import WorkBatch
from datagen.schema import Frame
from operators.edits.base import EditConfig, emu_edit
from operators.edits.matte import MatteEditOperator, describe_matte

DECOMPOSE, FUSE = "Layer Decomposition", "Layer Fusion"
FOREGROUND_LAYER, BACKGROUND_LAYER = "the foreground layer", "the background layer"


class LayersConfig(EditConfig):
    tasks: list[Literal["Layer Decomposition", "Layer Fusion"]] = Field([DECOMPOSE, FUSE], min_length=1)
    layer_fill: int = Field(255, ge=0, le=255, description="grey level outside a foreground layer's alpha (255: white)")
    hole_fill: int = Field(0, ge=0, le=255, description="grey level of the background layer's empty foreground place")
    min_foreground: float = Field(0.03, gt=0, lt=1)
    max_foreground: float = Field(0.7, gt=0, lt=1)


def split_layers(image: np.ndarray, matte: np.ndarray, layer_fill: int, hole_fill: int) -> tuple[Frame, Frame]:
    """(foreground layer, background layer) frames of a photo under a binary matte."""
    fg = np.where(matte[..., None] > 0, image, np.uint8(layer_fill)).astype(np.uint8)
    bg = np.where(matte[..., None] > 0, np.uint8(hole_fill), image).astype(np.uint8)
    return Frame(fg, mask=matte.copy()), Frame(bg, mask=matte.copy())


class Layers(MatteEditOperator):
    name = "layers"
    version = "1"
    Config: ClassVar[type[LayersConfig]] = LayersConfig

    def describe(self) -> str:
        return f"layers: {', '.join(self.config.tasks)} along the matte of {describe_matte(self.proposal_settings)}"

    def process(self, batch: WorkBatch) -> WorkBatch:
        self.setup()
        c = self.config
        stats = batch.stage(self.name)
        for item, p, matte, share in self.subjects(batch, stats):
            fg, bg = split_layers(item.image, matte, c.layer_fill, c.hole_fill)
            drawn = {"object": p.record(), "foreground_area": round(share, 4), "matte": "grabcut"}
            photo = Frame(item.image)
            if DECOMPOSE in c.tasks:
                for v, (layer, target) in enumerate(((FOREGROUND_LAYER, fg), (BACKGROUND_LAYER, bg))):
                    emu = emu_edit(
                        "layer",
                        edited_object=layer,
                        output=f"{layer} of {item.caption}" if item.caption else layer,
                        original_object=p.definite,
                    )
                    batch.samples.append(
                        self.sample(
                            batch,
                            item,
                            DECOMPOSE,
                            [photo],
                            target,
                            emu,
                            {"object": p.definite, "layer": layer},
                            {**drawn, "layer": layer},
                            variant=v,
                            caption=item.caption,
                        )
                    )
            if FUSE in c.tasks:
                emu = emu_edit("layer", edited_object=p.definite, output=item.caption, original_object="two layers")
                batch.samples.append(
                    self.sample(
                        batch,
                        item,
                        FUSE,
                        [fg, bg],
                        photo,
                        emu,
                        {"object": p.definite},
                        {**drawn, "layer": "both"},
                        variant=2,
                    )
                )
        return batch
