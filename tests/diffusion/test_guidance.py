"""Dual classifier-free guidance: reductions, the formula, pass merging, one batched call, rescaling."""

from __future__ import annotations

import pytest
import torch

from diffariff.commands.options import guidance_interval
from diffariff.diffusion.edm import EDMDenoiser
from diffariff.diffusion.guidance import (
    GuidedDenoiser,
    IntervalGuidance,
    PerSampleGuidance,
    guidance_weights,
    rescale_to,
)
from diffariff.errors import InputError
from diffariff.nets import build_net


class Counting:
    """An EDM denoiser around a tiny randomised DiT that records each call's batch size."""

    def __init__(self):
        torch.manual_seed(0)
        net = build_net("dit", {"width": 64, "depth": 2, "heads": 4, "cond_dim": 64, "clap_dim": 32})
        g = torch.Generator().manual_seed(0)
        with torch.no_grad():
            for p in net.parameters():
                p.copy_(torch.randn(p.shape, generator=g) * 0.1)
        self.den = EDMDenoiser(net.eval(), sigma_data=0.5)
        self.batches: list[int] = []

    def __call__(self, x, sigma, **cond):
        self.batches.append(x.shape[0])
        with torch.no_grad():
            return self.den(x, sigma, **cond)


def _data(b=2, t=15):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(b, 64, t, generator=g) * 2.0
    ctx = torch.randn(b, 64, t, generator=g) * 0.5
    clap = torch.nn.functional.normalize(torch.randn(b, 32, generator=g), dim=1)
    return x, torch.full((b,), 2.0), ctx, clap


def test_strengths_one_one_is_the_conditional_denoiser_in_one_pass():
    d = Counting()
    x, s, ctx, clap = _data()
    out = GuidedDenoiser(d, ctx, clap, 1.0, 1.0)(x, s)
    assert d.batches == [2]
    assert torch.allclose(out, d(x, s, context=ctx, clap=clap), atol=1e-5)


def test_strengths_zero_zero_is_the_unconditional_denoiser():
    d = Counting()
    x, s, ctx, clap = _data()
    out = GuidedDenoiser(d, ctx, clap, 0.0, 0.0)(x, s)
    assert d.batches == [2]
    assert torch.allclose(out, d(x, s), atol=1e-5)


def test_formula_with_all_three_passes_in_one_batched_call():
    d = Counting()
    x, s, ctx, clap = _data()
    out = GuidedDenoiser(d, ctx, clap, 2.0, 0.5)(x, s)
    assert d.batches == [6]  # three passes, one call
    d00, dc0, dcc = d(x, s), d(x, s, context=ctx), d(x, s, context=ctx, clap=clap)
    expected = d00 + 2.0 * (dc0 - d00) + 0.5 * (dcc - dc0)
    assert torch.allclose(out, expected, atol=1e-4)
    assert not torch.allclose(out, dcc, atol=1e-3)


def test_per_sample_guidance_matches_guidance_sample_by_sample():
    """The distillation teacher: each sample's conditions (drop masks) get their own nested CFG, all
    passes in one call; equal to GuidedDenoiser run on that sample alone with its conditions."""
    d = Counting()
    x, s, ctx, clap = _data(b=4)
    drop_ctx = torch.tensor([False, True, False, True])
    drop_clap = torch.tensor([False, False, True, True])
    out = PerSampleGuidance(d, 2.0, 0.5)(x, s, context=ctx, clap=clap, drop_context=drop_ctx, drop_clap=drop_clap)
    assert d.batches == [3 + 2 + 2 + 1]  # passes per sample: both, clap only, ctx only, none
    for i in range(4):
        one = GuidedDenoiser(d, None if drop_ctx[i] else ctx[i:i + 1], None if drop_clap[i] else clap[i:i + 1], 2.0, 0.5)
        assert torch.allclose(out[i:i + 1], one(x[i:i + 1], s[i:i + 1]), atol=1e-4), i
    plain = PerSampleGuidance(d, 1.0, 1.0)(x, s, context=ctx, clap=clap, drop_context=drop_ctx, drop_clap=drop_clap)
    assert torch.allclose(plain, d(x, s, context=ctx, clap=clap, drop_context=drop_ctx, drop_clap=drop_clap), atol=1e-5)
    assert torch.allclose(PerSampleGuidance(d, 2.0, 0.5)(x, s), d(x, s), atol=1e-5)  # no conditions: D(0, 0)


