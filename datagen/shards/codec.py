"""Encode a Sample into webdataset members (extension -> bytes) and decode it back.
The record layout is defined in datagen.schema; this module only turns pixels into bytes and back."""

from __future__ import annotations

import json
from typing import Any

import cv2
import numpy as np

from datagen import schema
from datagen.ingest.decode import RejectedInput, decode_image
from datagen.schema import Frame, InstructionRecord, JudgeRecord, Provenance, RejectRecord, Sample, Turn


def encode_image(image: np.ndarray, ext: str, jpeg_quality: int = 95) -> bytes:
    """RGB (HxWx3) or gray (HxW) uint8 to bytes; deterministic for a given OpenCV build."""
    arr = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    params: list[int] = []
    if ext == "jpg":
        params = [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)]
    elif ext == "webp":
        params = [cv2.IMWRITE_WEBP_QUALITY, int(jpeg_quality)]
    elif ext == "png":
        params = [cv2.IMWRITE_PNG_COMPRESSION, 3]
    else:
        raise ValueError(f"image extension must be one of {schema.PHOTO_FORMATS}, got {ext!r}")
    ok, buf = cv2.imencode("." + ext, arr, params)
    if not ok:
        raise RuntimeError(f"OpenCV could not encode a {image.shape} image as {ext}")
    return buf.tobytes()


def decode_member(data: bytes, name: str, gray: bool = False) -> np.ndarray:
    """A member this codec wrote -> HxWx3 RGB (HxW uint8 where `gray`, for masks), through the one decoder."""
    try:
        return decode_image(data, gray=gray, ours=True)[0]
    except RejectedInput as err:
        raise ValueError(f"member {name} is not a decodable image ({err})") from None


def _frame_ext(frame: Frame, photo_format: str) -> str:
    return "png" if frame.role == schema.ROLE_CONDITION else photo_format


class EncodeMemo:
    """Encoded bytes of the arrays a writer has seen, by identity. One photo is a frame of many samples (both
    directions of every condition, its edits and LCUs share the same array), and encoding it again each time was most
    of a commit's cost. The memo holds each array it keys, so no id is reused while it lives; frames are not
    changed once a sample is built."""

    def __init__(self) -> None:
        self._d: dict[tuple, tuple[np.ndarray, bytes]] = {}

    def encode(self, image: np.ndarray, ext: str, jpeg_quality: int = 95) -> bytes:
        key = (id(image), image.shape, ext, int(jpeg_quality))
        hit = self._d.get(key)
        if hit is None:
            hit = self._d[key] = (image, encode_image(image, ext, jpeg_quality))
        return hit[1]


def encode_sample(
    sample: Sample, photo_format: str = "jpg", jpeg_quality: int = 95, memo: EncodeMemo | None = None
) -> dict[str, bytes]:
    """Members of one sample, keyed by the webdataset extension (everything after KEY.). `memo`: reuse the bytes of
    frames encoded before (a writer keeps one per partition)."""
    encode = memo.encode if memo is not None else encode_image
    members: dict[str, bytes] = {}
    turns_json = []
    for ti, turn in enumerate(sample.turns):
        inputs_json = []
        for ii, frame in enumerate(turn.inputs):
            ext = _frame_ext(frame, photo_format)
            name = schema.input_member(ti, ii, ext)
            members[name] = encode(frame.image, ext, jpeg_quality)
            mask_name = None
            if frame.mask is not None:
                mask_name = schema.input_mask_member(ti, ii)
                members[mask_name] = encode(frame.mask, "png")
            inputs_json.append({"image": name, "mask": mask_name, "role": frame.role})
        ext = _frame_ext(turn.target, photo_format)
        tname = schema.target_member(ti, ext)
        members[tname] = encode(turn.target.image, ext, jpeg_quality)
        tmask = None
        if turn.target.mask is not None:
            tmask = schema.target_mask_member(ti)
            members[tmask] = encode(turn.target.mask, "png")
        turns_json.append(
            {
                "task": turn.task,
                "direction": turn.direction,
                "instruction": turn.instruction,
                "instruction_method": turn.instruction_method,
                "caption": turn.caption,
                "instruction_record": turn.instruction_record.to_json(),
                "inputs": inputs_json,
                "target": {"image": tname, "mask": tmask, "role": turn.target.role},
            }
        )
    record = {
        "schema": schema.SCHEMA_VERSION,
        "key": sample.key,
        "kind": sample.kind,
        "task": sample.task,
        "direction": sample.direction,
        "turns": turns_json,
        "provenance": sample.provenance.to_json(),
        # what later stages said of the sample, beside (not inside) the params its key is made from
        "judge": sample.judge.to_json() if sample.judge is not None else None,
        "threshold_failures": list(sample.threshold_failures),
    }
    if sample.rejected is not None:  # only on rejects: a kept sample's record stays as it was
        record["rejected"] = sample.rejected.to_json()
    members[schema.JSON_MEMBER] = json.dumps(record, sort_keys=True, ensure_ascii=False).encode()
    return members


def record_members(record: dict[str, Any]) -> list[str]:
    """Every image member a record refers to."""
    names = []
    for turn in record["turns"]:
        for inp in turn["inputs"]:
            names.append(inp["image"])
            if inp.get("mask"):
                names.append(inp["mask"])
        names.append(turn["target"]["image"])
        if turn["target"].get("mask"):
            names.append(turn["target"]["mask"])
    return names


def decode_sample(members: dict[str, Any]) -> Sample:
    """Inverse of encode_sample. Accepts our member dict or an upstream ``webdataset.WebDataset`` sample
    (undecoded bytes, keys such as ``json``, ``t0.in0.jpg``, ``__key__``)."""
    raw = members[schema.JSON_MEMBER]
    record = json.loads(raw) if isinstance(raw, (bytes, str)) else raw
    if record.get("schema") != schema.SCHEMA_VERSION:
        raise ValueError(f"unsupported sample schema {record.get('schema')!r}; expected {schema.SCHEMA_VERSION}")

    def frame(d: dict[str, Any]) -> Frame:
        image = decode_member(members[d["image"]], d["image"])
        mask = decode_member(members[d["mask"]], d["mask"], gray=True) if d.get("mask") else None
        return Frame(image=image, mask=mask, role=d.get("role", schema.ROLE_PHOTO))

    turns = [
        Turn(
            task=t["task"],
            direction=t["direction"],
            inputs=[frame(i) for i in t["inputs"]],
            target=frame(t["target"]),
            instruction=t["instruction"],
            instruction_method=t.get("instruction_method", ""),
            caption=t.get("caption", ""),
            instruction_record=InstructionRecord.from_json(t.get("instruction_record") or {}),
        )
        for t in record["turns"]
    ]
    judge = record.get("judge")
    return Sample(
        turns=turns,
        provenance=Provenance.from_json(record["provenance"]),
        key=record["key"],
        judge=JudgeRecord.from_json(judge) if judge is not None else None,
        threshold_failures=list(record.get("threshold_failures") or []),
        rejected=RejectRecord.from_json(record["rejected"]) if record.get("rejected") else None,
    )
