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
    key: str
    images: np.ndarray  # [F, H, W, 3] uint8, all frames in one bucket
    masks: np.ndarray  # [F, H, W] uint8, 255 = edit
    frame_text: list[int]  # turn index of each frame (its CU's instruction)
    frame_indicator: list[int]
    is_target: list[bool]
    texts: list[str]  # one instruction per turn, history first
    text_indicators: list[dict[str, int]]  # per turn: indicator digits ('' for {image}) -> indicator id


def to_example(sample: Sample, bucket: Bucket, max_inputs: int) -> TrainExample:
    """Indicators follow the data contract: input images are numbered 1.. over all turns, history first (what
    schema.indicator_problems checks ``{imageN}`` against); ``{image}`` is the first input of the text's own
    turn; and in a history turn i>0, the ``{image<i>}`` that schema.rewrite_history_indicator made of that
    turn's ``{image}`` still names the turn's own input."""
    images, masks, frame_text, frame_ind, is_target = [], [], [], [], []
    texts, text_inds = [], []
    n = 0
    last = len(sample.turns) - 1
    for ti, turn in enumerate(sample.turns):
        first_of_turn = n + 1
        for frame in turn.inputs:
            n += 1
            if n > max_inputs:
                raise TooManyInputs(f"sample {sample.key} has more than {max_inputs} input images")
            images.append(fit_to_bucket(frame.image, bucket))
            masks.append(fit_to_bucket(frame.mask_or_ones(), bucket, nearest=True))
            frame_text.append(ti)
            frame_ind.append(indicator_id(n))
            is_target.append(False)
        ind = {str(k): indicator_id(k) for k in range(1, n + 1)}
        ind[""] = indicator_id(first_of_turn) if turn.inputs else INDICATOR_NONE
        if 0 < ti < last and turn.inputs:
            rewritten = INDICATOR_RE.findall(rewrite_history_indicator("{image}", ti))[0]
            ind[rewritten] = indicator_id(first_of_turn)
        texts.append(turn.instruction)
        text_inds.append(ind)
    cur = sample.current.target
    images.append(fit_to_bucket(cur.image, bucket))
    masks.append(fit_to_bucket(cur.mask_or_ones(), bucket, nearest=True))
    frame_text.append(last)
    frame_ind.append(INDICATOR_TARGET)
    is_target.append(True)
    return TrainExample(
        sample.key, np.stack(images), np.stack(masks), frame_text, frame_ind, is_target, texts, text_inds
    )


@dataclass
class Batch:
    """A collated batch; every frame in one bucket. pixels in [-1, 1], masks in {0, 1} (1 = edit)."""

    keys: list[str]
    pixels: torch.Tensor  # [N, 3, H, W] float32
    masks: torch.Tensor  # [N, 1, H, W] float32
    is_target: torch.Tensor  # [N] bool
    layout: FrameLayout
    text_ids: torch.Tensor  # [M, S] long
    text_valid: torch.Tensor  # [M, S] bool
    text_indicator: torch.Tensor  # [M, S] long
    meta: dict[str, Any] = field(default_factory=dict)  # loader position and skip counts

    @property
    def n_samples(self) -> int:
        return self.layout.n_samples

    def pin_memory(self) -> "Batch":
        """Called by the DataLoader (pin_memory=True on GPU) so the copy to the device can overlap compute."""
        self.pixels = self.pixels.pin_memory()
        self.masks = self.masks.pin_memory()
        return self

    def to(self, device: torch.device) -> "Batch":
        return Batch(
            self.keys,
            self.pixels.to(device, non_blocking=True),
            self.masks.to(device, non_blocking=True),
            self.is_target.to(device),
            self.layout.to(device),
            self.text_ids.to(device),
            self.text_valid.to(device),
            self.text_indicator.to(device),
            self.meta,
        )


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
        for f in range(len(ex.images)):
            frame_sample.append(b)
            frame_slot.append(f)
            frame_text.append(base + ex.frame_text[f])
            frame_ind.append(ex.frame_indicator[f])
            is_target.append(ex.is_target[f])
    images = np.concatenate([ex.images for ex in examples])
    masks = np.concatenate([ex.masks for ex in examples])
    pixels = torch.from_numpy(images).permute(0, 3, 1, 2).float().div_(127.5).sub_(1.0)
    mask_t = torch.from_numpy(masks)[:, None].float().div_(255.0)
    layout = FrameLayout(
        frame_sample=torch.tensor(frame_sample),
        frame_slot=torch.tensor(frame_slot),
        frame_text=torch.tensor(frame_text),
        frame_indicator=torch.tensor(frame_ind),
        text_sample=torch.tensor(text_sample),
        text_slot=torch.tensor(text_slot),
        n_samples=len(examples),
    )
    return Batch(
        keys=[ex.key for ex in examples],
        pixels=pixels,
        masks=mask_t,
        is_target=torch.tensor(is_target),
        layout=layout,
        text_ids=torch.from_numpy(np.stack(ids)),
        text_valid=torch.from_numpy(np.stack(valid)),
        text_indicator=torch.from_numpy(np.stack(tind)),
        meta=dict(meta or {}),
    )
