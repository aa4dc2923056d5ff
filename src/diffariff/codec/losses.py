"""Reconstruction losses and held-out metrics of the codec (all computed in float32).

* :func:`complex_l1`: L1 between compressed complex spectrograms ``[B, S, F, T]`` (phase-aware).
* :func:`mr_stft_loss`: multi-resolution STFT loss on waveforms ``[B, N]``: per resolution, L1 of
  magnitudes + L1 of log-magnitudes, and (``complex_weight``) L1 of the amplitude-compressed
  (|X|**0.5) complex STFT, which penalises phase errors at every resolution.
* :func:`mr_stft_distance`: the held-out metric: mean over resolutions of spectral convergence +
  log-magnitude L1 (no phase term).
* :func:`log_mel_l1`: L1 between log10 mel spectrograms (128 mels, window 2048, hop 512).
"""

from __future__ import annotations

import functools

import numpy as np
import torch

RESOLUTIONS = ((256, 64), (512, 128), (1024, 256), (2048, 512), (4096, 1024))
_LOG_EPS = 1e-5


def _stft(x: torch.Tensor, n_fft: int, hop: int) -> torch.Tensor:
    window = torch.hann_window(n_fft, device=x.device)
    return torch.stft(x.float(), n_fft, hop, window=window, center=True, return_complex=True)


def complex_l1(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return (pred.float() - target.float()).abs().mean()


def mr_stft_loss(pred: torch.Tensor, target: torch.Tensor, complex_weight: float = 1.0,
                 resolutions=RESOLUTIONS) -> torch.Tensor:
    """Waveforms ``[B, N]`` -> scalar loss (mean over resolutions)."""
    total = pred.new_zeros((), dtype=torch.float32)
    for n_fft, hop in resolutions:
        p, t = _stft(pred, n_fft, hop), _stft(target, n_fft, hop)
        pm = (p.real.square() + p.imag.square() + 1e-12).sqrt()
        tm = t.abs()
        total = total + (pm - tm).abs().mean() + (torch.log(pm + _LOG_EPS) - torch.log(tm + _LOG_EPS)).abs().mean()
        if complex_weight:
            pc = p * (pm + 1e-8).pow(-0.5)
            tc = t * (tm + 1e-8).pow(-0.5)
            total = total + complex_weight * torch.view_as_real(pc - tc).abs().mean()
    return total / len(resolutions)


@torch.no_grad()
def mr_stft_distance(pred: torch.Tensor, target: torch.Tensor, resolutions=RESOLUTIONS) -> float:
    """Waveforms ``[B, N]`` -> mean over resolutions of spectral convergence + log-magnitude L1."""
    total = 0.0
    for n_fft, hop in resolutions:
        pm, tm = _stft(pred, n_fft, hop).abs(), _stft(target, n_fft, hop).abs()
        sc = torch.linalg.norm(tm - pm) / torch.linalg.norm(tm).clamp_min(1e-8)
        lm = (torch.log(pm + _LOG_EPS) - torch.log(tm + _LOG_EPS)).abs().mean()
        total += float(sc + lm)
    return total / len(resolutions)


@functools.lru_cache(maxsize=4)
def mel_filterbank(sample_rate: int = 48_000, n_fft: int = 2048, n_mels: int = 128) -> torch.Tensor:
    """Slaney-style triangular mel filters (HTK mel scale), ``[n_mels, n_fft // 2 + 1]``."""
    def hz_to_mel(f):
        return 2595.0 * np.log10(1.0 + np.asarray(f) / 700.0)

    def mel_to_hz(m):
        return 700.0 * (10.0 ** (np.asarray(m) / 2595.0) - 1.0)

    freqs = np.linspace(0, sample_rate / 2, n_fft // 2 + 1)
    pts = mel_to_hz(np.linspace(hz_to_mel(0.0), hz_to_mel(sample_rate / 2), n_mels + 2))
    fb = np.zeros((n_mels, freqs.size))
    for i in range(n_mels):
        lo, mid, hi = pts[i], pts[i + 1], pts[i + 2]
        up = (freqs - lo) / max(mid - lo, 1e-9)
        down = (hi - freqs) / max(hi - mid, 1e-9)
        fb[i] = np.maximum(0.0, np.minimum(up, down)) * (2.0 / (hi - lo))
    return torch.from_numpy(fb).float()


@torch.no_grad()
def log_mel_l1(pred: torch.Tensor, target: torch.Tensor, sample_rate: int = 48_000) -> float:
    """Waveforms ``[B, N]`` -> mean |log10(mel(pred) + 1e-5) - log10(mel(target) + 1e-5)| (128 mels)."""
    fb = mel_filterbank(sample_rate)
    pm = fb @ _stft(pred, 2048, 512).abs().square()
    tm = fb @ _stft(target, 2048, 512).abs().square()
    return float((torch.log10(pm + _LOG_EPS) - torch.log10(tm + _LOG_EPS)).abs().mean())
