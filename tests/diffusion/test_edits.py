"""Editing hooks composed with real samplers around a tiny randomised DiT (EDM-preconditioned)."""

from __future__ import annotations

import pytest
import torch

from diffariff.diffusion.edits import (
    Inpaint,
    LoopTie,
    StyleGround,
    generate_windowed,
    lerp,
    loop_noise,
    plan_windows,
    slerp,
    variation_sigma,
    variation_start,
)
from diffariff.diffusion.edm import EDMDenoiser, karras_sigmas
from diffariff.diffusion.guidance import GuidedDenoiser
from diffariff.diffusion.samplers import sample_dpmpp_2m, sample_heun
from diffariff.errors import InputError
from diffariff.nets import build_net

STEPS = 6


@pytest.fixture(scope="module")
def denoise():
    torch.manual_seed(0)
    net = build_net("dit", {"width": 64, "depth": 2, "heads": 4, "cond_dim": 64, "clap_dim": 32})
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.1)
    den = EDMDenoiser(net.eval(), sigma_data=0.5)

    def d(x, sigma, **cond):
        with torch.no_grad():
            return den(x, sigma, **cond)

    return d


def _noise(b, t, seed=0, sigma=80.0):
    return torch.randn(b, 64, t, generator=torch.Generator().manual_seed(seed)) * sigma


@pytest.mark.parametrize("sampler", [sample_heun, sample_dpmpp_2m])
def test_inpainting_keeps_known_region(denoise, sampler):
    t = 31
    known = torch.randn(2, 64, t, generator=torch.Generator().manual_seed(5)) * 0.5
    mask = torch.zeros(1, 1, t)
    mask[..., :10] = 1
    mask[..., 25:] = 1
    inp = Inpaint(denoise, known, mask, torch.Generator().manual_seed(1))
    out = sampler(inp, _noise(2, t), karras_sigmas(STEPS))
    assert (out - known)[..., :10].abs().max() < 1e-4 and (out - known)[..., 25:].abs().max() < 1e-4
    final = inp.finalize(out)
    assert torch.equal(final[..., :10], known[..., :10]) and torch.equal(final[..., 25:], known[..., 25:])
    assert (final - known)[..., 10:25].abs().mean() > 0.05  # the hole is generated, not copied


def test_inpainting_composes_with_guidance(denoise):
    t = 12
    ctx = torch.randn(1, 64, t) * 0.5
    clap = torch.nn.functional.normalize(torch.randn(1, 32), dim=1)
    known = torch.zeros(1, 64, t)
    mask = torch.zeros(1, 1, t)
    mask[..., :4] = 1
    inp = Inpaint(GuidedDenoiser(denoise, ctx, clap), known, mask)
    out = inp.finalize(sample_heun(inp, _noise(1, t), karras_sigmas(4)))
    assert torch.equal(out[..., :4], known[..., :4])
    with pytest.raises(InputError):
        Inpaint(denoise, known, torch.zeros(1, 1, t + 1))


