"""Background Change: keep the foreground (the main subject's GrabCut matte; with a detector, grown from its best
object) and change the rest.
Model: a diffusers inpainting model regenerates the background from a scene prompt. Embedded default: a classical
filter on the background only (lens blur, black-and-white, colour tint), named as such in the instruction and logs."""
from __future__ import annotations

from typing import Any, ClassVar, Iterator, Literal, Optional

import cv2
import numpy as np
from pydantic import Field

from datagen.batch import WorkBatch
from datagen.devices import resolve_device
from datagen.schema import Frame
from operators.diffusion import feather
from operators.edit_base import CACHE, EditConfig, EditOperator, emu_edit, image_key, pick
from operators.object_proposals import ProposalConfig, Proposer, foreground_matte, subject, subject_matte
from operators.remove_object import NO_OBJECT, InpaintConfig, Inpainter, proposals_for

BACKGROUND = "Background Change"
NO_MATTE = "foreground matte covers too little or too much of the photo"
# classical filter -> how the new background is named in the instruction
CLASSICAL_BACKGROUNDS = {
    "blur": "a blurred, out-of-focus background",
    "grayscale": "a black-and-white background",
    "tint_blue": "a blue-tinted background",
    "tint_orange": "a warm orange-tinted background",
    "tint_purple": "a purple-tinted background",
}
_TINTS = {"tint_blue": (70, 120, 255), "tint_orange": (255, 150, 60), "tint_purple": (170, 90, 230)}
SCENES = [
    "a sandy beach at sunset", "a snowy mountain landscape", "a busy city street at night", "a lush green forest",
    "a plain white studio backdrop", "a field of sunflowers", "an old library with wooden shelves", "a desert under a blue sky",
    "a rainy street with reflections", "the surface of the moon",
]


class BackgroundChangeConfig(EditConfig):
    backend: Literal["classical", "model"] = Field("classical", description="classical: filter the background; model: regenerate it with `inpaint`")
    classical: list[Literal["blur", "grayscale", "tint_blue", "tint_orange", "tint_purple"]] = Field(
        list(CLASSICAL_BACKGROUNDS), min_length=1, description="classical background filters drawn from")
    scenes: list[str] = Field(SCENES, min_length=1, description="model: new backgrounds drawn from")
    min_foreground: float = Field(0.03, gt=0, lt=1, description="smallest matte kept, share of the photo")
    max_foreground: float = Field(0.7, gt=0, lt=1, description="largest matte kept, share of the photo")
    proposals: ProposalConfig = ProposalConfig()
    inpaint: InpaintConfig = InpaintConfig()


def matte_for(proposer: Proposer, cfg: ProposalConfig, item, min_foreground: float):
    """(subject proposal, its matte) of an item, or (None, None); computed once per worker. Classical: GrabCut from the
    photo's frame (the main subject, named so); model: GrabCut refining the detector's best object of that size."""
    if cfg.backend == "classical":
        p = CACHE.get(("subject", image_key(item)), lambda: subject_matte(item.image))
        return p, (p.mask if p is not None else None)
    props = proposals_for(proposer, cfg, item)
    p = subject(props, min_foreground)
    return p, CACHE.get(("matte", image_key(item), cfg.model_dump_json(), p.box if p else None), lambda: foreground_matte(item.image, p))


def describe_matte(cfg: ProposalConfig) -> str:
    if cfg.backend == "classical":
        return "the main subject by OpenCV GrabCut from the photo's frame (classical)"
    return f"GrabCut refining the best object of {Proposer(cfg).describe()}"


def classical_background(image: np.ndarray, background: np.ndarray, kind: str) -> np.ndarray:
    """The photo with `kind` applied where `background` (HxW uint8) is set, blended over a soft seam."""
    if kind == "blur":
        sigma = max(2.0, 0.015 * max(image.shape[:2]))
        edited = cv2.GaussianBlur(image, (0, 0), sigma)
    else:
        gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32)
        if kind == "grayscale":
            edited = np.repeat(gray[..., None], 3, axis=2)
        else:
            tint = np.array(_TINTS[kind], np.float32) / 255.0
            edited = 0.35 * image.astype(np.float32) + 0.65 * gray[..., None] * tint * 1.3
        edited = np.clip(edited, 0, 255).astype(np.uint8)
    a = feather(background, 2)[..., None]
    return np.clip(image * (1 - a) + edited * a + 0.5, 0, 255).astype(np.uint8)


