"""Differentiable synthesisers of the synth codec's decoder: pitch is fixed by construction, the network
only chooses levels.

* :class:`OscillatorBank` - ``K`` sinusoids at fixed frequencies on a fine equal-tempered grid
  (``per_semitone`` oscillators per semitone from MIDI ``midi_lo`` to ``midi_hi``; A4 = 440 Hz), each with
  an amplitude per control frame. A partial between two grid points is rendered by the nearer one (at
  most 1 / (2 * per_semitone) semitone off, 16.7 cents for 3 per semitone): a note never collapses onto
  an analysis grid, whatever the phase, because no phase is predicted.
* :class:`NoiseSynth` - white noise shaped per control frame by ``bands`` gains (triangular bands on the
  mel scale up to Nyquist) in a 512-point STFT: breath, bow and pick noise, cymbals, reverb tails.

Both take control frames at ``hop`` (256 samples, 5.3 ms at 48 kHz) and render ``hop * T`` samples.
Control frame ``j`` sits at sample ``j * hop`` of the rendered span; between frames the levels are
cross-faded by Hann windows of ``2 * hop`` samples (which sum to one at 50 % overlap).

Both are keyed to absolute sample positions (``first_sample``): an oscillator's phase at sample ``n`` is
``2 pi f n / sr + phi``, the noise of each 65 536-sample block is drawn from its own generator, so a span
rendered in chunks equals the span rendered whole. ``seed`` draws the oscillators' start phases ``phi`` and
the noise: two seeds give two decodings of one latent that differ in phase and noise, not in level or pitch
(the pseudo-stereo width).
"""

from __future__ import annotations

import math

import librosa
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..torchutil import seeded_generator

_NOISE_BLOCK = 65_536  # samples per independently seeded noise block


def bank_frequencies(midi_lo: float, midi_hi: float, per_semitone: int) -> np.ndarray:
    """Frequencies in Hz of the oscillator grid: MIDI pitches ``midi_lo .. midi_hi`` in steps of
    ``1 / per_semitone`` semitone (A4 = MIDI 69 = 440 Hz), float64 ``[K]``."""
    steps = int(round((midi_hi - midi_lo) * per_semitone)) + 1
    midi = midi_lo + np.arange(steps, dtype=np.float64) / per_semitone
    return 440.0 * 2.0 ** ((midi - 69.0) / 12.0)


def _start_phases(count: int, seed: int) -> torch.Tensor:
    g = seeded_generator(int(seed) * 7_919 + 17)
    return torch.rand(count, generator=g, dtype=torch.float64) * (2 * math.pi)


class OscillatorBank(nn.Module):
    """Amplitudes ``[B, K, T]`` (linear, >= 0) -> audio ``[B, hop * T]``."""

    def __init__(self, sample_rate: int, hop: int, midi_lo: float, midi_hi: float, per_semitone: int):
        super().__init__()
        self.sample_rate, self.hop = int(sample_rate), int(hop)
        freqs = bank_frequencies(midi_lo, midi_hi, per_semitone)
        if freqs[-1] >= sample_rate / 2:
            raise ValueError("the oscillator bank must stay below Nyquist")
        omega = torch.from_numpy(2 * math.pi * freqs / sample_rate)  # rad / sample, float64
        self.register_buffer("omega", omega, persistent=False)
        m = torch.arange(2 * hop, dtype=torch.float64)
        window = torch.hann_window(2 * hop, periodic=True, dtype=torch.float64)
        # per-frame bases: the window times cos / sin of each oscillator over one 2*hop segment
        self.register_buffer("cos_basis", (torch.cos(omega[:, None] * m) * window).float(), persistent=False)
        self.register_buffer("sin_basis", (torch.sin(omega[:, None] * m) * window).float(), persistent=False)

    @property
    def size(self) -> int:
        return int(self.omega.numel())

    def forward(self, amps: torch.Tensor, seed: int = 0, first_sample: int = 0) -> torch.Tensor:
        b, k, t = amps.shape
        h = self.hop
        phi = _start_phases(k, seed).to(amps.device)
        # segment j covers samples [j h - h, j h + h) of the span; theta = phase at its first sample
        starts = (first_sample + torch.arange(t, dtype=torch.float64, device=amps.device) * h - h)
        theta = torch.remainder(starts[:, None] * self.omega[None] + phi[None], 2 * math.pi).float()  # [T, K]
        a = amps.float().transpose(1, 2)  # [B, T, K]
        seg = (a * torch.sin(theta)) @ self.cos_basis + (a * torch.cos(theta)) @ self.sin_basis  # [B, T, 2h]
        out = F.fold(seg.transpose(1, 2), (1, (t + 1) * h), (1, 2 * h), stride=(1, h)).flatten(1)
        return out[:, h: h + t * h]


class NoiseSynth(nn.Module):
    """Band gains ``[B, bands, T]`` (linear, >= 0) -> filtered noise ``[B, hop * T]``; gain 1 in every band
    gives unit-variance white noise."""

    def __init__(self, sample_rate: int, hop: int, bands: int):
        super().__init__()
        self.sample_rate, self.hop, self.n_fft = int(sample_rate), int(hop), 2 * int(hop)
        mel = librosa.filters.mel(sr=sample_rate, n_fft=self.n_fft, n_mels=bands, fmin=0.0,
                                  fmax=sample_rate / 2, norm=None, htk=True)  # [bands, F]
        # bins -> bands interpolation: each bin's gain is the weighted mean of the bands covering it
        w = torch.from_numpy(mel.T.astype(np.float32))  # [F, bands]
        w[0, 0] = max(float(w[0, 0]), 1.0)  # DC lies below the first band's peak
        self.register_buffer("interp", w / w.sum(dim=1, keepdim=True).clamp_min(1e-6), persistent=False)
        self.register_buffer("window", torch.hann_window(self.n_fft), persistent=False)

    def noise(self, batch: int, first_sample: int, length: int, seed: int) -> torch.Tensor:
        """White noise ``[batch, length]`` for samples [first_sample, first_sample + length), keyed to position."""
        parts = []
        lo, hi = first_sample, first_sample + length
        for blk in range(lo // _NOISE_BLOCK, (hi - 1) // _NOISE_BLOCK + 1):
            g = seeded_generator((int(seed) * 1_000_003 + blk * 7_919 + 3) % (2**63 - 1))
            z = torch.randn(batch, _NOISE_BLOCK, generator=g)
            a, e = max(lo, blk * _NOISE_BLOCK), min(hi, (blk + 1) * _NOISE_BLOCK)
            parts.append(z[:, a - blk * _NOISE_BLOCK: e - blk * _NOISE_BLOCK])
        return torch.cat(parts, dim=1)

    def forward(self, gains: torch.Tensor, seed: int = 0, first_sample: int = 0) -> torch.Tensor:
        b, _, t = gains.shape
        n = t * self.hop
        z = self.noise(b, first_sample, n, seed).to(gains.device)
        spec = torch.stft(z, self.n_fft, self.hop, window=self.window, center=True, return_complex=True)
        g = torch.einsum("fm,bmt->bft", self.interp, gains.float())  # [B, F, T]
        g = torch.cat([g, g[..., -1:]], dim=-1)[..., : spec.shape[-1]]  # center=True has T + 1 frames
        return torch.istft(spec * g, self.n_fft, self.hop, window=self.window, center=True, length=n)
