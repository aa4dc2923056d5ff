"""True stereo (mid/side in one latent) and the pseudo-stereo formula."""

from __future__ import annotations

import numpy as np
import torch

from codec_helpers import tiny_codec
from diffariff.codec.stereo import from_midside, pseudo_stereo, to_midside
from diffariff.train.codec import CodecModule


def test_midside_is_invertible_and_mono_has_no_side():
    g = torch.Generator().manual_seed(0)
    lr = torch.rand(2, 2, 1000, generator=g) * 2 - 1
    assert torch.allclose(from_midside(to_midside(lr)), lr, atol=1e-7)
    ms = to_midside(lr[:, :1])
    assert torch.equal(ms[:, 1], torch.zeros_like(ms[:, 1]))


def test_pseudo_stereo_formula():
    g = torch.Generator().manual_seed(1)
    d1, d2 = torch.randn(1, 1, 50, generator=g), torch.randn(1, 1, 50, generator=g)
    half = pseudo_stereo(d1, d2, 0.5)
    mid, side = (d1 + d2) / 2, 0.5 * (d1 - d2) / 2
    assert torch.allclose(half[:, :1], mid + side) and torch.allclose(half[:, 1:], mid - side)
    assert torch.equal(pseudo_stereo(d1, d2, 0.0)[:, 0], pseudo_stereo(d1, d2, 0.0)[:, 1])


def test_stereo_round_trip_shapes(render_notes):
    codec = tiny_codec(stereo="midside")
    left = render_notes(0, [60, 64, 67, 72], seconds=0.6)[0]
    right = render_notes(40, [48, 55, 52, 60], seconds=0.6)[0]
    x = torch.from_numpy(np.stack([left, right]))[None]  # [1, 2, N]
    z = codec.encode(x)
    assert z.shape == (1, 64, 8)
    y = codec.decode(z, seed=0, length=x.shape[-1])
    assert y.shape == x.shape and torch.isfinite(y).all()
    # a mono input to a stereo codec is accepted (side = 0)
    assert codec.encode(x[:, :1]).shape == (1, 64, 8)
    # the pseudo-stereo entry point of a stereo codec is its true stereo decoding
    assert torch.equal(codec.decode_pseudo_stereo(z, seed=0), codec.decode(z, seed=0))


def test_stereo_codec_trains_one_step(render_notes):
    from dataclasses import asdict

    codec = tiny_codec(stereo="midside")
    module = CodecModule(asdict(codec.config), {"stage": 1})
    left = render_notes(0, [60, 64, 67, 72], seconds=0.4)[0, : 4096 * 4]
    right = render_notes(40, [48, 55, 52, 60], seconds=0.4)[0, : 4096 * 4]
    x = torch.from_numpy(np.stack([left, right]))[None]
    x = module.codec.prepare_audio(x)[0]
    assert x.shape == (1, 2, 4096 * 4)
    opt = torch.optim.Adam([p for p in module.codec.parameters() if p.requires_grad], 1e-3)
    before = module.codec.encoder.bottleneck.weight.detach().clone()
    loss = module._stage1_loss(x)
    loss.backward()
    opt.step()
    assert torch.isfinite(loss)
    assert not torch.equal(before, module.codec.encoder.bottleneck.weight)
