"""EDM preconditioning, training noise levels, loss weighting and the Karras sampling schedule
(Karras et al. 2022, "Elucidating the Design Space of Diffusion-Based Generative Models").

Pure tensor code: every function works on tensors of any rank ``[B, ...]`` — latents ``[B, 64, T]``
(T latent frames) as well as CLAP embeddings ``[B, D]`` for the text-to-audio bridge MLP. Noise
levels ``sigma`` are in the data's own units (standard deviations of added Gaussian noise).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch import nn

from ..errors import ConfigError, InputError


@dataclass
class EDMConfig:
    """EDM constants. ``sigma_data`` is the data's standard deviation (measure it with
    :func:`measure_sigma_data`); ``p_mean``/``p_std`` define the log-normal training sigmas."""

    sigma_data: float = 0.5
    p_mean: float = -1.2
    p_std: float = 1.2
    sigma_min: float = 0.002
    sigma_max: float = 80.0
    rho: float = 7.0

    def __post_init__(self) -> None:
        if not self.sigma_data > 0:
            raise ConfigError(f"sigma_data must be > 0, got {self.sigma_data}")
        if not self.p_std > 0:
            raise ConfigError(f"p_std must be > 0, got {self.p_std}")
        if not 0 < self.sigma_min < self.sigma_max:
            raise ConfigError(f"need 0 < sigma_min < sigma_max, got {self.sigma_min}, {self.sigma_max}")


def append_dims(t: torch.Tensor, ndim: int) -> torch.Tensor:
    """View ``t`` of shape [B] (or scalar) as [B, 1, ..., 1] with ``ndim`` dimensions in total."""
    if t.ndim == 0:
        return t.reshape([1] * ndim)
    return t.reshape(t.shape[0], *([1] * (ndim - t.ndim)))


def batch_sigma(sigma: torch.Tensor | float, x: torch.Tensor) -> torch.Tensor:
    """``sigma`` as a float tensor of shape [B] matching ``x``'s batch (scalars are broadcast)."""
    s = torch.as_tensor(sigma, dtype=x.dtype, device=x.device)
    if s.ndim == 0:
        return s.expand(x.shape[0])
    if s.shape != (x.shape[0],):
        raise InputError(f"sigma must be a scalar or have shape [{x.shape[0]}], got {list(s.shape)}")
    return s


