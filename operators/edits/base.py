"""What the makers of synthesized edits share (remove/add/replace object, background, style, layers, text-to-image):
the execution keys (device, GPUs, batch), the Emu Edit record and instruction slots every sample carries in its
provenance, and one sample builder, so each maker only says which frames an edit makes."""

from __future__ import annotations

from typing import Any, ClassVar, Optional

import numpy as np
from pydantic import Field

from datagen import placement, schema
from datagen.batch import ITEM_PROPOSALS, ITEMS, SAMPLES, SourceImage, WorkBatch
from datagen.operator import Operator, OperatorConfig, Resources, Role
from datagen.placement import Placement
from datagen.schema import EMU_FIELDS, PARAM_EMU_EDIT, PARAM_SLOTS, Frame, Provenance, Sample, Turn
from datagen.worker_cache import ItemCache
from operators.edits.object_proposals import Proposal, ProposalConfig


class EditConfig(OperatorConfig, Placement):
    batch_size: int = Field(4, ge=1, description="images per model call")


def emu_edit(edit: str, edited_object: str = "", output: str = "", original_object: str = "") -> dict[str, str]:
    """Emu Edit's instruction record: the kind of edit, the object as it is after it, the new caption, the object
    before it. Every field is present (empty where the edit has none, e.g. no original object for an addition)."""
    rec = {"edit": edit, "edited_object": edited_object, "output": output, "original_object": original_object}
    assert tuple(rec) == EMU_FIELDS
    return {k: " ".join(str(v).split()) for k, v in rec.items()}


class EditOperator(Operator):
    """A MAKE-role operator whose samples are synthesized from one photo."""

    role = Role.MAKE
    reads = (ITEMS,)
    writes = (SAMPLES,)
    Config: ClassVar[type[EditConfig]] = EditConfig

    def uses_model(self) -> bool:
        return False

    def resources(self) -> Resources:
        if not self.uses_model():
            return Resources(batch_size=16)
        return placement.resources(self.config)

    def sample(
        self,
        batch: WorkBatch,
        item: SourceImage,
        task: str,
        inputs: list[Frame],
        target: Frame,
        emu: dict[str, str],
        slots: dict[str, str],
        drawn: dict[str, Any],
        variant: int = 0,
        caption: Optional[str] = None,
    ) -> Sample:
        """One CU. Its caption (what template lines say with {caption}) is the edit's output caption unless given:
        layer decomposition's templates describe the photo the layer comes from."""
        caption = emu.get("output", "") if caption is None else caption
        turn = Turn(task=task, direction=schema.TASKS[task].direction, inputs=inputs, target=target, caption=caption)
        prov = Provenance(
            sources=[item.uri],
            source_ids=[item.source_id],
            operator=self.name,
            operator_version=self.version,
            params={**self.params(), **drawn, PARAM_EMU_EDIT: emu, PARAM_SLOTS: slots},
            recipe=batch.recipe,
            variant=variant,
        )
        return Sample(turns=[turn], provenance=prov)


# what several edit makers compute from the same photo's proposals (the foreground matte): the makers run one after
# another in one worker, so each photo is analysed once, not once per maker
CACHE = ItemCache()


def image_key(item: SourceImage) -> tuple:
    """What identifies an item in the cache: its source id (its caption goes with it into the proposals) and its
    pixels (datagen.identity: two items with one source id but other pixels, e.g. resized differently by two
    recipes, never share an entry)."""
    from datagen.identity import photo_key

    return (item.source_id, photo_key(item.image))


def dilate(mask: np.ndarray, px: int) -> np.ndarray:
    import cv2

    if px <= 0:
        return mask.copy()
    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * px + 1, 2 * px + 1))
    return cv2.dilate(mask, k)


def pick(rng: np.random.Generator, options: list, k: int, exclude: Optional[str] = None) -> list:
    pool = [o for o in options if o != exclude]
    if not pool:
        return []
    idx = rng.choice(len(pool), size=min(k, len(pool)), replace=False)
    return [pool[int(i)] for i in idx]


NO_OBJECT = "no object proposal"


class ProposalEdit(EditOperator):
    """An edit made from the objects a photo holds: it reads the proposals the object_proposals stage wrote onto each
    photo (once per photo, for every such edit) and records their settings, which the pipeline passes as the
    `proposals` context, in its samples' parameters (part of their keys)."""

    def __init__(self, config=None, **context: Any):
        super().__init__(config, **context)
        self.proposal_settings: ProposalConfig = context.get("proposals") or ProposalConfig()
        if self.reads_proposals():
            self.reads = (ITEMS, ITEM_PROPOSALS)

    def reads_proposals(self) -> bool:
        """Whether it needs the object_proposals stage before it (a classical matte needs none)."""
        return True

    def params(self) -> dict[str, Any]:
        return {**super().params(), "proposals": self.proposal_settings.model_dump(mode="json")}


def proposals_of(item: SourceImage, stage: str) -> list[Proposal]:
    """The photo's proposals as the object_proposals stage wrote them; an error (the photo quarantined, the job's stage
    list wrong) when that stage did not run."""
    if item.proposals is None:
        raise ValueError(f"{item.uri}: no object proposals; the object_proposals stage must run before {stage}")
    return item.proposals
