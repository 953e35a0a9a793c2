"""LoRA fine-tuning of an InternVL checkpoint into the instruction captioner, on the jsonl that
captioner_data exports: peft adapters on the language model's projections, loss on the answer tokens only.
Saves the adapter and (by default) a merged checkpoint that the transformers and vLLM backends load as is."""

from __future__ import annotations

import json
import logging
import math
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

IGNORE_INDEX = -100
ENCODED_CACHE = 2048  # encoded examples kept in memory
# the language model's linear layers (Qwen2/InternLM2-style names); the vision tower stays frozen
DEFAULT_TARGETS = r".*language_model.*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)$"


@dataclass
class FinetuneConfig:
    model: str
    data: str  # captioner_meta.json, a directory holding it, or a jsonl
    out: str
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    target_modules: str = DEFAULT_TARGETS
    epochs: float = 1.0
    max_steps: int | None = None
    lr: float = 1e-4
    grad_accum: int = 8
    warmup_steps: int = 10
    max_patches: int | None = None
    seed: int = 0
    device: str = "auto"
    dtype: str = "auto"
    gradient_checkpointing: bool = False
    merge: bool = True
    log_every: int = 10


@dataclass
class FinetuneResult:
    steps: int
    examples: int
    losses: list[float] = field(default_factory=list)
    adapter_dir: str = ""
    merged_dir: str = ""
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        n = max(1, len(self.losses) // 5)
        return {
            "steps": self.steps,
            "examples": self.examples,
            "first_loss": _mean(self.losses[:n]),
            "last_loss": _mean(self.losses[-n:]),
            "adapter_dir": self.adapter_dir,
            "merged_dir": self.merged_dir,
            "seconds": round(self.seconds, 2),
        }


def _mean(xs: list[float]) -> float | None:
    return round(sum(xs) / len(xs), 5) if xs else None


def load_examples(data: str | Path) -> list[dict[str, Any]]:
    """Rows of InternVL's conversation format with image paths made absolute (relative to the meta's root)."""
    p = Path(data)
    rows: list[dict[str, Any]] = []
    if p.is_dir():
        from operators.instructions.captioner_data import META

        p = p / META
    if p.suffix == ".json":
        meta = json.loads(p.read_text())
        for name, ds in meta.items():
            root = Path(ds.get("root", p.parent))
            ann = Path(ds["annotation"])
            ann = ann if ann.is_absolute() else p.parent / ann
            rows.extend(_read_jsonl(ann, root, int(ds.get("repeat_time", 1))))
    else:
        rows.extend(_read_jsonl(p, p.parent, 1))
    if not rows:
        raise ValueError(f"{data}: no fine-tuning examples found")
    return rows


def _read_jsonl(path: Path, root: Path, repeat: int) -> list[dict[str, Any]]:
    out = []
    with open(path) as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            row = json.loads(line)
            images = row.get("image") or []
            images = [images] if isinstance(images, str) else images
            conv = row["conversations"]
            if len(conv) < 2 or conv[0]["from"] != "human" or conv[1]["from"] != "gpt":
                raise ValueError(f"{path}:{n}: expected a human turn then a gpt turn")
            if conv[0]["value"].count("<image>") != len(images):
                raise ValueError(
                    f"{path}:{n}: {conv[0]['value'].count('<image>')} <image> placeholders for {len(images)} images"
                )
            out.append(
                {
                    "id": row.get("id", f"{path.name}:{n}"),
                    "images": [str(root / im) for im in images],
                    "human": conv[0]["value"],
                    "answer": conv[1]["value"],
                }
            )
    return out * max(1, repeat)


def human_parts(human: str, images: list) -> list:
    """Split the human turn at its <image> placeholders into the ordered parts the chat backends take."""
    from operators.instructions.prompts import IMAGE_TOKEN

    texts = human.split(IMAGE_TOKEN)
    parts: list = []
    for k, t in enumerate(texts):
        if t:
            parts.append(t)
        if k < len(images):
            parts.append(images[k])
    return parts


def encode_example(processor, example: dict[str, Any], max_patches: int | None):
    """input_ids, labels (answer tokens only) and pixel values of one example, in the captioner's chat format."""
    import cv2
    import torch
    from PIL import Image

    from operators.models.backends.base import ChatRequest
    from operators.models.backends.transformers_local import hf_messages

    images = []
    for path in example["images"]:
        bgr = cv2.imread(path, cv2.IMREAD_COLOR)
        if bgr is None:
            raise ValueError(f"{path}: cannot read image")
        images.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    req = ChatRequest(human_parts(example["human"], images))
    prompt = processor.apply_chat_template([hf_messages(req)], add_generation_prompt=True, tokenize=False)[0]
    kwargs: dict[str, Any] = {"text": [prompt], "return_tensors": "pt"}
    if images:
        kwargs["images"] = [Image.fromarray(im) for im in images]
        if max_patches is not None:
            kwargs.update({"max_patches": max_patches, "crop_to_patches": max_patches > 1})
    enc = processor(**kwargs)
    tok = processor.tokenizer
    answer_ids = tok(example["answer"], add_special_tokens=False, return_tensors="pt")["input_ids"]
    eos = torch.tensor([[tok.eos_token_id]])
    input_ids = torch.cat([enc["input_ids"], answer_ids, eos], dim=1)
    labels = torch.cat([torch.full_like(enc["input_ids"], IGNORE_INDEX), answer_ids, eos], dim=1)
    out = {"input_ids": input_ids, "attention_mask": torch.ones_like(input_ids), "labels": labels}
    if "pixel_values" in enc:
        out["pixel_values"] = enc["pixel_values"]
    return out


def finetune_captioner(cfg: FinetuneConfig) -> FinetuneResult:
    import torch
    from peft import LoraConfig, get_peft_model

    from datagen.devices import resolve_device
    from operators.models.backends.transformers_local import load_model

    t0 = time.perf_counter()
    random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    examples = load_examples(cfg.data)
    device = resolve_device(cfg.device)
    processor, model = load_model(cfg.model, cfg.device, cfg.dtype)
    model.train()
    if cfg.gradient_checkpointing:
        model.gradient_checkpointing_enable()
        model.enable_input_require_grads()
    lora = LoraConfig(
        r=cfg.lora_r,
        lora_alpha=cfg.lora_alpha,
        lora_dropout=cfg.lora_dropout,
        target_modules=cfg.target_modules,
        bias="none",
    )
    model = get_peft_model(model, lora)
    trainable = [p for p in model.parameters() if p.requires_grad]
    if not trainable:
        raise ValueError(f"target_modules {cfg.target_modules!r} matched no layer of {cfg.model}")
    log.info(
        "LoRA: %d trainable parameters of %d",
        sum(p.numel() for p in trainable),
        sum(p.numel() for p in model.parameters()),
    )
    opt = torch.optim.AdamW(trainable, lr=cfg.lr, weight_decay=0.0)
    per_epoch = math.ceil(len(examples) / cfg.grad_accum)
    total = cfg.max_steps or max(1, math.ceil(cfg.epochs * per_epoch))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / max(1, cfg.warmup_steps)))
    result = FinetuneResult(steps=0, examples=len(examples))
    order: list[int] = []
    cache: dict[int, dict] = {}
    step_loss, micro = 0.0, 0
    while result.steps < total:
        if not order:
            order = list(range(len(examples)))
            random.shuffle(order)
        idx = order.pop()
        batch = cache.get(idx) or encode_example(processor, examples[idx], cfg.max_patches)
        if len(cache) < ENCODED_CACHE:
            cache[idx] = batch  # small sets run many epochs: decode and tile each example once
        batch = {k: v.to(device) for k, v in batch.items()}
        if "pixel_values" in batch:
            batch["pixel_values"] = batch["pixel_values"].to(model.dtype)
        loss = model(**batch).loss / cfg.grad_accum
        loss.backward()
        step_loss += float(loss.detach())
        micro += 1
        if micro == cfg.grad_accum:
            torch.nn.utils.clip_grad_norm_(trainable, 1.0)
            opt.step()
            sched.step()
            opt.zero_grad(set_to_none=True)
            result.steps += 1
            result.losses.append(step_loss)
            if result.steps % cfg.log_every == 0 or result.steps == total:
                log.info("step %d/%d loss %.4f", result.steps, total, step_loss)
            step_loss, micro = 0.0, 0
    out = Path(cfg.out)
    adapter = out / "adapter"
    model.save_pretrained(adapter)
    processor.save_pretrained(adapter)
    result.adapter_dir = str(adapter)
    if cfg.merge:
        merged = out / "merged"
        model = model.merge_and_unload()
        model.save_pretrained(merged)
        processor.save_pretrained(merged)
        result.merged_dir = str(merged)
    result.seconds = time.perf_counter() - t0
    (out / "finetune_log.json").write_text(
        json.dumps({**result.to_json(), "losses": result.losses, "config": cfg.__dict__}, indent=2, default=str)
    )
    return result
