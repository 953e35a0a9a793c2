"""The ACE DiT: shapes, ACE's size table, cross-attention only to a frame's own CU text, padding that changes
nothing, indicator embeddings and 3D RoPE that make frames distinguishable."""

import pytest
import torch

from datagen.trainer.models import (
    SIZES,
    ACEDiT,
    FrameLayout,
    apply_rope,
    count_params,
    cu_cross_mask,
    rope_3d,
    rope_axes,
    size_spec,
)


def _layout(frames_per_sample, texts_per_sample, frame_turns):
    fs, fslot, ftext, find, ts, tslot = [], [], [], [], [], []
    tbase = 0
    for b, (nf, nt) in enumerate(zip(frames_per_sample, texts_per_sample)):
        for f in range(nf):
            fs.append(b)
            fslot.append(f)
            ftext.append(tbase + frame_turns[b][f])
            find.append(1 if f == nf - 1 else f + 2)
        for j in range(nt):
            ts.append(b)
            tslot.append(j)
        tbase += nt
    t = torch.tensor
    return FrameLayout(t(fs), t(fslot), t(ftext), t(find), t(ts), t(tslot), len(frames_per_sample))


def _randomise_zero_inits(model):
    torch.manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            if p.abs().sum() == 0:
                p.normal_(0, 0.2)


def _model(depth=2):
    m = ACEDiT(latent_channels=4, text_dim=16, hidden=48, depth=depth, heads=4, patch=2).eval()
    _randomise_zero_inits(m)
    return m


def test_output_shape_and_zero_init():
    torch.manual_seed(0)
    m = ACEDiT(latent_channels=4, text_dim=16, **SIZES["tiny"])
    lay = _layout([2, 3], [1, 2], [[0, 0], [0, 1, 1]])
    x = torch.randn(5, 9, 8, 12)
    out = m(
        x,
        torch.rand(2),
        torch.randn(3, 5, 16),
        torch.ones(3, 5, dtype=torch.bool),
        torch.zeros(3, 5, dtype=torch.long),
        lay,
    )
    assert out.shape == (5, 4, 8, 12)
    assert out.abs().max() == 0  # final layer starts at zero, as in DiT


def test_size_table_reaches_ace_0_6b():
    spec = size_spec("ACE-0.6B")
    assert spec == dict(hidden=1152, depth=28, heads=16, patch=2)
    with torch.device("meta"):
        m = ACEDiT(latent_channels=4, text_dim=4096, **spec)
    n = count_params(m)
    assert 0.55e9 < n < 0.65e9, n
    with pytest.raises(KeyError):
        size_spec("XXL")


def test_cross_attention_sees_only_its_own_cu_text():
    m = _model(depth=1)  # one block: text reaches a frame only through its own cross-attention
    lay = _layout([2, 3], [1, 2], [[0, 0], [0, 1, 1]])  # sample 1: frame 0 belongs to turn 0, frames 1-2 to turn 1
    x = torch.randn(5, 9, 8, 8)
    text = torch.randn(3, 6, 16)
    valid = torch.ones(3, 6, dtype=torch.bool)
    ind = torch.zeros(3, 6, dtype=torch.long)
    t = torch.full((2,), 0.5)
    base = m(x, t, text, valid, ind, lay)
    moved = text.clone()
    moved[1] += 3.0  # sample 1, turn 0
    out = m(x, t, moved, valid, ind, lay)
    changed = (out - base).flatten(1).abs().amax(1) > 1e-5
    assert changed.tolist() == [False, False, True, False, False]


def test_cu_cross_mask_ignores_padding_tokens():
    lay = _layout([1, 2], [1, 2], [[0], [0, 1]])
    valid = torch.tensor([[1, 1, 0], [1, 0, 0], [1, 1, 1]], dtype=torch.bool)
    mask = cu_cross_mask(lay, fmax=2, P=1, text_valid=valid)[:, 0]  # [B, 2, 2*3]
    assert mask[0, 0].tolist() == [True, True, False, False, False, False]
    assert mask[1, 0].tolist() == [True, False, False, False, False, False]
    assert mask[1, 1].tolist() == [False, False, False, True, True, True]
    assert mask.any(-1).all()  # no empty row, padding frame included


def test_batching_with_padding_changes_nothing():
    m = _model()
    lay_small = _layout([2], [1], [[0, 0]])
    lay_both = _layout([2, 4], [1, 2], [[0, 0], [0, 0, 1, 1]])
    x_small = torch.randn(2, 9, 8, 8)
    x_big = torch.randn(4, 9, 8, 8)
    text_small = torch.randn(1, 5, 16)
    text_big = torch.randn(2, 5, 16)
    v_small = torch.tensor([[1, 1, 1, 0, 0]], dtype=torch.bool)
    v_big = torch.ones(2, 5, dtype=torch.bool)
    ind = torch.zeros(3, 5, dtype=torch.long)
    t = torch.tensor([0.3, 0.8])
    alone = m(x_small, t[:1], text_small, v_small, ind[:1], lay_small)
    both = m(
        torch.cat([x_small, x_big]), t, torch.cat([text_small, text_big]), torch.cat([v_small, v_big]), ind, lay_both
    )
    torch.testing.assert_close(both[:2], alone, atol=1e-5, rtol=1e-4)


def test_frames_are_told_apart_by_indicator_and_rope():
    m = _model()
    lay = _layout([2], [1], [[0, 0]])
    same = torch.randn(1, 9, 8, 8).expand(2, -1, -1, -1).contiguous()  # two identical frames
    text = torch.randn(1, 4, 16)
    out = m(
        same, torch.tensor([0.5]), text, torch.ones(1, 4, dtype=torch.bool), torch.zeros(1, 4, dtype=torch.long), lay
    )
    assert (out[0] - out[1]).abs().max() > 1e-4
    # the text's indicator tokens matter too
    ind = torch.zeros(1, 4, dtype=torch.long)
    ind[0, 1] = 2
    out2 = m(same, torch.tensor([0.5]), text, torch.ones(1, 4, dtype=torch.bool), ind, lay)
    assert (out2 - out).abs().max() > 1e-5


def test_rope_3d_is_relative():
    hd = 24
    assert sum(rope_axes(hd)) == hd and all(d % 2 == 0 for d in rope_axes(hd))
    q = torch.randn(1, 1, 1, hd)
    k = torch.randn(1, 1, 1, hd)

    def score(pq, pk):
        cq, sq = rope_3d(torch.tensor([[pq]]), hd)
        ck, sk = rope_3d(torch.tensor([[pk]]), hd)
        return float((apply_rope(q, cq, sq) * apply_rope(k, ck, sk)).sum())

    # the score depends on offsets in (frame, row, column), not absolute positions
    assert score([0, 1, 2], [1, 3, 3]) == pytest.approx(score([2, 4, 0], [3, 6, 1]), abs=1e-4)
    assert score([0, 1, 2], [1, 3, 3]) != pytest.approx(score([0, 1, 2], [0, 3, 3]), abs=1e-3)
