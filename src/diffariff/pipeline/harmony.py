"""Harmony guidance: steer each sampling step's estimate toward the context's pitch content.

The latent model follows the context's rhythm but hardly its harmony, and the key lock
(:mod:`.key_lock`) can only move a whole stem by a whole number of semitones. With the synth codec the
pitch content of any latent sequence is a differentiable function of it: the oscillator bank's power
folded onto 12 pitch classes per latent frame (:meth:`~diffariff.codec.synth_codec.SynthCodec.pitch_class_energy`).
So at every sampling step, the denoiser's estimate of the clean latents is nudged up the gradient of its
harmonic fit to the context (a form of the guidance used for universal / reconstruction-guided diffusion,
with the codec as the differentiable critic and no retraining):

    fit(z) = sum_t w_t * pearson(P_t(z), C_t)

with ``P_t`` the stem's pitch-class powers and ``C_t`` the context's chroma (the same 12-bin chroma the
latent model sees, :mod:`diffariff.data.context_chroma`), both averaged over :data:`SMOOTH_FRAMES` latent
frames (about half a second: the chord, not the single note), ``w_t`` the share of the stem's power in
frame ``t`` (silent frames do not count) and frames where the context is silent left out. Each step
moves the estimate ``iterations`` times by ``strength`` (root-mean-square, in the model's normalised
latent units) along the normalised gradient. The samplers then carry the nudged estimate into their
next step, so notes move toward chord tones while the model keeps shaping the sound. A stem that
holds no pitched power (drums) gets a zero gradient and stays as it is.

``P`` comes from the bundle's pitch critic when it has one (:mod:`diffariff.codec.pitch_critic`: the
same powers predicted by a few 1-D convolutions, ~1 ms per window), else from the codec's decoder
itself (~0.25 s per window and refinement on two CPU cores).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

#: Latent frames (23.4 Hz) over which stem and context pitch content are averaged before comparing.
SMOOTH_FRAMES = 11
#: Gradient steps per refined estimate.
ITERATIONS = 2
#: Strength used when a request leaves it open and the codec has an oscillator bank.
DEFAULT_STRENGTH = 0.2
#: The noise levels acted at are those of a consistency sampler of this many steps (Karras schedule).
LEVEL_STEPS = 5

Denoise = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def frame_average(x: torch.Tensor, frames: int) -> torch.Tensor:
    """Moving average over the last axis of ``[B, 12, T]`` (same length; edges average what exists)."""
    if frames <= 1 or x.shape[-1] < 2:
        return x
    k = min(int(frames) | 1, 2 * (x.shape[-1] // 2) + 1)  # odd, at most ~T
    ones = torch.ones(1, 1, x.shape[-1], dtype=x.dtype, device=x.device)
    kernel = torch.ones(1, 1, k, dtype=x.dtype, device=x.device)
    total = F.conv1d(x.reshape(-1, 1, x.shape[-1]), kernel, padding=k // 2)
    count = F.conv1d(ones, kernel, padding=k // 2)
    return (total / count).reshape(x.shape)


def harmonic_fit(energy: torch.Tensor, chroma: torch.Tensor, smooth: int = SMOOTH_FRAMES) -> torch.Tensor:
    """Per-item harmonic fit ``[B]`` in [-1, 1] of a stem's pitch-class powers ``energy`` ``[B, 12, T]`` to
    the context's chroma ``chroma`` ``[B or 1, 12, T]`` (module doc; differentiable in ``energy``). 0 for
    a stem with no pitched power or a context with no sounding frame."""
    p = frame_average(energy.float(), smooth)
    c = frame_average(chroma.float().to(energy.device), smooth).expand_as(p)
    pc, cc = p - p.mean(dim=1, keepdim=True), c - c.mean(dim=1, keepdim=True)
    corr = (pc * cc).sum(1) / ((pc * pc).sum(1) * (cc * cc).sum(1)).clamp_min(1e-20).sqrt()  # [B, T]
    sounding = (c.amax(dim=1) > 0).float()
    weight = p.sum(dim=1) * sounding
    return (weight * corr).sum(-1) / weight.sum(-1).clamp_min(1e-20)


class HarmonyGuide:
    """Wraps a denoiser ``(x, sigma) -> x0`` (normalised latents ``[B, D, T]``) so that its estimate is
    nudged toward the context's harmony (module doc). ``energy``: latents ``[B, D, T]`` in codec units ->
    pitch-class power ``[B, 12, T]``, differentiable (a pitch critic's ``energy`` or the synth codec's
    ``pitch_class_energy``);
    ``latent_mean`` / ``latent_std``: the latent model's normalisation (codec units = x * std + mean);
    ``chroma``: the context's chroma ``[1 or B, 12, T]`` for the frames being sampled; ``strength``: the
    RMS of one gradient step in normalised units (0 = off). ``levels``: decreasing noise levels at which
    to act: the estimate of the first call at or below each level is refined, the others pass as they
    are (None: every call). The pipeline gives the 5-step consistency sampler's levels, so that any
    sampler pays for at most five refinements per window (Heun 30 calls the denoiser 59 times)."""

    def __init__(self, energy: Callable[[torch.Tensor], torch.Tensor], latent_mean: torch.Tensor,
                 latent_std: torch.Tensor, chroma: torch.Tensor, strength: float, iterations: int = ITERATIONS,
                 smooth: int = SMOOTH_FRAMES, levels: Sequence[float] | None = None):
        self.energy, self.chroma = energy, chroma
        self.mean, self.std = latent_mean, latent_std
        self.strength, self.iterations, self.smooth = float(strength), int(iterations), int(smooth)
        self.pending = None if levels is None else sorted((float(v) for v in levels), reverse=True)
        self.last_fit: torch.Tensor | None = None

    def _due(self, sigma: torch.Tensor) -> bool:
        """Whether the call at noise level ``sigma`` is refined (and, with ``levels``, the levels it passes)."""
        if self.pending is None:
            return True
        s = float(torch.as_tensor(sigma).max()) * (1 - 1e-6)
        passed = [v for v in self.pending if v >= s]
        self.pending = [v for v in self.pending if v < s]
        return bool(passed)

    def refine(self, x0: torch.Tensor) -> torch.Tensor:
        """``x0`` ``[B, D, T]`` (normalised) -> the same after ``iterations`` steps up the harmonic fit."""
        if self.strength <= 0 or self.iterations < 1:
            return x0
        y = x0.detach().float().clone()
        mean, std = self.mean.to(y.device).float(), self.std.to(y.device).float()
        with torch.enable_grad(), torch.autocast(y.device.type, enabled=False):  # fp32: exact gradients
            for _ in range(self.iterations):
                y.requires_grad_(True)
                fit = harmonic_fit(self.energy(y * std + mean), self.chroma, self.smooth)
                (grad,) = torch.autograd.grad(fit.sum(), y)
                rms = grad.pow(2).mean(dim=(1, 2), keepdim=True).sqrt()
                step = torch.where(rms > 0, grad / rms.clamp_min(1e-20), torch.zeros_like(grad))
                y = (y + self.strength * step).detach()
                self.last_fit = fit.detach()
        return y.to(x0.dtype)

    def __call__(self, denoise: Denoise) -> Denoise:
        """The wrapper of :meth:`diffariff.diffusion.model.LatentDiffusion.sample` (``wrappers=``)."""
        def guided(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
            x0 = denoise(x, sigma)
            return self.refine(x0) if self._due(sigma) else x0
        return guided
