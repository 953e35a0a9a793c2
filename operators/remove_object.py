"""Remove Object, and Add Object as its reverse: an object proposal's (dilated) mask is filled in, by OpenCV
inpainting (Telea or Navier-Stokes; only masks small enough for it to look plausible) or by a diffusers inpainting
model. Remove: photo -> object-free image. Add: object-free image -> photo, pixel-exact outside the mask."""
from __future__ import annotations

from typing import Any, ClassVar, Literal, Optional

import cv2
import numpy as np
from pydantic import Field, field_validator

from datagen.batch import WorkBatch
from datagen.devices import resolve_device
from datagen.schema import Frame
from operators.diffusion import INPAINT, DiffusionConfig, DiffusionRunner, paste
from operators.edit_base import CACHE, EditConfig, EditOperator, dilate, emu_edit, image_key
from operators.object_proposals import ProposalConfig, Proposer

REMOVE, ADD = "Remove Object", "Add Object"
TOO_LARGE = "mask too large for OpenCV inpainting"
NO_OBJECT = "no object proposal"


class InpaintConfig(DiffusionConfig):
    backend: Literal["classical", "model"] = Field("classical", description="classical: OpenCV inpainting; model: diffusers `checkpoint`")
    method: Literal["telea", "ns"] = Field("telea", description="OpenCV inpainting: Telea's fast marching or Navier-Stokes")
    radius: int = Field(7, ge=1, description="OpenCV inpainting neighbourhood, px")
    max_area: float = Field(0.05, gt=0, le=1, description="classical only: largest (dilated) mask OpenCV fills plausibly, share of the image")
    prompt: str = Field("empty background, nothing there, seamless continuation of the surroundings",
                        description="model prompt for filling a removed object's place")


class RemoveObjectConfig(EditConfig):
    tasks: list[Literal["Remove Object", "Add Object"]] = Field([REMOVE, ADD], min_length=1)
    objects_per_image: int = Field(1, ge=1, le=8, description="objects removed per photo, best proposals first")
    dilate: int = Field(6, ge=0, description="px the object mask grows by before filling (its soft edge and fringe)")
    proposals: ProposalConfig = ProposalConfig()
    inpaint: InpaintConfig = InpaintConfig()

    @field_validator("tasks")
    @classmethod
    def _unique(cls, v):
        if len(set(v)) != len(v):
            raise ValueError(f"tasks must not repeat, got {v}")
        return v


def opencv_inpaint(image: np.ndarray, mask: np.ndarray, method: str, radius: int) -> np.ndarray:
    flag = cv2.INPAINT_TELEA if method == "telea" else cv2.INPAINT_NS
    bgr = cv2.inpaint(cv2.cvtColor(image, cv2.COLOR_RGB2BGR), (mask > 0).astype(np.uint8) * 255, radius, flag)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def proposals_for(proposer: Proposer, cfg: ProposalConfig, item) -> list:
    """An item's proposals, computed once per worker for every maker that asks with the same settings."""
    return CACHE.get(("proposals", image_key(item), cfg.model_dump_json()), lambda: proposer.propose(item.image, item.caption))


class Inpainter:
    """OpenCV or diffusers inpainting behind one call; model outputs keep the photo's own pixels outside the mask."""

    def __init__(self, cfg: InpaintConfig, device: str):
        self.cfg = cfg
        self.runner = DiffusionRunner(cfg, INPAINT, device) if cfg.backend == "model" else None

    def setup(self) -> None:
        if self.runner is not None:
            self.runner.setup()

    def describe(self) -> str:
        c = self.cfg
        if self.runner is None:
            return f"OpenCV {'Telea' if c.method == 'telea' else 'Navier-Stokes'} inpainting r={c.radius}, masks <= {c.max_area:.0%} (classical)"
        return f"diffusers inpainting {c.checkpoint}, {c.steps} steps at {c.resolution}px (model)"

    def too_large(self, mask: np.ndarray) -> bool:
        return self.runner is None and float((mask > 0).mean()) > self.cfg.max_area

    def fill(self, images: list[np.ndarray], masks: list[np.ndarray], prompts: list[str], seeds: list[int], batch_size: int) -> list[np.ndarray]:
        if self.runner is None:
            return [opencv_inpaint(im, m, self.cfg.method, self.cfg.radius) for im, m in zip(images, masks)]
        gen = self.runner.run(images, prompts, seeds, masks=masks, batch_size=batch_size)
        return [paste(im, g, m) for im, g, m in zip(images, gen, masks)]


class ObjectInpaintOperator(EditOperator):
    """Shared by the makers that propose objects and inpaint masks (remove/add, replace)."""

    def __init__(self, config=None, **context: Any):
        super().__init__(config, **context)
        self.stateful = self.uses_model()
        self._proposer: Optional[Proposer] = None
        self._inpainter: Optional[Inpainter] = None

    def uses_model(self) -> bool:
        return self.config.inpaint.backend == "model" or self.config.proposals.backend == "model"

    def setup(self) -> None:
        if self._proposer is None:
            device = resolve_device(self.config.device)
            self._proposer = Proposer(self.config.proposals, device)
            self._inpainter = Inpainter(self.config.inpaint, device)
            self._proposer.setup()
            self._inpainter.setup()

    def describe(self) -> str:
        return f"{self.name}: objects from {Proposer(self.config.proposals).describe()}; fill by {Inpainter(self.config.inpaint, 'cpu').describe()}"


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
            props = proposals_for(self._proposer, c.proposals, item)
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
        filled = self._inpainter.fill([it.image for it, _, _, _ in jobs], [m for *_, m in jobs],
                                      [c.inpaint.prompt] * len(jobs), seeds, c.batch_size)
        how = "opencv_" + c.inpaint.method if c.inpaint.backend == "classical" else "diffusers"
        for (item, k, p, mask), clean in zip(jobs, filled):
            drawn = {"object": p.record(), "fill": how, "mask_area": round(float((mask > 0).mean()), 4)}
            if REMOVE in c.tasks:
                emu = emu_edit("remove", edited_object="", output=item.caption, original_object=p.definite)
                batch.samples.append(self.sample(batch, item, REMOVE, [Frame(item.image, mask=mask)], Frame(clean),
                                                 emu, {"object": p.definite}, drawn, variant=k))
            if ADD in c.tasks:
                emu = emu_edit("add", edited_object=p.indefinite, output=item.caption, original_object="")
                batch.samples.append(self.sample(batch, item, ADD, [Frame(clean, mask=mask)], Frame(item.image),
                                                 emu, {"object": p.indefinite}, drawn, variant=k))
        return batch
