"""Turn a decoded CU/LCU (datagen.schema.Sample) into what the model trains on, and collate those into batches.
Frames of a sample: every history turn's inputs, the current turn's inputs, then the target; each frame keeps
its mask (255 = edit, missing = all ones) and points at its own turn's instruction."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from datagen.schema import INDICATOR_RE, Sample, rewrite_history_indicator
from datagen.trainer.buckets import Bucket, fit_to_bucket
from datagen.trainer.models import INDICATOR_NONE, INDICATOR_TARGET, FrameLayout, indicator_id
from datagen.trainer.tokens import tokenize_instruction


class TooManyInputs(ValueError):
    """A sample has more input frames than there are indicator embeddings ({image1}..{image9})."""


@dataclass
class TrainExample:
    """One sample as the model sees it: pixels, or (from the latents job) the VAE latents and T5 states."""

    key: str
    images: np.ndarray | None  # [F, H, W, 3] uint8, all frames in one bucket (None: precomputed latents)
    masks: np.ndarray | None  # [F, H, W] uint8, 255 = edit
    frame_text: list[int]  # turn index of each frame (its CU's instruction)
    frame_indicator: list[int]
    is_target: list[bool]
    texts: list[str]  # one instruction per turn, history first
    text_indicators: list[dict[str, int]]  # per turn: indicator digits ('' for {image}) -> indicator id
    latents: torch.Tensor | None = None  # [F, C, h, w] the VAE's raw posterior mean, in its dtype
    mask_latents: torch.Tensor | None = None  # [F, 1, h, w] float32, the masks averaged onto the latent grid
    text_states: list[torch.Tensor] | None = None  # per turn: [valid tokens, d] encoder states, in its dtype


@dataclass
class FramePlan:
    """Which frames a sample has and what each points at, from its turns alone (no image decoded)."""

    frames: list[tuple[int, int]]  # (turn, input index) of each frame; input index -1 = the current target
    frame_text: list[int]
    frame_indicator: list[int]
    is_target: list[bool]
    texts: list[str]
    text_indicators: list[dict[str, int]]


def plan_frames(key: str, turns: list[tuple[int, str]], max_inputs: int) -> FramePlan:
    """turns: (number of inputs, instruction) of each turn, history first. Indicators follow the data contract:
    input images are numbered 1.. over all turns, history first (what schema.indicator_problems checks
    ``{imageN}`` against); ``{image}`` is the first input of the text's own turn; and in a history turn i>0, the
    ``{image<i>}`` that schema.rewrite_history_indicator made of that turn's ``{image}`` still names the turn's own
    input."""
    plan = FramePlan([], [], [], [], [], [])
    n = 0
    last = len(turns) - 1
    for ti, (n_inputs, instruction) in enumerate(turns):
        first_of_turn = n + 1
        for fi in range(n_inputs):
            n += 1
            if n > max_inputs:
                raise TooManyInputs(f"sample {key} has more than {max_inputs} input images")
            plan.frames.append((ti, fi))
            plan.frame_text.append(ti)
            plan.frame_indicator.append(indicator_id(n))
            plan.is_target.append(False)
        ind = {str(k): indicator_id(k) for k in range(1, n + 1)}
        ind[""] = indicator_id(first_of_turn) if n_inputs else INDICATOR_NONE
        if 0 < ti < last and n_inputs:
            rewritten = INDICATOR_RE.findall(rewrite_history_indicator("{image}", ti))[0]
            ind[rewritten] = indicator_id(first_of_turn)
        plan.texts.append(instruction)
        plan.text_indicators.append(ind)
    plan.frames.append((last, -1))
    plan.frame_text.append(last)
    plan.frame_indicator.append(INDICATOR_TARGET)
    plan.is_target.append(True)
    return plan


def to_example(sample: Sample, bucket: Bucket, max_inputs: int) -> TrainExample:
    """A decoded sample, every frame fitted to the bucket (see plan_frames for the indicators)."""
    plan = plan_frames(sample.key, [(len(t.inputs), t.instruction) for t in sample.turns], max_inputs)
    images, masks = [], []
    for ti, fi in plan.frames:
        frame = sample.turns[ti].inputs[fi] if fi >= 0 else sample.current.target
        images.append(fit_to_bucket(frame.image, bucket))
        masks.append(fit_to_bucket(frame.mask_or_ones(), bucket, nearest=True))
    return TrainExample(
        sample.key,
        np.stack(images),
        np.stack(masks),
        plan.frame_text,
        plan.frame_indicator,
        plan.is_target,
        plan.texts,
        plan.text_indicators,
    )


def latent_example(
    record: dict[str, Any], tensors: dict[str, torch.Tensor], bucket: Bucket, factor: int | None, max_inputs: int
) -> TrainExample:
    """A sample from its JSON record and its latents job member (see datagen.trainer.latents): nothing decoded.
    factor: the VAE's, to check the latents were made for this bucket (None: not checked)."""
    key = record["key"]
    plan = plan_frames(key, [(len(t["inputs"]), t["instruction"]) for t in record["turns"]], max_inputs)
    lat, mlat = tensors["latents"], tensors["mask_latents"]
    if lat.shape[0] != len(plan.frames) or mlat.shape[0] != len(plan.frames):
        raise ValueError(f"latents of {key} hold {lat.shape[0]} frames, the sample has {len(plan.frames)}")
    if factor is not None and tuple(lat.shape[-2:]) != (bucket.height // factor, bucket.width // factor):
        raise ValueError(f"latents of {key} are {tuple(lat.shape[-2:])}, not those of bucket {bucket}")
    texts = [tensors[f"text.{j}"] for j in range(len(plan.texts))]
    return TrainExample(
        key,
        None,
        None,
        plan.frame_text,
        plan.frame_indicator,
        plan.is_target,
        plan.texts,
        plan.text_indicators,
        latents=lat,
        mask_latents=mlat,
        text_states=texts,
    )


@dataclass
class Batch:
    """A collated batch; every frame in one bucket. pixels in [-1, 1], masks in {0, 1} (1 = edit). A batch made
    from precomputed latents has latents, mask_latents and text_states instead of pixels and masks."""

    keys: list[str]
    pixels: torch.Tensor | None  # [N, 3, H, W] float32
    masks: torch.Tensor | None  # [N, 1, H, W] float32
    is_target: torch.Tensor  # [N] bool
    layout: FrameLayout
    text_ids: torch.Tensor  # [M, S] long
    text_valid: torch.Tensor  # [M, S] bool
    text_indicator: torch.Tensor  # [M, S] long
    meta: dict[str, Any] = field(default_factory=dict)  # loader position and skip counts
    latents: torch.Tensor | None = None  # [N, C, h, w] raw VAE latents (the VAE's dtype)
    mask_latents: torch.Tensor | None = None  # [N, 1, h, w] float32
    text_states: torch.Tensor | None = None  # [M, S, d] encoder states (its dtype), zeros past the valid tokens

    @property
    def n_samples(self) -> int:
        return self.layout.n_samples

    @property
    def precomputed(self) -> bool:
        return self.latents is not None

    _TENSORS = ("pixels", "masks", "is_target", "text_ids", "text_valid", "text_indicator")
    _TENSORS += ("latents", "mask_latents", "text_states")

    def pin_memory(self) -> "Batch":
        """Called by the DataLoader (pin_memory=True on GPU) so every copy to the device is asynchronous: a copy from
        pageable memory may wait for the GPU."""
        for name in self._TENSORS:
            t = getattr(self, name)
            if t is not None:
                setattr(self, name, t.pin_memory())
        self.layout = self.layout.pin_memory()
        return self

    def to(self, device: torch.device) -> "Batch":
        move = lambda t: None if t is None else t.to(device, non_blocking=True)  # noqa: E731
        return Batch(
            self.keys,
            move(self.pixels),
            move(self.masks),
            move(self.is_target),
            self.layout.to(device),
            move(self.text_ids),
            move(self.text_valid),
            move(self.text_indicator),
            self.meta,
            latents=move(self.latents),
            mask_latents=move(self.mask_latents),
            text_states=move(self.text_states),
        )


def pixels_from_uint8(images: np.ndarray) -> torch.Tensor:
    """[F, H, W, 3] uint8 -> [F, 3, H, W] float32 in [-1, 1], channels-last in memory as decoded (the layout the VAE's
    convolutions prefer on GPU); the trainer and the latents job alike, so both run the same kernels."""
    return torch.from_numpy(images).permute(0, 3, 1, 2).float().div_(127.5).sub_(1.0)


def masks_from_uint8(masks: np.ndarray) -> torch.Tensor:
    """[F, H, W] uint8 (255 = edit) -> [F, 1, H, W] float32 in {0, 1}."""
    return torch.from_numpy(masks)[:, None].float().div_(255.0)


def collate(
    examples: list[TrainExample], tokenizer: Any, max_text_tokens: int, meta: dict[str, Any] | None = None
) -> Batch:
    if not examples:
        raise ValueError("cannot collate an empty batch")
    frame_sample, frame_slot, frame_text, frame_ind, is_target = [], [], [], [], []
    text_sample, text_slot, ids, valid, tind = [], [], [], [], []
    for b, ex in enumerate(examples):
        base = len(text_sample)
        for j, (text, imap) in enumerate(zip(ex.texts, ex.text_indicators)):
            i, v, d = tokenize_instruction(tokenizer, text, imap, max_text_tokens)
            ids.append(i)
            valid.append(v)
            tind.append(d)
            text_sample.append(b)
            text_slot.append(j)
        for f in range(len(ex.frame_text)):
            frame_sample.append(b)
            frame_slot.append(f)
            frame_text.append(base + ex.frame_text[f])
            frame_ind.append(ex.frame_indicator[f])
            is_target.append(ex.is_target[f])
    pixels = mask_t = latents = mask_latents = text_states = None
    if all(ex.latents is not None for ex in examples):
        latents = torch.cat([ex.latents for ex in examples])
        mask_latents = torch.cat([ex.mask_latents for ex in examples]).float()
        states = [s for ex in examples for s in ex.text_states]
        text_states = states[0].new_zeros(len(states), max_text_tokens, states[0].shape[-1])
        for m, (st, v) in enumerate(zip(states, valid)):
            if st.shape[0] != int(v.sum()):
                raise ValueError(
                    f"stored text states of {text_sample[m]}: {st.shape[0]} tokens, the tokenizer gives {int(v.sum())}"
                )
            text_states[m, : st.shape[0]] = st
    else:
        if any(ex.images is None for ex in examples):
            raise ValueError("cannot collate precomputed latents with decoded images in one batch")
        images = np.concatenate([ex.images for ex in examples])
        masks = np.concatenate([ex.masks for ex in examples])
        pixels, mask_t = pixels_from_uint8(images), masks_from_uint8(masks)
    layout = FrameLayout(
        frame_sample=torch.tensor(frame_sample),
        frame_slot=torch.tensor(frame_slot),
        frame_text=torch.tensor(frame_text),
        frame_indicator=torch.tensor(frame_ind),
        text_sample=torch.tensor(text_sample),
        text_slot=torch.tensor(text_slot),
        n_samples=len(examples),
    )
    text_valid = torch.from_numpy(np.stack(valid))
    layout.with_text_valid(text_valid)  # read here, on the host: the step never waits for it
    return Batch(
        keys=[ex.key for ex in examples],
        pixels=pixels,
        masks=mask_t,
        is_target=torch.tensor(is_target),
        layout=layout,
        text_ids=torch.from_numpy(np.stack(ids)),
        text_valid=text_valid,
        text_indicator=torch.from_numpy(np.stack(tind)),
        meta=dict(meta or {}),
        latents=latents,
        mask_latents=mask_latents,
        text_states=text_states,
    )