class MatteEditOperator(EditOperator):
    """An edit along the photo's foreground matte (background change, layers, subject references): one proposer per
    worker, and per photo its subject and matte, photos without one (or with a matte outside the foreground share
    limits) counted and skipped."""

    def __init__(self, config=None, **context: Any):
        super().__init__(config, **context)
        self.stateful = self.uses_model()
        self._proposer: Optional[Proposer] = None

    def uses_model(self) -> bool:
        return self.config.proposals.backend == "model"

    def setup(self) -> None:
        if self._proposer is None:
            self._proposer = Proposer(self.config.proposals, resolve_device(self.config.device))
            self._proposer.setup()

    def subjects(self, batch: WorkBatch, stats) -> Iterator[tuple[Any, Any, np.ndarray, float]]:
        """(item, proposal, matte, foreground share) for each photo with a usable matte."""
        c = self.config
        for item in batch.items:
            p, matte = matte_for(self._proposer, c.proposals, item, c.min_foreground)
            if matte is None:
                stats.skip(NO_OBJECT)
                continue
            share = float((matte > 0).mean())
            if not c.min_foreground <= share <= c.max_foreground:
                stats.skip(NO_MATTE)
                continue
            yield item, p, matte, share


class BackgroundChange(MatteEditOperator):
    name = "background_change"
    version = "1"
    Config: ClassVar[type[BackgroundChangeConfig]] = BackgroundChangeConfig

    def __init__(self, config=None, **context: Any):
        super().__init__(config, **context)
        self._inpainter: Optional[Inpainter] = None

    def uses_model(self) -> bool:
        return self.config.backend == "model" or self.config.proposals.backend == "model"

    def unavailable_reason(self) -> str | None:
        c = self.config
        if c.backend == "model" and (c.inpaint.backend != "model" or not c.inpaint.checkpoint):
            return "backend=model needs inpaint.backend: model and inpaint.checkpoint (a diffusers inpainting model)"
        return None

    def describe(self) -> str:
        c = self.config
        how = (f"regenerated by {Inpainter(c.inpaint, 'cpu').describe()}" if c.backend == "model"
               else f"classical background filters {c.classical} (blur/black-and-white/tint, no model)")
        return f"background_change: foreground = {describe_matte(c.proposals)}; background {how}"

    def setup(self) -> None:
        super().setup()
        if self.config.backend == "model" and self._inpainter is None:
            self._inpainter = Inpainter(self.config.inpaint, resolve_device(self.config.device))
            self._inpainter.setup()

    def process(self, batch: WorkBatch) -> WorkBatch:
        self.setup()
        c = self.config
        stats = batch.stage(self.name)
        jobs = []
        for item, p, matte, share in self.subjects(batch, stats):
            rng = batch.rng(item.source_id, self.name)
            background = np.where(matte > 0, 0, 255).astype(np.uint8)
            kind = pick(rng, list(c.scenes) if c.backend == "model" else list(c.classical), 1)[0]
            jobs.append((item, p, background, kind, int(rng.integers(2**62))))
        if not jobs:
            return batch
        if c.backend == "model":
            prompts = [f"{p.noun} in front of {kind}" for _, p, _, kind, _ in jobs]
            edited = self._inpainter.fill([j[0].image for j in jobs], [j[2] for j in jobs], prompts, [j[4] for j in jobs], c.batch_size)
        else:
            edited = [classical_background(item.image, bg, kind) for item, _, bg, kind, _ in jobs]
        for (item, p, background, kind, _), out in zip(jobs, edited):
            new = kind if c.backend == "model" else CLASSICAL_BACKGROUNDS[kind]
            emu = emu_edit("background", edited_object=new, output=f"{p.definite} in front of {new}" if c.backend == "model" else item.caption,
                           original_object="the background")
            drawn = {"object": p.record(), "background": kind, "foreground_area": round(1 - float((background > 0).mean()), 4),
                     "how": "diffusers" if c.backend == "model" else "classical_filter"}
            batch.samples.append(self.sample(batch, item, BACKGROUND, [Frame(item.image, mask=background)], Frame(out), emu,
                                             {"object": p.definite, "background": new}, drawn))
        return batch
