"""Export curated instructions for the instruction captioner: reviewed shard samples become InternVL's
conversation fine-tuning format (a jsonl of image paths + human/gpt turns, and the meta json its trainer reads).
The human turn is exactly the prompt the captioner stage sends, so training and inference see the same words."""

from __future__ import annotations

import json
import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from datagen import schema
from datagen.schema import METHOD_FALLBACK_TEMPLATE
from datagen.shards.codec import encode_image
from datagen.shards.reader import iter_samples
from operators.instructions.prompts import captioner_prompt, image_header
from operators.instructions.text import unusable_reason

log = logging.getLogger(__name__)

ANNOTATION = "captioner_train.jsonl"
META = "captioner_meta.json"
IMAGES = "images"
DATASET_NAME = "datagen_instruction_captioner"


@dataclass
class ExportStats:
    written: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    tasks: dict[str, int] = field(default_factory=dict)

    def skip(self, reason: str) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + 1


def read_keys(path: str | Path | None) -> set[str] | None:
    """Sample keys from a file: the review page's marks.json ({"marks": [{"key": ...}, ...]}), a JSON list of
    keys or of {"key": ...} objects, {"keys": [...]}, a parquet/CSV with a `key` column, or one key per line."""
    if not path:
        return None
    p = Path(path)
    if p.suffix in (".parquet", ".csv"):
        import pyarrow.csv as pacsv
        import pyarrow.parquet as pq

        table = pq.read_table(p) if p.suffix == ".parquet" else pacsv.read_csv(p)
        return {str(k) for k in table.column("key").to_pylist()}
    text = p.read_text()
    try:
        data = json.loads(text)
    except ValueError:
        return {ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("#")}
    if isinstance(data, dict):
        data = data.get("marks", data.get("keys", []))
    return {str(k["key"]) if isinstance(k, dict) else str(k) for k in data if not isinstance(k, dict) or "key" in k}


def _ext(frame: schema.Frame) -> str:
    return "png" if frame.role == schema.ROLE_CONDITION else "jpg"


def export_captioner_data(
    shards: str | Path | list[str],
    out_dir: str | Path,
    keep_keys: set[str] | None = None,
    drop_keys: set[str] | None = None,
    tasks: Iterable[str] | None = None,
    exclude_methods: Iterable[str] = (METHOD_FALLBACK_TEMPLATE,),
    limit: int | None = None,
) -> ExportStats:
    """Write OUT/images/*, OUT/captioner_train.jsonl and OUT/captioner_meta.json; returns what was written and
    skipped (with reasons). Only single-turn CUs with at least one input qualify: the captioner sees the turn's
    inputs and its result and nothing else."""
    out = Path(out_dir)
    (out / IMAGES).mkdir(parents=True, exist_ok=True)
    wanted_tasks = set(tasks) if tasks else None
    excluded = set(exclude_methods or ())
    stats = ExportStats()
    tmp = out / (ANNOTATION + ".tmp")
    with open(tmp, "w") as fh:
        for sample in iter_samples(shards):
            if limit is not None and stats.written >= limit:
                break
            turn = sample.current
            if keep_keys is not None and sample.key not in keep_keys:
                stats.skip("not_in_keep_keys")
                continue
            if drop_keys and sample.key in drop_keys:
                stats.skip("dropped_by_review")
                continue
            if sample.kind != schema.KIND_CU:
                stats.skip("multi_turn")
                continue
            if not turn.inputs:
                stats.skip("no_input_image")
                continue
            if wanted_tasks is not None and turn.task not in wanted_tasks:
                stats.skip("task_not_selected")
                continue
            if turn.instruction_method in excluded:
                stats.skip(f"method_{turn.instruction_method}")
                continue
            if unusable_reason(turn.instruction, len(turn.inputs)):
                stats.skip("unusable_instruction")
                continue
            paths = []
            for k, frame in enumerate([*turn.inputs, turn.target]):
                name = f"{sample.key}.{'target' if k == len(turn.inputs) else f'in{k}'}.{_ext(frame)}"
                (out / IMAGES / name).write_bytes(encode_image(frame.image, _ext(frame)))
                paths.append(f"{IMAGES}/{name}")
            row = {
                "id": sample.key,
                "image": paths,
                "conversations": [
                    {"from": "human", "value": image_header(len(paths)) + captioner_prompt(len(turn.inputs))},
                    {"from": "gpt", "value": turn.instruction},
                ],
                "task": turn.task,
                "instruction_method": turn.instruction_method,
            }
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
            stats.written += 1
            stats.tasks[turn.task] = stats.tasks.get(turn.task, 0) + 1
    tmp.replace(out / ANNOTATION)
    meta = {
        DATASET_NAME: {
            "root": str(out.resolve()),
            "annotation": str((out / ANNOTATION).resolve()),
            "data_augment": False,
            "repeat_time": 1,
            "length": stats.written,
        }
    }
    (out / META).write_text(json.dumps(meta, indent=2))
    log.info("exported %d captioner examples to %s; skipped %s", stats.written, out, dict(Counter(stats.skipped)))
    return stats