@pytest.mark.parametrize("n,t,periodic_start", [(2, 24, True), (4, 45, False)])
def test_loop_sampling_is_periodic_when_s_loop_is_one(denoise, n, t, periodic_start):
    sigmas = karras_sigmas(STEPS)
    x = loop_noise(_noise(1, t), n) if periodic_start else _noise(1, t)
    out = sample_heun(LoopTie.for_schedule(denoise, n, 1.0, sigmas), x, sigmas)
    period = -(-t // n)
    for k in range(1, n):
        seg = out[..., k * period:(k + 1) * period]
        assert torch.allclose(seg, out[..., : seg.shape[-1]], atol=1e-6)
    if not periodic_start:
        # s_loop = 0.5: the last half of the steps run untied from a non-periodic state: no loop
        free = sample_heun(LoopTie.for_schedule(denoise, n, 0.5, sigmas), x, sigmas)
        assert (free[..., period:2 * period] - free[..., :period]).abs().max() > 0.1


def test_variation_mapping_and_small_strength_returns_input(denoise):
    assert variation_sigma(1.0) == pytest.approx(80.0)
    assert variation_sigma(1e-6) == pytest.approx(0.002, rel=1e-3)
    vals = [variation_sigma(s) for s in (0.2, 0.5, 0.8)]
    assert vals == sorted(vals) and 0.01 < vals[0] < 0.1 and 1 < vals[1] < 4 and 15 < vals[2] < 35
    known = torch.randn(1, 64, 20, generator=torch.Generator().manual_seed(2)) * 0.5
    x, sigmas = variation_start(known, 1e-3, 30, torch.Generator().manual_seed(3))
    assert len(sigmas) == 2 and sigmas[0].item() == pytest.approx(variation_sigma(1e-3))
    out = sample_heun(denoise, x, sigmas)
    assert (out - known).abs().max() < 0.02
    x, sigmas = variation_start(known, 0.8, 10, torch.Generator().manual_seed(3))
    assert len(sigmas) == 9
    far = sample_heun(denoise, x, sigmas)
    assert (far - known).abs().mean() > 0.1
    with pytest.raises(InputError):
        variation_sigma(0.0)


def test_slerp_and_lerp():
    g = torch.Generator().manual_seed(0)
    a = torch.nn.functional.normalize(torch.randn(3, 512, generator=g), dim=1)
    b = torch.nn.functional.normalize(torch.randn(3, 512, generator=g), dim=1)
    assert torch.allclose(slerp(a, b, 0.0), a, atol=1e-5) and torch.allclose(slerp(a, b, 1.0), b, atol=1e-5)
    mid = slerp(a, b, 0.5)
    assert torch.allclose(mid.norm(dim=1), torch.ones(3), atol=1e-5)
    assert torch.allclose((mid * a).sum(1), (mid * b).sum(1), atol=1e-5)
    q = slerp(a, b, 0.25)  # constant angular speed: a quarter of the angle
    ang = torch.acos((a * b).sum(1))
    assert torch.allclose(torch.acos((q * a).sum(1).clamp(-1, 1)), 0.25 * ang, atol=1e-3)
    assert torch.allclose(slerp(a, a, 0.3), a, atol=1e-5)
    assert torch.allclose(lerp(a, b, 0.5).norm(dim=1), torch.ones(3), atol=1e-5)
    assert torch.allclose(lerp(a, b, 0.5, normalize=False), (a + b) / 2)
    with pytest.raises(InputError):
        slerp(a, b[:, :10], 0.5)


def _pseudo_latent(audio) -> torch.Tensor:
    """[1, 64, T]: 64-band log-magnitude spectrogram of real rendered audio at the latent frame rate
    (4096-sample hop at 48 kHz), a stand-in reference with realistic per-channel statistics."""
    x = torch.from_numpy(audio.mean(axis=0))
    spec = torch.stft(x, 256, hop_length=4096, window=torch.hann_window(256), return_complex=True).abs()
    return torch.log(spec[1:129].reshape(64, 2, -1).mean(1) + 1e-4).unsqueeze(0)


def test_style_grounding_pulls_statistics_to_a_real_reference(denoise, render_notes):
    ref = _pseudo_latent(render_notes(33, [40, 43, 45, 47, 40, 38], seconds=3.0))  # fingered bass
    ref = (ref - ref.mean()) / ref.std()  # latent-like scale, per-channel structure kept
    assert ref.shape[1] == 64 and ref.shape[2] >= 30
    mu_ref, sd_ref = ref.mean(-1), ref.std(-1)

    def err(z):
        return ((z.mean(-1) - mu_ref).abs().mean() + (z.std(-1) - sd_ref).abs().mean()).item()

    sigmas = karras_sigmas(STEPS)
    x = _noise(1, 40)
    free = sample_heun(denoise, x, sigmas)
    full = sample_heun(StyleGround(denoise, ref, strength=1.0), x, sigmas)
    assert err(full) < 1e-3 < 0.3 < err(free)
    # one call at strength 0.5 moves each channel's mean exactly halfway to the reference's
    xs, s = _noise(1, 40, seed=4, sigma=2.0), torch.full((1,), 2.0)
    d = denoise(xs, s)
    half = StyleGround(denoise, ref, strength=0.5)(xs, s)
    assert torch.allclose(half.mean(-1), (d.mean(-1) + mu_ref) / 2, atol=1e-4)
    assert torch.equal(StyleGround(denoise, ref, strength=1.0, sigma_stop=3.0)(xs, s), d)  # below stop: off
    with pytest.raises(InputError):
        StyleGround(denoise, ref, strength=2.0)


def test_plan_windows():
    assert plan_windows(100, 117, 30) == [(0, 100)]
    w = plan_windows(300, 117, 30)
    assert w[0] == (0, 117) and w[-1][1] == 300
    assert all(b[0] <= a[1] - 30 for a, b in zip(w, w[1:]))
    assert all(e - s == 117 for s, e in w)
    with pytest.raises(InputError):
        plan_windows(300, 117, 117)


def test_windowed_generation_continues_through_overlaps(denoise):
    calls = []

    def sample_window(index, start, end, known, mask):
        calls.append((start, end, int(mask.sum())))
        inp = Inpaint(denoise, known, mask.float().reshape(1, 1, -1), torch.Generator().manual_seed(start))
        x = torch.randn(known.shape, generator=torch.Generator().manual_seed(start)) * 80
        return inp.finalize(sample_heun(inp, x, karras_sigmas(4)))

    out = generate_windowed(sample_window, plan_windows(70, 30, 10))
    assert out.shape == (1, 64, 70)
    assert [c[:2] for c in calls] == plan_windows(70, 30, 10)
    assert calls[0][2] == 0 and all(c[2] >= 10 for c in calls[1:])
    again = generate_windowed(sample_window, plan_windows(70, 30, 10))
    assert torch.equal(out, again)
    assert bool((out.abs().sum(1) > 0).all())  # every frame generated
