"""The frozen encoders load through the libraries' own loaders: a tiny AutoencoderKL and a tiny T5 encoder with
its tokenizer, built at test time, saved, and loaded from their folders; the tiny VAE's scale is calibrated."""

import numpy as np
import pytest
import torch

from datagen.testing import load_photo
from datagen.trainer.config import TextEncoderConfig, VaeConfig
from datagen.trainer.encoders import build_tiny_vae, load_text_encoder, load_vae, tiny_unigram_vocab


def _photos(n=4, side=64):
    names = ["astronaut.png", "coffee.png", "chelsea.png", "rocket.jpg"][:n]
    arr = np.stack([np.ascontiguousarray(load_photo(name, side * 2)[:side, :side]) for name in names])
    return torch.from_numpy(arr).permute(0, 3, 1, 2).float() / 127.5 - 1


def test_vae_round_trip_shapes_and_calibrated_scale(tmp_path):
    photos = _photos()
    build_tiny_vae(tmp_path / "vae", calibration=photos)
    codec = load_vae(VaeConfig(path=str(tmp_path / "vae")), torch.device("cpu"))
    assert codec.factor == 8 and codec.channels == 4
    z = codec.encode(photos)
    assert z.shape == (4, 4, 8, 8)
    assert float(z.std()) == pytest.approx(1.0, rel=0.05)  # 1/std of real-image latents, as SD's 0.18215 was
    assert codec.decode(z).shape == photos.shape


def test_text_encoder_and_tokenizer_load_from_a_folder(tiny_models):
    enc = load_text_encoder(TextEncoderConfig(path=str(tiny_models / "t5")), torch.device("cpu"))
    tok = enc.tokenizer("Convert {image} to grayscale.", return_tensors="pt")
    assert tok["input_ids"][0, -1] == enc.tokenizer.eos_token_id
    assert enc.tokenizer.unk_token_id not in tok["input_ids"][0].tolist()
    states = enc.encode(tok["input_ids"], tok["attention_mask"].bool())
    assert states.shape == (1, tok["input_ids"].shape[1], enc.dim)


def test_missing_checkpoint_names_the_key(tmp_path):
    with pytest.raises(FileNotFoundError, match="vae.path"):
        load_vae(VaeConfig(path=str(tmp_path / "nope")), torch.device("cpu"))
    with pytest.raises(FileNotFoundError, match="text_encoder.path"):
        load_text_encoder(TextEncoderConfig(path=str(tmp_path / "nope")), torch.device("cpu"))


def test_unigram_vocab_covers_ascii_and_frequent_words():
    vocab = dict(tiny_unigram_vocab(["Colorize {image}.", "Colorize the photo {image1}."]))
    assert list(vocab)[:3] == ["<pad>", "</s>", "<unk>"]
    assert "\u2581Colorize" in vocab and "image" in vocab and "~" in vocab
    assert vocab["\u2581Colorize"] > vocab["\u2581~"]  # frequent pieces score higher


def test_encoders_load_in_their_working_dtype(tiny_models, monkeypatch):
    """The loaders get the dtype: a bf16 T5-XXL never exists in float32 in host memory (about 19 GB per rank)."""
    from transformers import T5EncoderModel

    seen = []
    real = T5EncoderModel.from_pretrained.__func__

    def spy(cls, *args, **kwargs):
        model = real(cls, *args, **kwargs)
        seen.append((kwargs.get("dtype"), next(model.parameters()).dtype))
        return model

    monkeypatch.setattr(T5EncoderModel, "from_pretrained", classmethod(spy))
    enc = load_text_encoder(TextEncoderConfig(path=str(tiny_models / "t5"), dtype="bf16"), torch.device("cpu"))
    assert seen == [(torch.bfloat16, torch.bfloat16)]
    assert next(enc.model.parameters()).dtype == torch.bfloat16
