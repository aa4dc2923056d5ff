"""ODE/SDE samplers with one signature:

    sampler(denoise, x, sigmas, callback=None, generator=None, **kw) -> x0

``denoise(x [B, ...], sigma [B]) -> D(x) [B, ...]`` is any denoiser (EDM, guided, edited);
``x`` is the starting point already at noise level ``sigmas[0]`` (e.g. ``randn * sigmas[0]``);
``sigmas`` is a decreasing 1-D tensor ending with 0 (see :func:`edm.karras_sigmas`). Each step
calls ``callback(dict(i=i, x=x, sigma=sigma, denoised=denoised))`` when given.
Tensors may have any rank (latents [B, 64, T], embeddings [B, D]).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from ..errors import ConfigError, InputError

Denoise = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _check(x: torch.Tensor, sigmas: torch.Tensor) -> None:
    if sigmas.ndim != 1 or sigmas.numel() < 2:
        raise InputError(f"sigmas must be a 1-D tensor with >= 2 entries, got shape {list(sigmas.shape)}")
    if bool((sigmas[1:] > sigmas[:-1]).any()):
        raise InputError("sigmas must be non-increasing")
    if x.ndim < 2:
        raise InputError(f"x must be batched [B, ...], got shape {list(x.shape)}")


def _sig(sigma: torch.Tensor | float, x: torch.Tensor) -> torch.Tensor:
    return torch.full((x.shape[0],), float(sigma), dtype=x.dtype, device=x.device)


def _churn(
    x: torch.Tensor, sigma: float, n_steps: int, s_churn: float, s_tmin: float, s_tmax: float, s_noise: float,
    generator: torch.Generator | None,
) -> tuple[torch.Tensor, float]:
    """EDM stochastic churn: raise the noise level from sigma to sigma_hat = sigma (1 + gamma)."""
    gamma = min(s_churn / n_steps, math.sqrt(2) - 1) if s_tmin <= sigma <= s_tmax else 0.0
    if gamma <= 0:
        return x, sigma
    sigma_hat = sigma * (1 + gamma)
    eps = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype) * s_noise
    return x + eps * math.sqrt(sigma_hat**2 - sigma**2), sigma_hat


@torch.no_grad()
def sample_euler(
    denoise: Denoise, x: torch.Tensor, sigmas: torch.Tensor, callback: Callable | None = None,
    generator: torch.Generator | None = None, s_churn: float = 0.0, s_tmin: float = 0.0,
    s_tmax: float = float("inf"), s_noise: float = 1.0,
) -> torch.Tensor:
    """First-order Euler on the probability-flow ODE dx/ds = (x - D(x, s)) / s, with optional
    EDM churn (``s_churn`` > 0 makes it stochastic). Returns x at sigmas[-1] (normally 0)."""
    _check(x, sigmas)
    n = len(sigmas) - 1
    sig = sigmas.tolist()
    for i in range(n):
        x, s_hat = _churn(x, sig[i], n, s_churn, s_tmin, s_tmax, s_noise, generator)
        denoised = denoise(x, _sig(s_hat, x))
        if callback is not None:
            callback(dict(i=i, x=x, sigma=sig[i], sigma_hat=s_hat, denoised=denoised))
        d = (x - denoised) / s_hat
        x = x + d * (sig[i + 1] - s_hat)
    return x


@torch.no_grad()
def sample_heun(
    denoise: Denoise, x: torch.Tensor, sigmas: torch.Tensor, callback: Callable | None = None,
    generator: torch.Generator | None = None, s_churn: float = 0.0, s_tmin: float = 0.0,
    s_tmax: float = float("inf"), s_noise: float = 1.0,
) -> torch.Tensor:
    """EDM second-order Heun sampler (Karras et al. 2022, Alg. 2): an Euler step corrected by the
    slope at the next noise level; the last step to sigma = 0 is plain Euler. Optional churn."""
    _check(x, sigmas)
    n = len(sigmas) - 1
    sig = sigmas.tolist()
    for i in range(n):
        x, s_hat = _churn(x, sig[i], n, s_churn, s_tmin, s_tmax, s_noise, generator)
        denoised = denoise(x, _sig(s_hat, x))
        if callback is not None:
            callback(dict(i=i, x=x, sigma=sig[i], sigma_hat=s_hat, denoised=denoised))
        d = (x - denoised) / s_hat
        dt = sig[i + 1] - s_hat
        x_next = x + d * dt
        if sig[i + 1] > 0:
            d2 = (x_next - denoise(x_next, _sig(sig[i + 1], x))) / sig[i + 1]
            x_next = x + (d + d2) * (dt / 2)
        x = x_next
    return x


@torch.no_grad()
def sample_dpmpp_2m(
    denoise: Denoise, x: torch.Tensor, sigmas: torch.Tensor, callback: Callable | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """DPM-Solver++(2M) (Lu et al. 2022): multistep second order in log-sigma time, one network
    call per step. Deterministic (``generator`` unused, kept for the common signature)."""
    _check(x, sigmas)
    n = len(sigmas) - 1
    sig = sigmas.tolist()
    old_denoised = None
    h_last = None
    for i in range(n):
        denoised = denoise(x, _sig(sig[i], x))
        if callback is not None:
            callback(dict(i=i, x=x, sigma=sig[i], sigma_hat=sig[i], denoised=denoised))
        if sig[i + 1] == 0:
            x = denoised
            break
        t, t_next = -math.log(sig[i]), -math.log(sig[i + 1])
        h = t_next - t
        if old_denoised is None or h_last is None:
            d = denoised
        else:
            r = h_last / h
            d = (1 + 1 / (2 * r)) * denoised - (1 / (2 * r)) * old_denoised
        x = (sig[i + 1] / sig[i]) * x - math.expm1(-h) * d
        old_denoised, h_last = denoised, h
    return x


@torch.no_grad()
def sample_consistency(
    denoise: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    sigmas: torch.Tensor,
    callback: Callable | None = None,
    generator: torch.Generator | None = None,
    sigma_min: float = 0.002,
) -> torch.Tensor:
    """Multistep consistency sampling: x0 = f(x, sigmas[0]); then for each further sigma > 0,
    re-noise x = x0 + sqrt(s^2 - sigma_min^2) z and x0 = f(x, s). ``x`` starts at noise level
    sigmas[0]; a trailing 0 in ``sigmas`` is ignored. Use <= 5 steps (e.g. karras_sigmas(5))."""
    _check(x, sigmas)
    sig = [s for s in sigmas.tolist() if s > 0]
    if not sig:
        raise InputError("consistency sampling needs at least one sigma > 0")
    x0 = x
    for i, s in enumerate(sig):
        if i > 0:
            z = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
            x = x0 + z * math.sqrt(max(s * s - sigma_min * sigma_min, 0.0))
        x0 = denoise(x, _sig(s, x))
        if callback is not None:
            callback(dict(i=i, x=x, sigma=s, sigma_hat=s, denoised=x0))
    return x0


SAMPLERS: dict[str, Callable[..., torch.Tensor]] = {
    "euler": sample_euler,
    "heun": sample_heun,
    "dpmpp_2m": sample_dpmpp_2m,
    "consistency": sample_consistency,
}
DEFAULT_SAMPLER = "heun"


def register_sampler(name: str, fn: Callable[..., torch.Tensor]) -> None:
    """Add a sampler (same signature) to :data:`SAMPLERS`."""
    SAMPLERS[name] = fn


def get_sampler(name: str) -> Callable[..., torch.Tensor]:
    """The sampler registered as ``name`` ("euler", "heun", "dpmpp_2m", "consistency");
    ConfigError listing the choices otherwise."""
    if name not in SAMPLERS:
        raise ConfigError(f"unknown sampler '{name}' (choose from {', '.join(sorted(SAMPLERS))})")
    return SAMPLERS[name]
