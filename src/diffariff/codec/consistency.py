"""EDM / consistency-model arithmetic of the codec's decoder (scalars and ``[B]`` tensors of noise
levels sigma, in units of the residual spectrogram). Pure functions, no modules.

Preconditioning with the consistency boundary condition at ``sigma_min`` (D(x, sigma_min) = x):
``c_skip = sd^2 / ((s - s_min)^2 + sd^2)``, ``c_out = sd (s - s_min) / sqrt(sd^2 + s^2)``,
``c_in = 1 / sqrt(s^2 + sd^2)``, ``c_noise = log(s) / 4``.
"""

from __future__ import annotations

import math

import torch


def precondition(sigma: torch.Tensor, sigma_data: float, sigma_min: float):
    """``sigma [B]`` -> (c_skip, c_out, c_in, c_noise), each ``[B]``."""
    sd2 = sigma_data**2
    c_skip = sd2 / ((sigma - sigma_min) ** 2 + sd2)
    c_out = sigma_data * (sigma - sigma_min) / torch.sqrt(sd2 + sigma**2)
    c_in = 1.0 / torch.sqrt(sigma**2 + sd2)
    return c_skip, c_out, c_in, torch.log(sigma) / 4.0


def karras_sigmas(n: int, sigma_min: float, sigma_max: float, rho: float) -> torch.Tensor:
    """``n`` >= 2 noise levels, ascending from sigma_min to sigma_max (Karras et al. 2022), float64."""
    ramp = torch.linspace(0.0, 1.0, n, dtype=torch.float64)
    lo, hi = sigma_min ** (1 / rho), sigma_max ** (1 / rho)
    return (lo + ramp * (hi - lo)) ** rho


def sampling_sigmas(steps: int, sigma_min: float, sigma_max: float, rho: float) -> list[float]:
    """Descending noise levels for multistep consistency sampling: ``steps`` values starting at
    sigma_max (the Karras grid of ``steps + 1`` points without sigma_min)."""
    if steps < 1:
        raise ValueError("steps must be >= 1")
    return [float(s) for s in karras_sigmas(steps + 1, sigma_min, sigma_max, rho).flip(0)[:-1]]


def discretisation_steps(step: int, total_steps: int, s0: int = 10, s1: int = 1280) -> int:
    """Improved-CT curriculum: number of discretisation intervals N(k) doubling from ``s0`` to ``s1``
    over training (exponentially shrinking step size), ``step`` of ``total_steps``."""
    k_prime = max(1, math.floor(total_steps / (math.log2(s1 / s0) + 1)))
    return int(min(s0 * 2 ** (step // k_prime), s1))


def sample_intervals(
    n_intervals: int, batch: int, generator: torch.Generator, sigma_min: float, sigma_max: float, rho: float,
    p_mean: float = -1.1, p_std: float = 2.0, high_fraction: float = 0.2,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pick ``batch`` adjacent pairs (sigma_i, sigma_{i+1}) from a Karras grid of ``n_intervals + 1``.

    Indices follow the discretised log-normal (P_mean, P_std) of improved CT; a fraction
    ``high_fraction`` is drawn uniformly from the upper half of the grid instead so that the high
    noise levels (the ones 1-step decoding uses) are not starved. Returns float32 ``[B]`` tensors.
    """
    sig = karras_sigmas(n_intervals + 1, sigma_min, sigma_max, rho)
    logs = torch.log(sig)
    cdf = torch.special.ndtr((logs - p_mean) / p_std)
    probs = (cdf[1:] - cdf[:-1]).clamp_min(1e-12)
    idx = torch.multinomial(probs.float(), batch, replacement=True, generator=generator)
    upper = torch.randint(n_intervals // 2, n_intervals, (batch,), generator=generator)
    use_upper = torch.rand(batch, generator=generator) < high_fraction
    idx = torch.where(use_upper, upper, idx)
    return sig[idx].float(), sig[idx + 1].float()


def interval_weight(sigma_lo: torch.Tensor, sigma_hi: torch.Tensor) -> torch.Tensor:
    """Loss weight ``1 / (s_{i+1} - s_i)``, multiplied by ``s_{i+1}`` so it does not vanish at high noise
    (the plain weight falls like 1/sigma^(1+1/rho) and starves 1-step decoding); ``[B]``."""
    return sigma_hi / (sigma_hi - sigma_lo)


def pseudo_huber(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-example pseudo-Huber distance in float32, ``c = 0.00054 sqrt(dim)``: ``[B, ...] -> [B]``."""
    a, b = a.float(), b.float()
    dim = a[0].numel()
    c = 0.00054 * math.sqrt(dim)
    d2 = (a - b).square().flatten(1).sum(1)
    return torch.sqrt(d2 + c * c) - c
