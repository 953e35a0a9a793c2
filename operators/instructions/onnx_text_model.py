"""A sentence-transformers checkpoint (BERT-style transformer, mean pooling, L2 normalisation) run by ONNX Runtime:
exported once from the checkpoint with torch.onnx, checked against torch, cached under a key of the checkpoint's hash.

Why: on CPU the rewrite stage spends its time in MiniLM's linear layers; ONNX Runtime runs the same graph without
importing torch or transformers in the worker (seconds per actor), and an optional int8 copy (dynamic, per-channel
quantization of the weights) does the arithmetic about 2.5x faster at a cosine error of about 0.01."""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

import numpy as np

from datagen.cache import cache_root

log = logging.getLogger(__name__)

FORMAT = "st-mean-norm-v1"  # what the exported graph computes; part of the cache key
_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
_KEY_FILES = ("config.json", "tokenizer.json", "modules.json", "sentence_bert_config.json", "1_Pooling/config.json")
# sentences the export is checked on (cosine to torch's embedding), and the tests too
PROBES = [
    "Convert {image} to grayscale.",
    "Could you turn the edge map {image} into a realistic photo of a tabby cat on a red sofa?",
    "Fill in the masked region of {image} so it blends in.",
    "a photo",
]


def checkpoint_hash(model_dir: str | Path) -> str:
    """sha256 over the checkpoint's weights and the files that decide tokenisation and pooling. Hashing 90 MB takes
    a second on a busy core, in every worker: the result is remembered in the cache per (path, size, mtime) of those
    files, and recomputed when any of them changes."""
    root = Path(model_dir)
    weights = next((root / n for n in _WEIGHT_FILES if (root / n).exists()), None)
    if weights is None:
        raise FileNotFoundError(f"{root}: no {' or '.join(_WEIGHT_FILES)}")
    files = [weights] + [root / n for n in _KEY_FILES if (root / n).exists()]
    stamp = hashlib.sha256(FORMAT.encode())
    for p in files:
        st = p.stat()
        stamp.update(f"{p.resolve()}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    memo = cache_root() / "onnx" / "hashes" / stamp.hexdigest()
    if memo.exists():
        return memo.read_text().strip()
    h = hashlib.sha256(FORMAT.encode())
    for p in files:
        h.update(p.name.encode())
        with open(p, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 22), b""):
                h.update(chunk)
    memo.parent.mkdir(parents=True, exist_ok=True)
    tmp = memo.with_name(f"{memo.name}.{os.getpid()}.tmp")
    tmp.write_text(h.hexdigest())
    os.replace(tmp, memo)
    return h.hexdigest()


def read_layout(model_dir: str | Path) -> dict:
    """Pooling and the sequence limit from the sentence-transformers files; only what the exported graph computes
    (mean pooling) is accepted. The graph always L2-normalises: the rewrite checks compare unit rows."""
    root = Path(model_dir)
    modules = json.loads((root / "modules.json").read_text()) if (root / "modules.json").exists() else []
    pool_cfg = next((root / m["path"] / "config.json" for m in modules if m.get("type", "").endswith("Pooling")), None)
    pooling = json.loads(pool_cfg.read_text()) if pool_cfg and pool_cfg.exists() else {"pooling_mode_mean_tokens": True}
    mean = pooling.get("pooling_mode_mean_tokens") or pooling.get("pooling_mode") == "mean"
    others = [k for k, v in pooling.items() if k.startswith("pooling_mode_") and k != "pooling_mode_mean_tokens" and v]
    if not mean or others:
        raise ValueError(f"{root}: the ONNX embedder exports mean pooling only, the checkpoint pools with {pooling}")
    sbert = root / "sentence_bert_config.json"
    max_len = int(json.loads(sbert.read_text()).get("max_seq_length", 256)) if sbert.exists() else 256
    if not (root / "tokenizer.json").exists():
        raise FileNotFoundError(f"{root}: no tokenizer.json (a fast tokenizer) for the ONNX embedder")
    return {"max_seq_length": max_len}


