"""Consistency models for the latent model (Improved Diff-A-Riff's few-step sampler).

Training follows Song & Dhariwal 2023 ("Improved techniques for training consistency models",
iCT): continuous noise levels on a Karras grid whose size N(k) doubles over training (from s0 to
s1), log-normal choice of the grid interval, pseudo-Huber distance, weight 1/(s_{i+1} - s_i), and
the target is the same model at the lower noise level with the gradient stopped (no EMA teacher).
Optionally the pair is built by consistency DISTILLATION: one Heun step of a frozen EDM teacher
from s_{i+1} down to s_i replaces the shared-noise construction.

Parameterisation: f(x, s) = c_skip(s) x + c_out(s) F(c_in(s) x, c_noise(s)) with
c_skip = sd^2 / ((s - s_min)^2 + sd^2), c_out = sd (s - s_min) / sqrt(sd^2 + s^2), so f(x, s_min) = x.
Tensors of any rank [B, ...] (latents [B, 64, T]). The few-step sampler itself is
:func:`diffariff.diffusion.samplers.sample_consistency`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from ..errors import ConfigError, InputError
from .edm import append_dims, batch_sigma


@dataclass
class ConsistencyConfig:
    """Consistency constants and the iCT curriculum (``total_steps`` = training iterations)."""

    sigma_data: float = 0.5
    sigma_min: float = 0.002
    sigma_max: float = 80.0
    rho: float = 7.0
    p_mean: float = -1.1
    p_std: float = 2.0
    s0: int = 10
    s1: int = 1280
    total_steps: int = 400_000
    huber_c: float | None = None  # None: 0.00054 * sqrt(elements per sample)
    distill: bool = False

    def __post_init__(self) -> None:
        if not 0 < self.sigma_min < self.sigma_max:
            raise ConfigError(f"need 0 < sigma_min < sigma_max, got {self.sigma_min}, {self.sigma_max}")
        if not (1 <= self.s0 <= self.s1):
            raise ConfigError(f"need 1 <= s0 <= s1, got {self.s0}, {self.s1}")
        if self.sigma_data <= 0 or self.p_std <= 0 or self.total_steps < 1:
            raise ConfigError("sigma_data, p_std must be > 0 and total_steps >= 1")


def consistency_scalings(
    sigma: torch.Tensor, sigma_data: float, sigma_min: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(c_skip, c_out, c_in, c_noise) [B] of the consistency parameterisation (module doc)."""
    sd2 = sigma_data**2
    c_skip = sd2 / ((sigma - sigma_min) ** 2 + sd2)
    c_out = sigma_data * (sigma - sigma_min) / (sd2 + sigma**2).sqrt()
    c_in = 1.0 / (sd2 + sigma**2).sqrt()
    return c_skip, c_out, c_in, sigma.log() / 4.0


class ConsistencyDenoiser(nn.Module):
    """f(x [B, ...], sigma [B] or scalar, **cond) -> x at sigma_min (an x0 estimate), [B, ...]."""

    def __init__(self, net: nn.Module, sigma_data: float = 0.5, sigma_min: float = 0.002):
        super().__init__()
        self.net = net
        self.sigma_data = float(sigma_data)
        self.sigma_min = float(sigma_min)

    def forward(self, x: torch.Tensor, sigma: torch.Tensor | float, **cond) -> torch.Tensor:
        s = batch_sigma(sigma, x)
        c_skip, c_out, c_in, c_noise = consistency_scalings(s, self.sigma_data, self.sigma_min)
        f = self.net(x * append_dims(c_in, x.ndim), c_noise, **cond)
        return append_dims(c_skip, x.ndim) * x + append_dims(c_out, x.ndim) * f


