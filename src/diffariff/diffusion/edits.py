"""Sampling-time editing hooks. Each is a wrapper around a denoiser ``(x [B, ...], sigma [B]) ->
D(x)`` (so it composes with any sampler, guidance and the other hooks) or a helper that prepares
the start point / schedule. Latents are [B, C, T] (C = 64 channels, T latent frames).

- :class:`Inpaint`: keep a masked region of a known latent.
- :class:`LoopTie` + :func:`loop_noise`: tie the latent to n repetitions of its first 1/n.
- :func:`variation_start`: start from a known latent re-noised to strength s_var.
- :func:`slerp` / :func:`lerp`: CLAP-embedding interpolation.
- :class:`StyleGround`: pull the denoised estimate's per-channel statistics toward a reference.
- :func:`plan_windows` / :func:`generate_windowed`: long generation by inpainted overlapping windows.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from ..errors import InputError
from .edm import append_dims, batch_sigma, karras_sigmas, sigma_at_fraction

Denoise = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class Inpaint:
    """Keep ``known`` [B, C, T] where ``mask`` (broadcastable to it, 1/True = keep) and generate
    the rest. At every call the kept region of the input is replaced by ``known + sigma * eps`` (one
    fixed noise draw ``eps``, so the replaced region follows one consistent noising trajectory) and
    the kept region of the output is ``known`` exactly. Any sampler whose last step returns the
    denoised estimate (all of ours) then ends with the kept region equal to ``known`` up to float
    rounding; :meth:`finalize` pastes it exactly."""

    def __init__(self, denoise: Denoise, known: torch.Tensor, mask: torch.Tensor, generator: torch.Generator | None = None):
        if known.ndim < 2:
            raise InputError(f"known latent must be batched [B, ...], got {list(known.shape)}")
        try:
            self.mask = torch.broadcast_to(mask.to(known.dtype), known.shape)
        except RuntimeError:
            raise InputError(f"mask shape {list(mask.shape)} does not broadcast to {list(known.shape)}") from None
        self.denoise = denoise
        self.known = known
        self.eps = torch.randn(known.shape, generator=generator, device=known.device, dtype=known.dtype)

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        s = append_dims(batch_sigma(sigma, x), x.ndim)
        x = self.mask * (self.known + s * self.eps) + (1 - self.mask) * x
        return self.finalize(self.denoise(x, sigma))

    def finalize(self, x0: torch.Tensor) -> torch.Tensor:
        """``x0`` with the kept region set to ``known`` exactly."""
        return torch.where(self.mask.bool(), self.known, x0)


def _tile(x: torch.Tensor, n: int) -> torch.Tensor:
    t = x.shape[-1]
    period = math.ceil(t / n)
    return x[..., :period].repeat(*([1] * (x.ndim - 1)), n)[..., :t]


def loop_noise(x: torch.Tensor, n: int) -> torch.Tensor:
    """Start noise [B, C, T] made periodic: its first ceil(T/n) frames repeated n times, cropped to T."""
    if n < 1:
        raise InputError(f"loop repetitions must be >= 1, got {n}")
    return _tile(x, n)


class LoopTie:
    """Loop sampling. While sigma > ``sigma_free`` the network sees the input tied to n repetitions
    of its first ceil(T/n) frames and returns an estimate tied the same way, so the sampler state
    (started from :func:`loop_noise`) stays exactly periodic; below ``sigma_free`` the denoiser runs
    freely so the repetitions can diverge. Build with :meth:`for_schedule` from ``s_loop``."""

    def __init__(self, denoise: Denoise, n: int, sigma_free: float = 0.0):
        if int(n) != n or n < 1:
            raise InputError(f"loop repetitions n must be an integer >= 1 (2 or 4 usual), got {n}")
        self.denoise = denoise
        self.n = int(n)
        self.sigma_free = float(sigma_free)

    @classmethod
    def for_schedule(cls, denoise: Denoise, n: int, s_loop: float, sigmas: torch.Tensor) -> LoopTie:
        """Tie for the first fraction ``s_loop`` in [0, 1] of the steps of ``sigmas`` ([steps + 1])."""
        if not 0.0 <= s_loop <= 1.0:
            raise InputError(f"s_loop must be in [0, 1], got {s_loop}")
        steps = len(sigmas) - 1
        k = round(s_loop * steps)
        sigma_free = float(sigmas[k]) if k < steps else 0.0
        if k == 0:
            sigma_free = float("inf")
        return cls(denoise, n, sigma_free)

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        if float(batch_sigma(sigma, x).max()) > self.sigma_free:
            return _tile(self.denoise(_tile(x, self.n), sigma), self.n)
        return self.denoise(x, sigma)


def variation_sigma(strength: float, sigma_min: float = 0.002, sigma_max: float = 80.0, rho: float = 7.0) -> float:
    """Noise level for variation strength ``strength`` in (0, 1]: the Karras-schedule position
    (sigma_min^(1/rho) + s (sigma_max^(1/rho) - sigma_min^(1/rho)))^rho, so s = 1 is pure noise
    (sigma_max), s -> 0 approaches sigma_min (no change), and equal steps in s cost equal steps of
    a Karras schedule (s = 0.2 / 0.5 / 0.8 give sigma ~ 0.034 / 2.0 / 23)."""
    if not 0.0 < strength <= 1.0:
        raise InputError(f"variation strength must be in (0, 1], got {strength}")
    return sigma_at_fraction(strength, sigma_min, sigma_max, rho)


def variation_start(
    known: torch.Tensor, strength: float, steps: int, generator: torch.Generator | None = None,
    sigma_min: float = 0.002, sigma_max: float = 80.0, rho: float = 7.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Start point and schedule for a variation of ``known`` [B, ...]: returns
    (known + sigma_s * noise, sigmas [k + 1]) with sigma_s = :func:`variation_sigma` and the same
    step density as a full ``steps``-step schedule (k = max(1, round(steps * strength)))."""
    s_start = variation_sigma(strength, sigma_min, sigma_max, rho)
    k = max(1, round(steps * strength))
    sigmas = karras_sigmas(k, min(sigma_min, s_start), s_start, rho, device=known.device)
    noise = torch.randn(known.shape, generator=generator, device=known.device, dtype=known.dtype)
    return known + s_start * noise, sigmas


