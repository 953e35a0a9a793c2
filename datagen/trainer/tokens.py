"""Tokenise a CU instruction for the T5 encoder and mark which tokens spell an image indicator ({image},
{image1}..{image9}), so the model can add that image's indicator embedding to them (ACE)."""

from __future__ import annotations

from typing import Any

import numpy as np

from datagen.schema import INDICATOR_RE
from datagen.trainer.models import INDICATOR_NONE


def tokenize_instruction(
    tokenizer: Any, text: str, indicator_ids: dict[str, int], max_tokens: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(ids, valid, indicator) arrays of length max_tokens. `indicator_ids` maps an indicator's digit string
    ('' for {image}, '1'..'9') to its indicator id; tokens overlapping that indicator's characters get the id.
    Truncation keeps the EOS token so every text has at least one valid token."""
    enc = tokenizer(text, add_special_tokens=True, return_offsets_mapping=True, truncation=True, max_length=max_tokens)
    ids = list(enc["input_ids"])
    offsets = list(enc["offset_mapping"])
    eos = tokenizer.eos_token_id
    if eos is not None and (not ids or ids[-1] != eos):
        ids = ids[: max_tokens - 1] + [eos]
        offsets = offsets[: max_tokens - 1] + [(0, 0)]
    spans = [(m.start(), m.end(), indicator_ids.get(m.group(1), INDICATOR_NONE)) for m in INDICATOR_RE.finditer(text)]
    ind = np.zeros(max_tokens, np.int64)
    for i, (a, b) in enumerate(offsets):
        if b <= a:
            continue  # special tokens carry an empty span
        for s, e, iid in spans:
            if a < e and b > s:
                ind[i] = iid
                break
    out_ids = np.full(max_tokens, tokenizer.pad_token_id or 0, np.int64)
    out_ids[: len(ids)] = ids
    valid = np.zeros(max_tokens, bool)
    valid[: len(ids)] = True
    return out_ids, valid, ind
