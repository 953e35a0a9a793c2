"""The ONNX embedder: exported from the shipped MiniLM checkpoint into a cache keyed by the checkpoint's hash, it
gives torch's embeddings (fp32: the same vectors; int8: close), and a second setup reuses the cached file."""

import numpy as np

from operators.instructions.embedder import TextEmbedder, default_model_dir
from operators.instructions.onnx_text_model import cached_onnx, checkpoint_hash, torch_embeddings
from operators.instructions.templates import fill_template

TEXTS = [
    "Convert {image} to grayscale.",
    "Could you turn the edge map {image} into a realistic photo of a tabby cat on a red sofa?",
    "Fill in the masked region of {image} so it blends in.",
    "Generate a photo.",
    "{image} is a doodle. Render a natural picture of an astronaut in a white suit on the moon from it.",
    "Please, with {image1} as the reference, create a new view of the subject, keeping its colours and its shape "
    "exactly as they are in the reference photograph, and place it in a quiet forest clearing at dusk.",
]


def test_onnx_embeddings_match_torch(tmp_path, monkeypatch):
    monkeypatch.setenv("DATAGEN_CACHE_DIR", str(tmp_path))
    model = default_model_dir()
    texts = TEXTS + [fill_template("Inpainting", "edit", "", k).text for k in range(10)]
    ref = torch_embeddings(model, texts)
    fp32 = TextEmbedder(backend="onnx")
    got = fp32.encode(texts)
    path = cached_onnx(model)
    assert path.parent.name == checkpoint_hash(model) and path.is_relative_to(tmp_path)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    assert float((got * ref).sum(1).min()) > 0.9999  # the same vectors (float rounding only)
    sims_ref, sims_got = ref @ ref.T, got @ got.T
    assert np.abs(sims_ref - sims_got).max() < 1e-4

    int8 = TextEmbedder(backend="onnx", quantize="int8").encode(texts)
    cos = (int8 * ref).sum(1)
    assert cos.min() > 0.97 and cos.mean() > 0.985, cos  # close, not equal: decisions near a threshold may differ

    # the cache is reused: same file, no second export
    mtime = path.stat().st_mtime_ns
    assert cached_onnx(model) == path and path.stat().st_mtime_ns == mtime


def test_the_cache_key_follows_the_checkpoint(tmp_path):
    import shutil

    model = default_model_dir()
    copy = tmp_path / "copy"
    shutil.copytree(model, copy)
    assert checkpoint_hash(copy) == checkpoint_hash(model)
    cfg = copy / "config.json"
    cfg.write_text(
        cfg.read_text().replace("}", ', "note": 1}', 1) if cfg.read_text().count("}") == 1 else cfg.read_text() + " "
    )
    assert checkpoint_hash(copy) != checkpoint_hash(model)