def _check_pair(a: torch.Tensor, b: torch.Tensor, ratio: float) -> None:
    if a.shape != b.shape:
        raise InputError(f"cannot interpolate embeddings of shapes {list(a.shape)} and {list(b.shape)}")
    if not 0.0 <= ratio <= 1.0:
        raise InputError(f"interpolation ratio must be in [0, 1], got {ratio}")


def lerp(a: torch.Tensor, b: torch.Tensor, ratio: float, normalize: bool = True) -> torch.Tensor:
    """(1 - ratio) a + ratio b over the last dim ([D] or [B, D]), re-L2-normalised by default."""
    _check_pair(a, b, ratio)
    out = (1 - ratio) * a + ratio * b
    return torch.nn.functional.normalize(out, dim=-1) if normalize else out


def slerp(a: torch.Tensor, b: torch.Tensor, ratio: float, eps: float = 1e-7) -> torch.Tensor:
    """Spherical interpolation of L2-normalised embeddings [..., D] (falls back to normalised lerp
    for (anti)parallel pairs). ratio 0 -> a / |a|, 1 -> b / |b|."""
    _check_pair(a, b, ratio)
    an = torch.nn.functional.normalize(a, dim=-1)
    bn = torch.nn.functional.normalize(b, dim=-1)
    cos = (an * bn).sum(-1, keepdim=True).clamp(-1 + eps, 1 - eps)
    omega = cos.acos()
    so = omega.sin()
    out = (torch.sin((1 - ratio) * omega) * an + torch.sin(ratio * omega) * bn) / so
    flat = so.abs() < 1e-4
    return torch.where(flat, lerp(an, bn, ratio), out)


