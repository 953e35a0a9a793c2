"""SigLIP image features through open_clip's real loader: a tiny SigLIP-architecture model is built here, saved,
and loaded the ways users give weights (local-dir:, a checkpoint file with an architecture name, a hub id from the
local hub cache). Embeddings are L2-normalised and the same whatever the path; the tokenizer is never loaded."""

import json
import shutil

import numpy as np
import pytest

from datagen.batch import SourceImage, WorkBatch
from datagen.pairing.tiny_models import make_tiny_siglip
from datagen.testing import load_photo
from operators.features.siglip import SIGLIP_PREPROCESS, SiglipFeatures, SiglipFeaturesConfig
from operators.models.open_clip_source import resolve_source


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return make_tiny_siglip(tmp_path_factory.mktemp("siglip"))


@pytest.fixture
def no_tokenizer(monkeypatch):
    import open_clip

    def refuse(*a, **k):
        raise AssertionError("the SigLIP tokenizer must not be loaded for image features")

    monkeypatch.setattr(open_clip, "get_tokenizer", refuse)
    monkeypatch.setattr(open_clip.factory, "get_tokenizer", refuse)


def embed(cfg, names=("astronaut.png", "coffee.png", "chelsea.png")):
    op = SiglipFeatures(cfg)
    op.setup()
    batch = WorkBatch("feat-00000", {}, 0, "r")
    batch.items = [SourceImage(n, n, load_photo(n, 96)) for n in names]
    return op, np.stack([it.features.embedding for it in op(batch).items])


def test_local_dir_and_checkpoint_file_load_the_same_model(tiny, no_tokenizer):
    _, a = embed(SiglipFeaturesConfig(pretrained=tiny["local_dir"], batch_size=2))
    _, b = embed(SiglipFeaturesConfig(model=tiny["model"], pretrained=tiny["file"]))
    assert a.shape == (3, 32)
    assert np.allclose(np.linalg.norm(a, axis=1), 1, atol=1e-5)
    assert np.allclose(a, b, atol=1e-5)
    assert not np.allclose(a[0], a[1])


def test_hub_id_loads_from_the_local_hub_cache(tiny, tmp_path, monkeypatch, no_tokenizer):
    # lay the tiny model out as the Hugging Face hub cache holds a downloaded repo; HF_HUB_OFFLINE is set by conftest
    repo = tmp_path / "hub" / "models--tiny--siglip"
    snap = repo / "snapshots" / ("0" * 40)
    snap.mkdir(parents=True)
    local = tiny["local_dir"].split(":", 1)[1]
    for f in ("open_clip_config.json", "open_clip_model.safetensors"):
        shutil.copy(f"{local}/{f}", snap / f)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0" * 40)
    import huggingface_hub.constants as hc

    monkeypatch.setattr(hc, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(hc, "HF_HUB_OFFLINE", True)
    _, hub = embed(SiglipFeaturesConfig(pretrained="hf-hub:tiny/siglip"))
    _, ref = embed(SiglipFeaturesConfig(pretrained=tiny["local_dir"]))
    assert np.allclose(hub, ref, atol=1e-5)


def test_bare_checkpoint_gets_siglip_preprocessing(tiny):
    name, pt, pp = resolve_source("ViT-SO400M-14-SigLIP-384", tiny["file"], SIGLIP_PREPROCESS)
    assert (name, pt, pp) == ("ViT-SO400M-14-SigLIP-384", tiny["file"], SIGLIP_PREPROCESS)
    assert resolve_source("x", "hf-hub:timm/ViT-SO400M-14-SigLIP-384") == (
        "hf-hub:timm/ViT-SO400M-14-SigLIP-384",
        None,
        None,
    )
    op, _ = embed(SiglipFeaturesConfig(model=tiny["model"], pretrained=tiny["file"]), names=("coffee.png",))
    norm = [t for t in op._transform.transforms if type(t).__name__ == "Normalize"][0]
    assert tuple(norm.mean) == (0.5, 0.5, 0.5)


def test_without_weights_the_operator_is_plainly_off(tmp_path):
    assert "pretrained is not set" in SiglipFeatures().unavailable_reason()
    assert (
        "no such folder"
        in SiglipFeatures(SiglipFeaturesConfig(pretrained=f"local-dir:{tmp_path}/none")).unavailable_reason()
    )
    op = SiglipFeatures(SiglipFeaturesConfig(pretrained="hf-hub:timm/ViT-SO400M-14-SigLIP-384", device="cpu"))
    assert op.unavailable_reason() is None and op.stateful and op.resources().num_gpus == 0
    assert "ViT-SO400M-14-SigLIP-384" in op.describe() and "no tokenizer" in op.describe()


def test_a_broken_checkpoint_fails_loudly(tmp_path):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "open_clip_config.json").write_text(json.dumps({"model_cfg": {"embed_dim": 8}}))
    with pytest.raises(Exception):
        SiglipFeatures(SiglipFeaturesConfig(pretrained=f"local-dir:{bad}")).setup()


def test_device_path_matches_the_pil_path(tiny):
    # preprocessing as tensors (the GPU path, here on the CPU) against the model's own PIL transform
    _, pil = embed(SiglipFeaturesConfig(pretrained=tiny["local_dir"], batch_size=2))
    op, dev = embed(SiglipFeaturesConfig(pretrained=tiny["local_dir"], batch_size=2, preprocess_on_device=True))
    assert op._encoder is not None and op.batches_per_call() == 8
    assert np.allclose(dev, pil, atol=5e-3) and ((dev * pil).sum(axis=1) > 0.9999).all()


def test_features_of_encoded_files_on_both_paths(tiny):
    import io

    from PIL import Image

    photos = [load_photo(n, 96) for n in ("astronaut.png", "coffee.png")]
    files = []
    for p in photos:
        buf = io.BytesIO()
        Image.fromarray(p).save(buf, format="JPEG", quality=95)
        files.append(buf.getvalue())
    ref = SiglipFeatures(SiglipFeaturesConfig(pretrained=tiny["local_dir"]))
    want = np.stack([f.embedding for f in ref.compute(photos)])
    for on_device in (False, True):
        op = SiglipFeatures(SiglipFeaturesConfig(pretrained=tiny["local_dir"], preprocess_on_device=on_device))
        got = np.stack([f.embedding for f in op.compute_encoded(files)])
        assert ((got * want).sum(axis=1) > 0.99).all()
