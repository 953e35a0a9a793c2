"""Text-to-Image: every photo with a caption becomes a CU with no input image, whose target is the photo and whose
instruction (from the template stage) is built from the caption. Photos without a caption are counted and skipped."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from datagen.batch import WorkBatch
from datagen.schema import Frame
from operators.edits.base import EditConfig, EditOperator, emu_edit
from operators.instructions.text import clean_caption

TEXT_TO_IMAGE = "Text-to-Image"
NO_CAPTION = "no caption"


class TextToImageConfig(EditConfig):
    min_words: int = Field(2, ge=1, description="captions shorter than this say too little to generate from")


class TextToImage(EditOperator):
    name = "text_to_image"
    version = "1"
    Config: ClassVar[type[TextToImageConfig]] = TextToImageConfig

    def describe(self) -> str:
        return (
            f"text_to_image: one caption -> photo CU per captioned photo (captions of >= {self.config.min_words} words)"
        )

    def process(self, batch: WorkBatch) -> WorkBatch:
        stats = batch.stage(self.name)
        for item in batch.items:
            caption = clean_caption(item.caption)
            if len(caption.split()) < self.config.min_words:
                stats.skip(NO_CAPTION)
                continue
            emu = emu_edit("text", edited_object=caption, output=caption, original_object="")
            batch.samples.append(self.sample(batch, item, TEXT_TO_IMAGE, [], Frame(item.image), emu, {}, {}))
        return batch