class StyleGround:
    """Style grounding: after each denoiser call, move the denoised estimate's per-channel mean and
    std over time toward those of ``reference`` [B or 1, C, Tr] (any length):

        D' = D + strength * w(sigma) * (AdaIN(D -> ref) - D),  AdaIN(D) = (D - mu_D) / sd_D * sd_ref + mu_ref

    with w(sigma) = 1 for sigma >= ``sigma_stop`` and 0 below (the last low-noise steps then refine
    details freely). In CAE latents the per-channel statistics over time carry timbre / level
    rather than the note content (cf. AdaIN style transfer), which is what the user's reference
    stem should impose; the per-frame pattern (rhythm, pitch) stays the model's.
    """

    def __init__(self, denoise: Denoise, reference: torch.Tensor, strength: float = 0.5,
                 sigma_stop: float = 0.0, eps: float = 1e-5):
        if reference.ndim != 3 or reference.shape[-1] < 2:
            raise InputError(f"style reference must be [B, C, T>=2], got {list(reference.shape)}")
        if not 0.0 <= strength <= 1.0:
            raise InputError(f"style grounding strength must be in [0, 1], got {strength}")
        self.denoise = denoise
        self.mu_ref = reference.mean(dim=-1, keepdim=True)
        self.sd_ref = reference.std(dim=-1, keepdim=True)
        self.strength = float(strength)
        self.sigma_stop = float(sigma_stop)
        self.eps = eps

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        d = self.denoise(x, sigma)
        if self.strength == 0 or d.shape[-1] < 2:
            return d
        w = (batch_sigma(sigma, x) >= self.sigma_stop).to(d.dtype).reshape(-1, 1, 1) * self.strength
        mu = d.mean(dim=-1, keepdim=True)
        sd = d.std(dim=-1, keepdim=True)
        matched = (d - mu) / (sd + self.eps) * self.sd_ref + self.mu_ref
        return d + w * (matched - d)


def plan_windows(total: int, window: int, overlap: int) -> list[tuple[int, int]]:
    """Frame ranges [(start, end)] covering ``total`` frames with windows of ``window`` frames, each
    overlapping the previous by at least ``overlap`` (the last one is shifted to end at ``total``)."""
    if total < 1 or window < 1:
        raise InputError(f"need total >= 1 and window >= 1 frames, got {total}, {window}")
    if not 0 <= overlap < window:
        raise InputError(f"overlap must be in [0, window), got {overlap} for window {window}")
    if total <= window:
        return [(0, total)]
    out, start = [], 0
    while True:
        end = start + window
        if end >= total:
            out.append((total - window, total))
            return out
        out.append((start, end))
        start = end - overlap


def generate_windowed(
    sample_window: Callable[[int, int, int, torch.Tensor, torch.Tensor], torch.Tensor],
    plan: list[tuple[int, int]], batch: int = 1, channels: int = 64,
    device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Long generation over the windows of ``plan`` (from :func:`plan_windows`; ``[(0, total)]`` for one
    pass): for window ``i`` call ``sample_window(i, start, end, known [B, C, L], mask [L] bool) -> latent
    [B, C, L]`` where ``known`` holds the frames already generated (mask True) - the overlap with earlier
    windows - and the caller inpaints the rest (e.g. with :class:`Inpaint`). Returns ``[B, C, total]``;
    overlapping frames keep the earlier window's values, so window boundaries continue seamlessly."""
    total = plan[-1][1]
    out = torch.zeros(batch, channels, total, device=device, dtype=dtype)
    done = 0
    for i, (start, end) in enumerate(plan):
        length = end - start
        keep = max(0, min(done, end) - start)
        mask = torch.zeros(length, dtype=torch.bool, device=device)
        mask[:keep] = True
        z = sample_window(i, start, end, out[..., start:end].clone(), mask)
        if z.shape != (batch, channels, length):
            raise InputError(f"sample_window returned {list(z.shape)}, expected {[batch, channels, length]}")
        out[..., start + keep:end] = z[..., keep:].to(out.dtype)
        done = end
    return out