def test_default_strengths_and_pass_reduction():
    assert guidance_weights(1.25, 1.25, True, True) == pytest.approx({(False, False): -0.25, (True, True): 1.25})
    assert guidance_weights(1.25, 2.0, False, True) == pytest.approx({(False, False): -1.0, (False, True): 2.0})
    assert guidance_weights(3.0, 2.0, True, False) == pytest.approx({(False, False): -2.0, (True, False): 3.0})
    assert guidance_weights(3.0, 2.0, False, False) == pytest.approx({(False, False): 1.0})
    d = Counting()
    x, s, ctx, clap = _data()
    g = GuidedDenoiser(d, ctx, clap)
    assert (g.w_ctx, g.w_clap) == (1.25, 1.25)
    g(x, s)
    assert d.batches == [4]  # equal strengths: D(0,0) and D(ctx,clap) only


def test_absent_context_uses_clap_guidance_only():
    d = Counting()
    x, s, _, clap = _data()
    out = GuidedDenoiser(d, None, clap, 1.5, 2.0)(x, s)
    assert d.batches == [4]
    d00, d0c = d(x, s), d(x, s, clap=clap)
    assert torch.allclose(out, d00 + 2.0 * (d0c - d00), atol=1e-4)
    d.batches.clear()
    assert torch.allclose(GuidedDenoiser(d, None, None, 3.0, 3.0)(x, s), d00, atol=1e-5)
    assert d.batches == [2]


def test_rescaled_guidance_matches_conditional_std():
    d = Counting()
    x, s, ctx, clap = _data()
    plain = GuidedDenoiser(d, ctx, clap, 4.0, 4.0)(x, s)
    d.batches.clear()
    out = GuidedDenoiser(d, ctx, clap, 4.0, 4.0, rescale_phi=1.0)(x, s)
    assert d.batches == [4]
    dcc = d(x, s, context=ctx, clap=clap)
    assert torch.allclose(out.flatten(1).std(dim=1), dcc.flatten(1).std(dim=1), rtol=1e-4)
    assert plain.flatten(1).std(dim=1).mean() > dcc.flatten(1).std(dim=1).mean()
    half = rescale_to(plain, dcc, 0.5)
    assert torch.allclose(half, 0.5 * plain + 0.5 * out, atol=1e-5)
    d.batches.clear()
    GuidedDenoiser(d, ctx, clap, 0.0, 0.0, rescale_phi=0.7)(x, s)
    assert d.batches == [4]  # the conditional pass is added for the rescaling reference


def test_bad_guidance_inputs():
    d = Counting()
    x, s, ctx, clap = _data()
    with pytest.raises(InputError):
        GuidedDenoiser(d, ctx, clap, rescale_phi=1.5)
    with pytest.raises(InputError):
        GuidedDenoiser(d, ctx[:1].repeat(3, 1, 1), clap)(x, s)
    out = GuidedDenoiser(d, ctx[:1], clap[:1], 1.0, 1.0)(x, s)  # batch-1 conditions broadcast
    assert out.shape == x.shape


def test_interval_guidance_guides_inside_and_is_plain_outside():
    d = Counting()
    x, _, ctx, clap = _data(b=3)
    guided, plain = GuidedDenoiser(d, ctx, clap, 3.0, 2.0), GuidedDenoiser(d, ctx, clap, 1.0, 1.0)
    step = IntervalGuidance(guided, plain, 0.5, 5.0)
    d.batches.clear()
    assert torch.allclose(step(x, torch.tensor(2.0)), guided(x, torch.full((3,), 2.0)), atol=1e-5)
    assert d.batches == [9, 9]  # inside: the guided passes only (3 passes x 3 samples), twice
    d.batches.clear()
    for s in (0.5, 8.0):  # the interval is (lo, hi]: lo itself and above hi are outside
        assert torch.allclose(step(x, s), d(x, torch.full((3,), s), context=ctx, clap=clap), atol=1e-5)
    assert d.batches == [3, 3, 3, 3]  # outside: one conditional pass (plus the reference calls)
    mixed = step(x, torch.tensor([0.2, 2.0, 40.0]))  # per sample
    for i, s in enumerate((0.2, 2.0, 40.0)):
        ref = (guided if 0.5 < s <= 5.0 else plain)(x, torch.full((3,), s))[i]
        assert torch.allclose(mixed[i], ref, atol=1e-5)


def test_bad_guidance_intervals():
    d = Counting()
    with pytest.raises(InputError):
        IntervalGuidance(d, d, 5.0, 0.5)
    with pytest.raises(InputError):
        IntervalGuidance(d, d, -1.0, 0.5)
    assert guidance_interval(None) is None and guidance_interval([0.5, 10]) == (0.5, 10.0)
    for bad in ([1.0, 1.0], [2.0, 1.0], [-0.1, 1.0], [0.0, float("nan")]):
        with pytest.raises(InputError):
            guidance_interval(bad)
