"""The latents job: `datagen latents DIR --config RECIPE` writes, beside a shard folder, the VAE latents and T5 states
of every sample (safetensors members keyed like the samples); a rerun of a finished job does nothing and a shard that
lost its done-marker is made again; the trainer takes them where present and gets the same loss as from online
encoding; a `datagen train` run uses them."""

import json
import shutil
import tarfile
from contextlib import contextmanager

import pytest
import torch
from safetensors.torch import load as load_safetensors

from datagen.cli import main
from datagen.shards.reader import iter_samples
from datagen.trainer.config import load_train_recipe
from datagen.trainer.encoders import load_text_encoder, load_vae
from datagen.trainer.latents import attach_latents, latents_paths
from datagen.trainer.loader import ShardStream, list_shards
from datagen.trainer.loop import step_generator
from datagen.trainer.models import ACEDiT, size_spec
from datagen.trainer.objectives import make_objective, training_loss

LATENTS = ["--config", "configs/train_tiny.yaml", "--batch", "3", "data.num_workers=0", "trainer.cpu_threads=1"]


@contextmanager
def batch_invariant_convolutions():
    """oneDNN's CPU convolutions, and several threads, round differently with the batch size (1e-7 a layer, 1e-4
    through the random tiny VAE): without them the VAE gives a frame the same latents whether the job encodes it in
    a batch of 3 or the trainer in a batch of its own, so the comparison sees only what precomputing changes."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.backends.mkldnn.flags(enabled=False):
            yield
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def encoded(shard_dir, tmp_path_factory):
    """A copy of the shard folder with its latents, and the train output folder holding the tiny encoders."""
    root = tmp_path_factory.mktemp("latents")
    data = root / "data"
    data.mkdir()
    first = sorted(shard_dir.glob("*.tar"))[0].stem  # one shard is enough, and keeps the encoding short
    for f in shard_dir.glob(f"{first}.*"):
        shutil.copy(f, data / f.name)
    run = root / "run"
    with batch_invariant_convolutions():
        assert main(["latents", str(data), *LATENTS, f"output.dir={run}"]) == 0
    return data, run


def _recipe(data, run, *more):
    return load_train_recipe(
        "configs/train_tiny.yaml", [f"data.path={data}", f"output.dir={run}", "data.num_workers=0", *more]
    )


def test_latents_sit_beside_the_shards_keyed_like_the_samples(encoded):
    data, _ = encoded
    shards = list_shards(str(data))
    for shard in shards:
        tar_url, marker_url = latents_paths(shard)
        marker = json.loads(open(marker_url.removeprefix("file://"), "rb").read())
        with tarfile.open(tar_url.removeprefix("file://")) as tar:
            names = tar.getnames()
            keys = [s.key for s in iter_samples([shard.url.removeprefix("file://")])]
            assert names == [f"{k}.safetensors" for k in keys]  # every sample, in the shard's order, no pickle
            first = load_safetensors(tar.extractfile(names[0]).read())
        assert marker["samples"] == len(keys) and marker["fingerprint"]["data"]["max_tokens"] == 16
        f, c, h, w = first["latents"].shape  # the tiny VAE: 4 channels, factor 8; buckets of at most 16 cells of 16 px
        assert c == 4 and (h // 2) * (w // 2) <= 16 and first["mask_latents"].shape == (f, 1, h, w)
        assert first["text.0"].shape[1] == 32  # the tiny T5's width, valid tokens only


def test_a_rerun_does_nothing_and_a_lost_marker_is_made_again(encoded, capsys):
    data, run = encoded
    args = ["latents", str(data), *LATENTS, f"output.dir={run}"]
    capsys.readouterr()
    assert main(args) == 0
    summary = json.loads(capsys.readouterr().out)
    n = len(list_shards(str(data)))
    assert summary["already_done"] == n and summary["encoded_shards"] == 0
    shard = list_shards(str(data))[0]
    tar_path = latents_paths(shard)[0].removeprefix("file://")
    before = open(tar_path, "rb").read()
    (data / "latents" / (shard.url.rsplit("/", 1)[1][:-4] + ".json")).unlink()  # killed before its marker
    with batch_invariant_convolutions():  # as the fixture made it
        assert main(args) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["already_done"] == n - 1 and summary["encoded_shards"] == 1 and summary["images_per_s"] > 0
    assert open(tar_path, "rb").read() == before  # the same inputs give the same bytes


def test_the_loss_from_precomputed_latents_equals_online_encoding(encoded):
    data, run = encoded
    recipe = _recipe(data, run)
    cpu = torch.device("cpu")
    codec = load_vae(recipe.vae, cpu, run / "tiny_models" / "vae")
    text = load_text_encoder(recipe.text_encoder, cpu, run / "tiny_models" / "t5")
    from datagen.trainer.encoders import encoder_fingerprint

    fingerprint = encoder_fingerprint(recipe.vae, recipe.text_encoder, codec, text, recipe.data)
    shards, counts = attach_latents(list_shards(str(data)), fingerprint)
    assert counts == {"matching": len(shards), "other_encoders": 0, "none": 0}
    _, other = attach_latents(list_shards(str(data)), {**fingerprint, "data": {}})
    assert other["other_encoders"] == len(shards)  # latents of other settings are not used

    spec = size_spec("tiny")
    torch.manual_seed(0)
    model = ACEDiT(latent_channels=codec.channels, text_dim=text.dim, **spec)
    with torch.no_grad():  # zero-initialised outputs would make every loss the same
        for p in model.parameters():
            if p.abs().sum() == 0:
                p.normal_(0, 0.05)
    objective = make_objective(recipe.loss)

    def stream(with_latents):
        s = ShardStream(
            recipe.data,
            text.tokenizer,
            0,
            shards=shards if with_latents else list_shards(str(data)),
            max_epochs=1,
            latent_factor=codec.factor,
        )
        return list(s)

    pre, online = stream(True), stream(False)
    assert len(pre) == len(online) >= 2
    assert all(b.precomputed and b.pixels is None for b in pre) and not any(b.precomputed for b in online)
    for i, (a, b) in enumerate(zip(pre, online)):
        assert a.keys == b.keys
        with batch_invariant_convolutions():
            la, lb = (
                training_loss(model, objective, codec, text, x, recipe.loss, step_generator(0, i, 0, 0), 2, False)
                for x in (a, b)
            )
        assert la.n_tokens == lb.n_tokens and la.loss > 0
        la, lb = float(la.loss.detach()), float(lb.loss.detach())
        assert abs(la - lb) < 1e-5, (i, la, lb)


@pytest.mark.slow
def test_datagen_train_uses_the_latents(encoded, tmp_path):
    data, run = encoded
    out = tmp_path / "train"
    shutil.copytree(run / "tiny_models", out / "tiny_models")  # the encoders the latents were made with
    args = ["train", "configs/train_tiny.yaml", f"data.path={data}", f"output.dir={out}", "trainer.max_steps=3"]
    assert main(args + ["data.num_workers=0"]) == 0  # the spawned worker costs more than it saves here
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3] and all(r["precomputed"] == 1.0 for r in rows)
    assert main(args + ["data.latents=false", f"output.dir={tmp_path / 'online'}", "data.num_workers=0"]) == 0
    rows = [json.loads(line) for line in (tmp_path / "online" / "metrics.jsonl").read_text().splitlines()]
    assert all(r["precomputed"] == 0.0 for r in rows)


def test_the_command_takes_its_folder_recipe_and_overrides(capsys, tmp_path):
    from datagen.cli import build_parser, parse

    args = parse(
        build_parser(), ["latents", "out/demo", "output.dir=x", "--config", "configs/train_tiny.yaml", "a.b=1"]
    )
    assert (args.command, args.dir, args.config, args.batch) == ("latents", "out/demo", "configs/train_tiny.yaml", 32)
    assert args.overrides == ["output.dir=x", "a.b=1"]
    # a recipe error exits 2 naming the key, before anything is written
    assert main(["latents", str(tmp_path), "--config", "configs/train_tiny.yaml", "data.max_token=3"]) == 2
    assert "data.max_token: unknown key" in capsys.readouterr().err and not any(tmp_path.iterdir())
