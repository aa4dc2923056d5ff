"""EDM and consistency preconditioning: identities, exact-denoiser results, schedules."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from diffariff.diffusion.consistency import (
    ConsistencyConfig,
    ConsistencyDenoiser,
    consistency_grid,
    consistency_loss,
    consistency_scalings,
    discretisation_steps,
    pseudo_huber,
    sample_grid_indices,
)
from diffariff.diffusion.edm import (
    EDMConfig,
    EDMDenoiser,
    edm_loss,
    edm_loss_weight,
    edm_scalings,
    karras_sigmas,
    measure_sigma_data,
    sample_training_sigmas,
    sigma_at_fraction,
)
from diffariff.errors import ConfigError, InputError


class ZeroNet(nn.Module):
    """F = 0: the exact optimal network for N(0, sd^2) data when sigma_data = sd."""

    def forward(self, x, c_noise, **cond):
        return torch.zeros_like(x)


class RecordNet(nn.Module):
    def forward(self, x, c_noise, **cond):
        self.x_in, self.c_noise, self.cond = x, c_noise, cond
        return torch.zeros_like(x)


def test_edm_scalings_values():
    s = torch.tensor([0.002, 0.5, 80.0])
    c_skip, c_out, c_in, c_noise = edm_scalings(s, 0.5)
    assert torch.allclose(c_skip, 0.25 / (s**2 + 0.25))
    assert torch.allclose(c_out, s * 0.5 / (s**2 + 0.25).sqrt())
    assert torch.allclose(c_noise, s.log() / 4)
    # at sigma = sigma_data skip and output weights balance: c_skip = 1/2, c_out = sd / sqrt(2)
    assert c_skip[1].item() == pytest.approx(0.5)
    assert c_out[1].item() == pytest.approx(0.5 / math.sqrt(2))


def test_c_in_normalises_input_variance():
    g = torch.Generator().manual_seed(0)
    sd = 0.7
    x0 = torch.randn(4096, 64, generator=g) * sd
    for sigma in (0.01, 0.7, 5.0, 60.0):
        x = x0 + sigma * torch.randn(x0.shape, generator=g)
        _, _, c_in, _ = edm_scalings(torch.tensor([sigma]), sd)
        assert (x * c_in).std().item() == pytest.approx(1.0, rel=0.02)


def test_zero_net_is_exact_gaussian_posterior_mean_and_loss_is_one():
    """For x0 ~ N(0, sd^2), E[x0 | x] = sd^2 / (sd^2 + s^2) x, i.e. F = 0; the EDM weight makes the
    expected loss of the optimal denoiser exactly 1 at every sigma."""
    sd = 0.5
    den = EDMDenoiser(ZeroNet(), sigma_data=sd)
    x = torch.randn(3, 8)
    s = torch.tensor([0.1, 1.0, 10.0])
    expected = (sd**2 / (sd**2 + s**2)).unsqueeze(1) * x
    assert torch.allclose(den(x, s), expected)
    g = torch.Generator().manual_seed(1)
    x0 = torch.randn(20000, 16, generator=g) * sd  # [B, D]: no 3-D assumption anywhere
    loss, sigmas = edm_loss(den, x0, generator=g)
    assert loss.shape == (20000,) and sigmas.shape == (20000,)
    assert loss.mean().item() == pytest.approx(1.0, abs=0.02)


def test_denoiser_passes_scaled_input_and_cond():
    net = RecordNet()
    den = EDMDenoiser(net, sigma_data=0.5)
    x = torch.randn(2, 64, 5)
    den(x, 2.0, context=None, clap="c")
    assert torch.allclose(net.x_in, x / math.sqrt(4.25))
    assert net.c_noise.shape == (2,)
    assert net.cond == {"context": None, "clap": "c"}
    with pytest.raises(InputError):
        den(x, torch.ones(3))


def test_loss_weight_and_training_sigmas():
    s = torch.tensor([0.5])
    assert edm_loss_weight(s, 0.5).item() == pytest.approx(0.5 / 0.0625)
    sig = sample_training_sigmas(50000, -1.2, 1.2, torch.Generator().manual_seed(0))
    assert sig.log().mean().item() == pytest.approx(-1.2, abs=0.03)
    assert sig.log().std().item() == pytest.approx(1.2, abs=0.03)


def test_karras_sigmas():
    sig = karras_sigmas(30)
    assert sig.shape == (31,)
    assert sig[0].item() == pytest.approx(80.0) and sig[-2].item() == pytest.approx(0.002)
    assert sig[-1].item() == 0.0
    assert bool((sig[1:] < sig[:-1]).all())
    assert karras_sigmas(1).tolist() == pytest.approx([80.0, 0.0])
    assert sigma_at_fraction(0.0) == pytest.approx(0.002) and sigma_at_fraction(1.0) == pytest.approx(80.0)
    with pytest.raises(InputError):
        karras_sigmas(0)


def test_measure_sigma_data():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(10, 64, 30, generator=g) * 3 + 1
    assert measure_sigma_data(x) == pytest.approx(x.double().std(unbiased=False).item(), rel=1e-9)
    assert measure_sigma_data(list(x.split(3))) == pytest.approx(measure_sigma_data(x), rel=1e-9)
    with pytest.raises(InputError):
        measure_sigma_data(torch.ones(1))


def test_bad_configs():
    with pytest.raises(ConfigError):
        EDMConfig(sigma_data=0)
    with pytest.raises(ConfigError):
        ConsistencyConfig(s0=20, s1=10)


def test_consistency_boundary_condition():
    c_skip, c_out, _, _ = consistency_scalings(torch.tensor([0.002, 80.0]), 0.5, 0.002)
    assert c_skip[0].item() == pytest.approx(1.0) and c_out[0].item() == pytest.approx(0.0, abs=1e-9)
    assert c_skip[1].item() < 1e-4
    model = ConsistencyDenoiser(_LinearNet(), sigma_data=0.5, sigma_min=0.002)
    x = torch.randn(4, 8)
    assert torch.allclose(model(x, 0.002), x)  # f(x, s_min) = x whatever the network


class _LinearNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(8, 8)

    def forward(self, x, c_noise, **cond):
        return self.lin(x) + c_noise.unsqueeze(1)


def test_discretisation_curriculum():
    steps = [discretisation_steps(k, 800, 10, 1280) for k in range(0, 800, 10)]
    assert steps[0] == 11 and steps[-1] == 1281
    assert steps == sorted(steps)
    assert set(steps) == {11, 21, 41, 81, 161, 321, 641, 1281}
    grid = consistency_grid(11)
    assert grid[0].item() == pytest.approx(0.002) and grid[-1].item() == pytest.approx(80.0)
    idx = sample_grid_indices(consistency_grid(1281), 20000, -1.1, 2.0, torch.Generator().manual_seed(0))
    mid = consistency_grid(1281)[idx].log()
    assert mid.median().item() == pytest.approx(-1.1, abs=0.1)


def test_pseudo_huber():
    a = torch.randn(3, 64, 4)
    assert torch.allclose(pseudo_huber(a, a), torch.zeros(3))
    b = a + 10
    assert torch.allclose(pseudo_huber(a, b, c=0.01), (a - b).flatten(1).norm(dim=1) - 0.01, rtol=1e-5)


def _gauss_f(mean: float, var: float, smin: float):
    """Exact consistency function of N(mean, var) data: maps x at sigma to sigma_min along the PF ODE."""

    def f(x, sigma, **cond):
        s = sigma.reshape(-1, *([1] * (x.ndim - 1)))
        return mean + (x - mean) * ((var + smin**2) / (var + s**2)).sqrt()

    return f


def _gauss_teacher(mean: float, var: float):
    def d(x, sigma, **cond):
        s = sigma.reshape(-1, *([1] * (x.ndim - 1)))
        return mean + (x - mean) * var / (var + s**2)

    return d


def test_distillation_with_exact_teacher_gives_near_zero_loss():
    """With the exact EDM teacher and the exact consistency function, one teacher Heun step keeps
    the pair on one ODE trajectory: the distillation loss is ~0, unlike the training (shared-noise) pair."""
    mean, var = 0.3, 0.25
    f = _gauss_f(mean, var, 0.002)
    x0 = mean + var**0.5 * torch.randn(512, 16, generator=torch.Generator().manual_seed(0))
    # late in the curriculum (fine 1281-point grid), where one Heun step is accurate
    ict = consistency_loss(f, x0, 99, ConsistencyConfig(total_steps=100), generator=torch.Generator().manual_seed(1))[0]
    cd = consistency_loss(
        f, x0, 99, ConsistencyConfig(total_steps=100, distill=True), generator=torch.Generator().manual_seed(1),
        teacher=_gauss_teacher(mean, var),
    )[0]
    assert ict.mean().item() > 0.5
    assert cd.mean().item() < 1e-4 * ict.mean().item()
    with pytest.raises(ConfigError):
        consistency_loss(f, x0, 0, ConsistencyConfig(distill=True))


def test_consistency_loss_trains_a_real_net():
    torch.manual_seed(0)
    model = ConsistencyDenoiser(_LinearNet(), sigma_data=0.5)
    loss, s_hi = consistency_loss(model, torch.randn(4, 8) * 0.5, 5, ConsistencyConfig(total_steps=10))
    assert loss.shape == (4,) and s_hi.shape == (4,) and bool(torch.isfinite(loss).all())
    loss.mean().backward()
    assert model.net.lin.weight.grad is not None and model.net.lin.weight.grad.abs().sum() > 0


def test_edm_loss_trains_a_tiny_dit():
    """A few Adam steps on a fixed batch of structured latents lower the EDM loss measured with a
    fixed draw of sigmas and noise (gradients reach the whole net through AdaLN-Zero)."""
    from diffariff.nets import build_net

    torch.manual_seed(0)
    net = build_net("dit", {"width": 64, "depth": 2, "heads": 4, "cond_dim": 64, "clap_dim": 32})
    den = EDMDenoiser(net, sigma_data=0.5)
    t = torch.arange(16, dtype=torch.float32)
    x0 = 0.5 * torch.sin(t * 0.4 + torch.arange(64).reshape(64, 1) * 0.3).unsqueeze(0).repeat(4, 1, 1)

    def fixed_eval() -> float:
        with torch.no_grad():
            return edm_loss(den, x0, generator=torch.Generator().manual_seed(7))[0].mean().item()

    before = fixed_eval()
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(1)
    for _ in range(12):
        loss, _ = edm_loss(den, x0, generator=g)
        opt.zero_grad()
        loss.mean().backward()
        opt.step()
    assert fixed_eval() < 0.85 * before  # measured: 0.81 -> 0.63