def edm_scalings(sigma: torch.Tensor, sigma_data: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """EDM preconditioning factors for noise levels ``sigma`` [B]: (c_skip, c_out, c_in, c_noise),
    each [B]. c_skip = sd^2/(s^2+sd^2), c_out = s sd/sqrt(s^2+sd^2), c_in = 1/sqrt(s^2+sd^2),
    c_noise = ln(s)/4."""
    sd2 = sigma_data**2
    total = sigma**2 + sd2
    c_skip = sd2 / total
    c_out = sigma * sigma_data / total.sqrt()
    c_in = 1.0 / total.sqrt()
    c_noise = sigma.log() / 4.0
    return c_skip, c_out, c_in, c_noise


def edm_loss_weight(sigma: torch.Tensor, sigma_data: float) -> torch.Tensor:
    """EDM loss weight lambda(s) = (s^2 + sd^2) / (s sd)^2, shape like ``sigma``."""
    return (sigma**2 + sigma_data**2) / (sigma * sigma_data) ** 2


def sample_training_sigmas(
    n: int, p_mean: float = -1.2, p_std: float = 1.2, generator: torch.Generator | None = None,
    device: str | torch.device = "cpu",
) -> torch.Tensor:
    """``n`` log-normal training noise levels: ln(s) ~ N(p_mean, p_std^2). Returns [n]."""
    z = torch.randn(n, generator=generator, device=device)
    return (p_mean + p_std * z).exp()


class EDMDenoiser(nn.Module):
    """Wraps a raw network F into the EDM denoiser
    D(x, s, **cond) = c_skip(s) x + c_out(s) F(c_in(s) x, c_noise(s), **cond).

    ``net(x_in, c_noise [B], **cond)`` must return a tensor shaped like ``x`` ([B, ...], any rank).
    ``forward(x [B, ...], sigma [B] or scalar, **cond) -> D(x) [B, ...]``.
    """

    def __init__(self, net: nn.Module, sigma_data: float = 0.5, p_mean: float = -1.2, p_std: float = 1.2):
        super().__init__()
        if not sigma_data > 0:
            raise ConfigError(f"sigma_data must be > 0, got {sigma_data}")
        self.net = net
        self.sigma_data = float(sigma_data)
        self.p_mean = float(p_mean)
        self.p_std = float(p_std)

    @classmethod
    def from_config(cls, net: nn.Module, config: EDMConfig) -> EDMDenoiser:
        return cls(net, sigma_data=config.sigma_data, p_mean=config.p_mean, p_std=config.p_std)

    def forward(self, x: torch.Tensor, sigma: torch.Tensor | float, **cond) -> torch.Tensor:
        s = batch_sigma(sigma, x)
        c_skip, c_out, c_in, c_noise = edm_scalings(s, self.sigma_data)
        f = self.net(x * append_dims(c_in, x.ndim), c_noise, **cond)
        return append_dims(c_skip, x.ndim) * x + append_dims(c_out, x.ndim) * f


def edm_training_estimate(
    denoiser: EDMDenoiser, x0: torch.Tensor, cond: dict | None = None, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """One EDM training draw for clean data ``x0`` [B, ...]: log-normal sigmas [B] and noise; returns
    (the denoiser's clean estimate [B, ...] of the noised ``x0``, the sigmas [B]). ``cond`` is passed to
    the denoiser as keyword arguments (e.g. context, clap, drop_context, drop_clap)."""
    b = x0.shape[0]
    sigma = sample_training_sigmas(b, denoiser.p_mean, denoiser.p_std, generator, x0.device).to(x0.dtype)
    noise = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
    return denoiser(x0 + noise * append_dims(sigma, x0.ndim), sigma, **(cond or {})), sigma


def edm_weighted_mse(denoised: torch.Tensor, x0: torch.Tensor, sigma: torch.Tensor, sigma_data: float) -> torch.Tensor:
    """Per-sample EDM loss [B]: lambda(sigma) * mean squared error of ``denoised`` against ``x0`` [B, ...]."""
    mse = (denoised - x0).pow(2).reshape(x0.shape[0], -1).mean(dim=1)
    return edm_loss_weight(sigma, sigma_data) * mse


def edm_loss(
    denoiser: EDMDenoiser, x0: torch.Tensor, cond: dict | None = None, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """EDM training loss for clean data ``x0`` [B, ...]: draws log-normal sigmas [B] and noise,
    returns (per-sample weighted MSE [B], sigmas [B]). ``cond`` as in :func:`edm_training_estimate`."""
    denoised, sigma = edm_training_estimate(denoiser, x0, cond, generator)
    return edm_weighted_mse(denoised, x0, sigma, denoiser.sigma_data), sigma


def karras_sigmas(
    n: int, sigma_min: float = 0.002, sigma_max: float = 80.0, rho: float = 7.0, device: str | torch.device = "cpu"
) -> torch.Tensor:
    """Karras schedule of ``n`` decreasing noise levels from sigma_max to sigma_min, with a final
    0 appended: shape [n + 1]. s_i = (smax^(1/rho) + i/(n-1) (smin^(1/rho) - smax^(1/rho)))^rho."""
    if n < 1:
        raise InputError(f"number of sampling steps must be >= 1, got {n}")
    if not 0 < sigma_min <= sigma_max:
        raise InputError(f"need 0 < sigma_min <= sigma_max, got {sigma_min}, {sigma_max}")
    ramp = torch.linspace(0, 1, n, dtype=torch.float64) if n > 1 else torch.zeros(1, dtype=torch.float64)
    lo, hi = sigma_min ** (1 / rho), sigma_max ** (1 / rho)
    sig = (hi + ramp * (lo - hi)) ** rho
    return torch.cat([sig, sig.new_zeros(1)]).to(torch.float32).to(device)


def sigma_at_fraction(fraction: float, sigma_min: float = 0.002, sigma_max: float = 80.0, rho: float = 7.0) -> float:
    """The Karras-schedule noise level at position ``fraction`` in [0, 1] (0 -> sigma_min,
    1 -> sigma_max), i.e. (smin^(1/rho) + f (smax^(1/rho) - smin^(1/rho)))^rho."""
    if not 0.0 <= fraction <= 1.0:
        raise InputError(f"fraction must be in [0, 1], got {fraction}")
    lo, hi = sigma_min ** (1 / rho), sigma_max ** (1 / rho)
    return float((lo + fraction * (hi - lo)) ** rho)


def measure_sigma_data(data: torch.Tensor | Iterable[torch.Tensor]) -> float:
    """Standard deviation of all elements of ``data`` (one tensor or an iterable of batches),
    computed in float64 with a streaming sum. Use it to set ``sigma_data`` (e.g. on scaled latents)."""
    tensors = [data] if isinstance(data, torch.Tensor) else data
    n, s1, s2 = 0, 0.0, 0.0
    for t in tensors:
        t = t.detach().double()
        n += t.numel()
        s1 += float(t.sum())
        s2 += float((t * t).sum())
    if n < 2:
        raise InputError("measure_sigma_data needs at least 2 values")
    mean = s1 / n
    var = max(s2 / n - mean * mean, 0.0)
    if not math.isfinite(var):
        raise InputError("measure_sigma_data: data contains non-finite values")
    return math.sqrt(var)
