"""Flow matching as ACE++ (x_t, velocity target, shifted logit-normal t), ACE's eps option, the loss on all
frames or the target only, and the samplers: with the exact velocity (or noise) field of a known target,
flow-Euler and DDIM land on that target."""

import pytest
import torch

from datagen.shards.reader import iter_samples
from datagen.trainer.buckets import make_buckets, nearest_bucket
from datagen.trainer.config import LossConfig, TextEncoderConfig, VaeConfig
from datagen.trainer.encoders import load_text_encoder, load_vae
from datagen.trainer.examples import collate, to_example
from datagen.trainer.objectives import EpsPrediction, FlowMatching, shift_time, training_loss
from datagen.trainer.sampler import sample_targets


def test_flow_interpolation_and_target():
    obj = FlowMatching(LossConfig())
    x0, noise = torch.randn(3, 4, 2, 2), torch.randn(3, 4, 2, 2)
    t = torch.tensor([0.0, 0.25, 1.0])
    x_t, v = obj.noisy(x0, noise, t)
    torch.testing.assert_close(x_t[0], x0[0])
    torch.testing.assert_close(x_t[2], noise[2])
    torch.testing.assert_close(x_t[1], 0.75 * x0[1] + 0.25 * noise[1])
    torch.testing.assert_close(v, noise - x0)


def test_shifted_logit_normal_time():
    g = torch.Generator().manual_seed(0)
    plain = FlowMatching(LossConfig(shift=1.0)).sample_t(20000, g, torch.device("cpu"))
    g = torch.Generator().manual_seed(0)
    shifted = FlowMatching(LossConfig(shift=3.0)).sample_t(20000, g, torch.device("cpu"))
    assert 0 < float(plain.min()) and float(plain.max()) < 1
    assert abs(float(plain.median()) - 0.5) < 0.02  # logit-normal(0, 1) is centred
    assert float(shifted.median()) == pytest.approx(0.75, abs=0.02)  # shift 3 maps 0.5 to 0.75
    assert shift_time(torch.tensor(0.5), 3.0) == pytest.approx(0.75)


def test_eps_schedule():
    obj = EpsPrediction(LossConfig(objective="eps"))
    a = obj.alphas_cumprod
    assert a[0] > 0.999 and a[-1] < 0.01 and bool((a[1:] < a[:-1]).all())
    x0, eps = torch.randn(2, 4, 2, 2), torch.randn(2, 4, 2, 2)
    x_t, target = obj.noisy(x0, eps, torch.tensor([0.0, 999.0]))
    torch.testing.assert_close(target, eps)
    torch.testing.assert_close(x_t[0], a[0].sqrt() * x0[0] + (1 - a[0]).sqrt() * eps[0])


class Oracle(torch.nn.Module):
    """The exact field of a point-mass target x0*: velocity (x_t - x0*)/t for flow, or the implied noise for eps."""

    def __init__(self, x0_target, kind, alphas=None, steps=1000):
        super().__init__()
        self.x0, self.kind, self.alphas, self.steps = x0_target, kind, alphas, steps
        self.dummy = torch.nn.Parameter(torch.zeros(()))

    def forward(self, inp, t, text, valid, ind, layout):
        C = self.x0.shape[1]
        x_t = inp[:, :C]
        tf = t[layout.frame_sample].view(-1, 1, 1, 1)
        if self.kind == "flow":
            return (x_t - self.x0) / tf.clamp_min(1e-6) + self.dummy
        a = self.alphas[(tf * self.steps).round().long()]
        return (x_t - a.sqrt() * self.x0) / (1 - a).sqrt() + self.dummy


@pytest.fixture(scope="module")
def setup(tiny_models, shard_dir):
    dev = torch.device("cpu")
    codec = load_vae(VaeConfig(path=str(tiny_models / "vae")), dev)
    te = load_text_encoder(TextEncoderConfig(path=str(tiny_models / "t5")), dev)
    sample = next(s for s in iter_samples(shard_dir) if s.task == "Inpainting")
    bucket = nearest_bucket(*sample.current.target.size, make_buckets(16))
    batch = collate([to_example(sample, bucket, 9)], te.tokenizer, 16)
    return codec, te, batch


@pytest.mark.parametrize("kind", ["flow", "eps"])
def test_sampler_reaches_the_exact_target(setup, kind):
    codec, te, batch = setup
    cfg = LossConfig(objective=kind, shift=3.0)
    obj = FlowMatching(cfg) if kind == "flow" else EpsPrediction(cfg)
    x0 = codec.encode(batch.pixels)
    model = Oracle(x0, kind, getattr(obj, "alphas_cumprod", None))
    out = sample_targets(model, obj, codec, te, batch, cfg, steps=12, seed=3)
    target = x0[batch.is_target]
    assert out.shape == target.shape
    torch.testing.assert_close(out, target, atol=2e-3, rtol=1e-3)


def test_loss_on_target_only_or_all_frames(setup):
    codec, te, batch = setup
    x0 = codec.encode(batch.pixels)
    for frames, expect_zero in (("target", True), ("all", False)):
        cfg = LossConfig(frames=frames, text_dropout=0.0)
        obj = FlowMatching(cfg)
        only_target = x0 * batch.is_target.view(-1, 1, 1, 1)
        model = Oracle(only_target, "flow")  # exact for the target frame, wrong for the input frame
        res = training_loss(model, obj, codec, te, batch, cfg, torch.Generator().manual_seed(0), 2, False)
        assert res.n_samples == 1 and res.n_tokens == batch.pixels.shape[0] * (batch.pixels.shape[-2] // 16) * (
            batch.pixels.shape[-1] // 16
        )
        if expect_zero:
            assert float(res.loss.detach()) < 1e-9
        else:
            assert float(res.loss.detach()) > 1e-4  # the input frame's error now counts