def _export(model_dir: Path, out: Path) -> None:
    import torch
    from transformers import AutoModel

    class Pooled(torch.nn.Module):
        def __init__(self, encoder):
            super().__init__()
            self.encoder = encoder

        def forward(self, input_ids, attention_mask):
            hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            emb = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(emb, dim=-1)

    model = Pooled(AutoModel.from_pretrained(str(model_dir)).eval())
    ids = torch.ones((2, 8), dtype=torch.long)
    with torch.no_grad():
        torch.onnx.export(
            model,
            (ids, torch.ones_like(ids)),
            str(out),
            input_names=["input_ids", "attention_mask"],
            output_names=["embedding"],
            opset_version=17,
            dynamo=False,
            dynamic_axes={
                "input_ids": {0: "batch", 1: "tokens"},
                "attention_mask": {0: "batch", 1: "tokens"},
                "embedding": {0: "batch"},
            },
        )


def _quantize(src: Path, out: Path) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(str(src), str(out), weight_type=QuantType.QInt8, per_channel=True)


def cached_onnx(model_dir: str | Path, quantize: str = "none") -> Path:
    """The ONNX file for this checkpoint, exported (and quantized) on first use; concurrent workers wait on a lock
    and the file appears under its final name only when complete and checked."""
    from operators.models.onnx import cached_export

    def check(path: Path) -> None:
        worst = check_against_torch(model_dir, path)
        if worst < 0.9999:
            raise RuntimeError(f"{model_dir}: exported ONNX embeddings differ from torch's (cosine {worst:.5f})")

    model_dir = Path(model_dir)
    read_layout(model_dir)  # refuse a checkpoint the graph would embed differently, before exporting
    folder = cache_root() / "onnx" / checkpoint_hash(model_dir)
    fp32 = cached_export(folder, lambda out: _export(model_dir, out), check, what=str(model_dir))
    if quantize == "none":
        return fp32
    return cached_export(
        folder, lambda out: _quantize(fp32, out), what=f"{model_dir} ({quantize})", name=f"model.{quantize}.onnx"
    )


def torch_embeddings(model_dir: str | Path, texts: list[str]) -> np.ndarray:
    """The reference: sentence-transformers on torch, unit rows."""
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(model_dir), device="cpu")
    return model.encode(texts, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False).astype(
        np.float32
    )


def check_against_torch(model_dir: str | Path, onnx_path: str | Path, texts: list[str] | None = None) -> float:
    """The smallest cosine between the ONNX model's and torch's embedding over `texts` (default PROBES)."""
    texts = texts or PROBES
    ref = torch_embeddings(model_dir, texts)
    got = OnnxTextModel(model_dir, onnx_path).encode(texts)
    return float((ref * got).sum(1).min())


class OnnxTextModel:
    """Tokenise with the checkpoint's fast tokenizer, run the exported graph, return unit rows."""

    def __init__(self, model_dir: str | Path, onnx_path: str | Path, threads: int = 1, batch_size: int = 64):
        from tokenizers import Tokenizer

        from operators.models.onnx import onnx_session

        layout = read_layout(model_dir)
        self.tokenizer = Tokenizer.from_file(str(Path(model_dir) / "tokenizer.json"))
        self.tokenizer.enable_truncation(layout["max_seq_length"])
        self.tokenizer.no_padding()
        self.session = onnx_session(onnx_path, threads=threads, name="text embedder")
        self.batch_size = batch_size
        self.dim = int(self.session.get_outputs()[0].shape[-1])

    def encode(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), np.float32)
        if not texts:
            return out
        enc = self.tokenizer.encode_batch(texts)
        order = np.argsort([len(e.ids) for e in enc], kind="stable")  # similar lengths share a batch: little padding
        for start in range(0, len(order), self.batch_size):
            idx = order[start : start + self.batch_size]
            width = max(len(enc[i].ids) for i in idx)
            ids = np.zeros((len(idx), width), np.int64)
            mask = np.zeros((len(idx), width), np.int64)
            for row, i in enumerate(idx):
                n = len(enc[i].ids)
                ids[row, :n] = enc[i].ids
                mask[row, :n] = 1
            out[idx] = self.session.run(None, {"input_ids": ids, "attention_mask": mask})[0]
        return out
