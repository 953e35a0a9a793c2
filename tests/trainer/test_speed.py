"""The fast paths of the training step: batches where every token is valid attend with no mask (the flash path),
masked ones through SDPA or flex attention with the same result; compiled blocks compute what eager ones do and keep
the state dict's names; compile, flex attention and fused AdamW are on by default on CUDA only."""

import pytest
import torch

from datagen.config import ConfigError
from datagen.trainer.config import OptimConfig, TrainerConfig
from datagen.trainer.loop import Speed, resolve_speed
from datagen.trainer.models import ACEDiT, FrameLayout, attention_plan


def _layout(frames, texts):
    """frames/texts per sample; every frame of a sample points at the sample's last text."""
    fs, fslot, ftext, find, ts, tslot = [], [], [], [], [], []
    base = 0
    for b, (nf, nt) in enumerate(zip(frames, texts)):
        for f in range(nf):
            fs.append(b)
            fslot.append(f)
            ftext.append(base + nt - 1)
            find.append(1 if f == nf - 1 else f + 2)
        for j in range(nt):
            ts.append(b)
            tslot.append(j)
        base += nt
    t = torch.tensor
    return FrameLayout(t(fs), t(fslot), t(ftext), t(find), t(ts), t(tslot), len(frames))


def _model(attention):
    torch.manual_seed(0)
    m = ACEDiT(latent_channels=4, text_dim=16, hidden=48, depth=2, heads=4, patch=2, attention=attention)
    with torch.no_grad():  # the zero-initialised outputs would hide any difference
        for p in m.parameters():
            if p.abs().sum() == 0:
                p.normal_(0, 0.2)
    return m


def _inputs(frames, texts, valid_tokens):
    torch.manual_seed(1)
    lay = _layout(frames, texts)
    n, m = sum(frames), sum(texts)
    valid = torch.zeros(m, 6, dtype=torch.bool)
    for i, k in enumerate(valid_tokens):
        valid[i, :k] = True
    lay.with_text_valid(valid)
    return torch.randn(n, 9, 8, 8), torch.rand(len(frames)), torch.randn(m, 6, 16), valid, lay


def test_attention_plan_takes_the_unmasked_path_where_every_token_is_valid():
    full = _inputs([2, 2], [1, 1], [6, 6])[-1]
    assert attention_plan(full, None, "sdpa") == ("dense", "dense")
    padded_text = _inputs([2, 2], [1, 1], [6, 3])[-1]
    assert attention_plan(padded_text, None, "sdpa") == ("dense", "mask")
    assert attention_plan(padded_text, None, "flex") == ("dense", "flex")
    fewer_frames = _inputs([2, 3], [1, 2], [6, 6, 6])[-1]  # two texts in sample 1: per-CU cross-attention
    assert attention_plan(fewer_frames, None, "flex") == ("flex", "flex")
    # read on the host when the layout is made, not in the forward pass
    assert full.frames_full is True and full.texts_full is True and full.fmax == 2 and full.tmax == 1
    with pytest.raises(ValueError, match="attention backend"):
        attention_plan(full, None, "flash")


@pytest.mark.filterwarnings("ignore:flex_attention called without torch.compile")
@pytest.mark.parametrize("frames,texts,tokens", [([2, 3], [1, 2], [4, 6, 2]), ([2, 2], [1, 1], [6, 3])])
def test_flex_attention_gives_what_the_sdpa_mask_gives(frames, texts, tokens):
    x, t, text, valid, lay = _inputs(frames, texts, tokens)
    ind = torch.zeros_like(valid, dtype=torch.long)
    with torch.no_grad():  # flex attention has no backward on CPU (resolve_speed refuses it there)
        sdpa = _model("sdpa")(x, t, text, valid, ind, lay)
        flex = _model("flex")(x, t, text, valid, ind, lay)
    torch.testing.assert_close(flex, sdpa, atol=1e-5, rtol=1e-4)


def test_the_unmasked_path_gives_what_the_masked_one_gives():
    x, t, text, valid, lay = _inputs([2, 2], [1, 1], [6, 6])
    ind = torch.zeros_like(valid, dtype=torch.long)
    m = _model("sdpa")
    dense = m(x, t, text, valid, ind, lay)
    lay.texts_full = False  # force the boolean cross-attention mask (all True here)
    masked = m(x, t, text, valid, ind, lay)
    torch.testing.assert_close(dense, masked, atol=1e-5, rtol=1e-4)


def test_compiled_blocks_match_eager_and_keep_the_state_dict_names():
    x, t, text, valid, lay = _inputs([2, 3], [1, 2], [4, 6, 2])
    ind = torch.zeros_like(valid, dtype=torch.long)
    m = _model("sdpa")
    keys = list(m.state_dict())
    eager = m(x, t, text, valid, ind, lay)
    m.compile_blocks(backend="eager")  # dynamo traces the block (graph breaks would show); no code generated
    compiled = m(x, t, text, valid, ind, lay)
    compiled.square().mean().backward()
    torch.testing.assert_close(compiled, eager)
    assert list(m.state_dict()) == keys
    assert m.blocks[0].attn.qkv.weight.grad is not None


def test_speed_defaults_are_on_with_cuda_and_off_on_cpu():
    cpu, cuda = torch.device("cpu"), torch.device("cuda", 0)
    t, o = TrainerConfig(), OptimConfig()
    assert resolve_speed(t, o, cuda) == Speed(True, "flex", True)
    assert resolve_speed(t, o, cpu) == Speed(False, "sdpa", False)
    # every key overrides its default
    assert resolve_speed(TrainerConfig(compile=False), o, cuda) == Speed(False, "sdpa", True)
    assert resolve_speed(TrainerConfig(compile=True), OptimConfig(fused=True), cpu) == Speed(True, "sdpa", True)
    with pytest.raises(ConfigError, match="trainer.attention=flex"):
        resolve_speed(TrainerConfig(attention="flex"), o, cpu)
    assert resolve_speed(TrainerConfig(attention="sdpa"), OptimConfig(fused=False), cuda) == Speed(True, "sdpa", False)