def discretisation_steps(step: int, total_steps: int, s0: int = 10, s1: int = 1280) -> int:
    """iCT exponential curriculum: number of grid points N(k) = min(s0 * 2^floor(k / K'), s1) + 1 with
    K' = floor(K / (log2(s1 / s0) + 1)), at training iteration ``step`` of ``total_steps`` (K)."""
    k_prime = max(1, math.floor(total_steps / (math.log2(s1 / s0) + 1)))
    return min(s0 * 2 ** (step // k_prime), s1) + 1


def consistency_grid(n: int, sigma_min: float = 0.002, sigma_max: float = 80.0, rho: float = 7.0) -> torch.Tensor:
    """``n`` increasing Karras noise levels from sigma_min to sigma_max: [n] (float64)."""
    if n < 2:
        raise InputError(f"consistency grid needs >= 2 points, got {n}")
    i = torch.arange(n, dtype=torch.float64) / (n - 1)
    lo, hi = sigma_min ** (1 / rho), sigma_max ** (1 / rho)
    return (lo + i * (hi - lo)) ** rho


def sample_grid_indices(
    grid: torch.Tensor, batch: int, p_mean: float, p_std: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Indices i in [0, n-2] of intervals (s_i, s_{i+1}), drawn with probability proportional to the
    log-normal mass of the interval: erf((ln s_{i+1} - P_mean)/(sqrt2 P_std)) - erf((ln s_i - ...)). [batch]."""
    z = (grid.log() - p_mean) / (math.sqrt(2) * p_std)
    probs = (torch.erf(z[1:]) - torch.erf(z[:-1])).clamp_min(0).float()
    if float(probs.sum()) <= 0:
        probs = torch.ones_like(probs)
    return torch.multinomial(probs, batch, replacement=True, generator=generator)


def pseudo_huber(a: torch.Tensor, b: torch.Tensor, c: float | None = None) -> torch.Tensor:
    """Per-sample pseudo-Huber distance sqrt(||a - b||^2 + c^2) - c, [B] (computed in float32);
    ``c`` defaults to 0.00054 * sqrt(elements per sample)."""
    diff = (a.float() - b.float()).reshape(a.shape[0], -1)
    if c is None:
        c = 0.00054 * math.sqrt(diff.shape[1])
    return (diff.pow(2).sum(dim=1) + c * c).sqrt() - c


@torch.no_grad()
def _teacher_heun(teacher: Callable, x: torch.Tensor, s_hi: torch.Tensor, s_lo: torch.Tensor, cond: dict) -> torch.Tensor:
    """One Heun step of the EDM teacher from noise level ``s_hi`` [B] to ``s_lo`` [B] (both > 0)."""
    d = (x - teacher(x, s_hi, **cond)) / append_dims(s_hi, x.ndim)
    dt = append_dims(s_lo - s_hi, x.ndim)
    x_e = x + d * dt
    d2 = (x_e - teacher(x_e, s_lo, **cond)) / append_dims(s_lo, x.ndim)
    return x + (d + d2) * dt / 2


def consistency_loss(
    model: ConsistencyDenoiser,
    x0: torch.Tensor,
    step: int,
    config: ConsistencyConfig,
    cond: dict | None = None,
    generator: torch.Generator | None = None,
    teacher: Callable | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Consistency training (or distillation when ``config.distill``; needs ``teacher``, an EDM
    denoiser) loss on clean data ``x0`` [B, ...] at training iteration ``step``.
    Returns (per-sample weighted pseudo-Huber loss [B], the higher noise levels s_{i+1} [B])."""
    cond = cond or {}
    if config.distill and teacher is None:
        raise ConfigError("consistency distillation needs an EDM teacher denoiser")
    n = discretisation_steps(step, config.total_steps, config.s0, config.s1)
    grid = consistency_grid(n, config.sigma_min, config.sigma_max, config.rho)
    idx = sample_grid_indices(grid, x0.shape[0], config.p_mean, config.p_std, generator)
    s_lo = grid[idx].to(x0.dtype).to(x0.device)
    s_hi = grid[idx + 1].to(x0.dtype).to(x0.device)
    noise = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
    x_hi = x0 + append_dims(s_hi, x0.ndim) * noise
    if config.distill:
        x_lo = _teacher_heun(teacher, x_hi, s_hi, s_lo, cond)
    else:
        x_lo = x0 + append_dims(s_lo, x0.ndim) * noise
    with torch.no_grad():
        target = model(x_lo, s_lo, **cond)
    pred = model(x_hi, s_hi, **cond)
    weight = 1.0 / (s_hi - s_lo)
    return weight.float() * pseudo_huber(pred, target, config.huber_c), s_hi
