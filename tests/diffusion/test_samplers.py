"""Samplers recover a known distribution with its EXACT analytic denoiser (1-D Gaussian mixture),
and the consistency sampler with the exact consistency function of a Gaussian."""

from __future__ import annotations

import pytest
import torch

from diffariff.diffusion.edm import karras_sigmas
from diffariff.diffusion.samplers import (
    SAMPLERS,
    get_sampler,
    sample_consistency,
    sample_dpmpp_2m,
    sample_euler,
    sample_heun,
)
from diffariff.errors import ConfigError, InputError

WEIGHTS = torch.tensor([0.3, 0.5, 0.2], dtype=torch.float64)
MEANS = torch.tensor([-2.0, 0.5, 2.5], dtype=torch.float64)
VARS = torch.tensor([0.09, 0.16, 0.06], dtype=torch.float64)
N = 12000


def mixture_denoiser(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """E[x0 | x_sigma] for the 1-D mixture sum_k w_k N(m_k, v_k), for x [B, 1] and sigma [B]."""
    w, m, v = WEIGHTS.float(), MEANS.float(), VARS.float()
    tot = v + sigma.float().reshape(-1, 1) ** 2  # [B, K]
    xd = x.float()
    logp = w.log() - 0.5 * (xd - m) ** 2 / tot - 0.5 * tot.log()
    r = torch.softmax(logp, dim=1)
    post = m + v / tot * (xd - m)
    return (r * post).sum(dim=1, keepdim=True).to(x.dtype)


def _stats(x: torch.Tensor):
    x = x.double().squeeze(1)
    comp = (x.unsqueeze(1) - MEANS).abs().argmin(dim=1)
    w = torch.stack([(comp == k).double().mean() for k in range(3)])
    m = torch.stack([x[comp == k].mean() for k in range(3)])
    v = torch.stack([x[comp == k].var() for k in range(3)])
    return w, m, v


def _true_stats():
    """The same statistics on exact samples of the mixture (same nearest-mean assignment, so the
    small tail overlap between components biases both sides equally)."""
    g = torch.Generator().manual_seed(123)
    comp = torch.multinomial(WEIGHTS, 200000, replacement=True, generator=g)
    x = MEANS[comp] + VARS[comp].sqrt() * torch.randn(200000, generator=g, dtype=torch.float64)
    return _stats(x.unsqueeze(1))


def _run(sampler, steps, **kw):
    g = torch.Generator().manual_seed(0)
    sigmas = karras_sigmas(steps)
    x = torch.randn(N, 1, generator=g) * sigmas[0]
    return sampler(mixture_denoiser, x, sigmas, generator=g, **kw)


@pytest.mark.parametrize(
    "name,steps,kw,vtol",
    [
        ("heun", 40, {}, 0.15),
        ("heun", 40, {"s_churn": 20.0, "s_tmin": 0.05, "s_tmax": 50.0}, 0.15),
        ("euler", 100, {}, 0.25),
        ("dpmpp_2m", 40, {}, 0.15),
    ],
)
def test_sampler_recovers_gaussian_mixture(name, steps, kw, vtol):
    """Weights within 0.02, means within 0.03, variances within ``vtol`` (the smallest component
    has ~2400 of the 12000 samples: its variance's standard error alone is ~3 %)."""
    out = _run(SAMPLERS[name], steps, **kw)
    w, m, v = _stats(out)
    w_true, m_true, v_true = _true_stats()
    assert torch.allclose(w, w_true, atol=0.02), w
    assert torch.allclose(m, m_true, atol=0.03), m
    assert torch.allclose(v, v_true, rtol=vtol), (v, v_true)


def test_heun_is_second_order_better_than_euler_at_few_steps():
    w_e, m_e, v_e = _stats(_run(sample_euler, 10))
    w_h, m_h, v_h = _stats(_run(sample_heun, 10))
    v_true = _true_stats()[2]
    assert (v_h / v_true - 1).abs().mean() < 0.8 * (v_e / v_true - 1).abs().mean()


def test_callback_and_determinism():
    seen = []
    a = _run(sample_heun, 5, s_churn=5.0, callback=lambda d: seen.append((d["i"], d["sigma"], d["denoised"].shape)))
    b = _run(sample_heun, 5, s_churn=5.0)
    assert torch.equal(a, b)
    assert [s[0] for s in seen] == list(range(5))
    assert seen[0][1] == pytest.approx(80.0) and seen[0][2] == (N, 1)


def test_samplers_reject_bad_schedules():
    x = torch.zeros(2, 1)
    with pytest.raises(InputError):
        sample_dpmpp_2m(mixture_denoiser, x, torch.tensor([1.0, 2.0, 0.0]))
    with pytest.raises(InputError):
        sample_euler(mixture_denoiser, x, torch.tensor([1.0]))
    with pytest.raises(ConfigError):
        get_sampler("ddim")
    assert get_sampler("consistency") is sample_consistency


def _gauss_f(mean, var, smin=0.002):
    def f(x, sigma):
        s = sigma.double().reshape(-1, 1)
        return (mean + (x.double() - mean) * ((var + smin**2) / (var + s**2)).sqrt()).to(x.dtype)

    return f


@pytest.mark.parametrize("steps", [1, 3, 5])
def test_consistency_sampler_with_exact_consistency_function(steps):
    mean, var = 0.7, 0.3
    g = torch.Generator().manual_seed(0)
    sigmas = karras_sigmas(steps)
    x = torch.randn(40000, 1, generator=g) * sigmas[0]
    out = sample_consistency(_gauss_f(mean, var), x, sigmas, generator=g)
    assert out.mean().item() == pytest.approx(mean, abs=0.02)
    assert out.var().item() == pytest.approx(var, rel=0.03)
