"""The synth codec's networks: a pitch-resolving front end, a 1-D convolutional encoder and decoder.

Front end (:class:`PitchFrontEnd`): audio ``[B, N]`` (N a multiple of ``hop``) -> features
``[B, n_mels + P, N / hop]`` per ``hop`` (512) samples: 128 log-mel bands of a 2048-point STFT (time
detail, the whole spectrum) and ``P`` log energies in bands 1 / ``per_semitone`` semitone apart of an
8192-point STFT (5.9 Hz bins: resolves the semitones of a bass line, which 23.4 Hz bins cannot).

Encoder: features -> latents ``[B, latent_dim, N / latent_hop]`` in (-1, 1) (tanh); decoder: latents ->
control frames ``[B, out_channels, N / control_hop]``. Both are stacks of residual 1-D convolutions with a
per-frame channel norm (never mixing time frames), so a long signal processed in chunks with a few frames
of context equals the signal processed whole.
"""

from __future__ import annotations

import librosa
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

_LOG_FLOOR = 1e-7


class PitchFrontEnd(nn.Module):
    def __init__(self, sample_rate: int, hop: int, n_mels: int, midi_lo: float, midi_hi: float,
                 per_semitone: int, mel_fft: int = 2048, pitch_fft: int = 8192):
        super().__init__()
        self.hop, self.mel_fft, self.pitch_fft = int(hop), int(mel_fft), int(pitch_fft)
        mel = librosa.filters.mel(sr=sample_rate, n_fft=mel_fft, n_mels=n_mels, fmin=20.0, norm=None, htk=True)
        self.register_buffer("mel_fb", torch.from_numpy(mel.astype(np.float32)), persistent=False)
        self.register_buffer("pitch_fb", pitch_filterbank(sample_rate, pitch_fft, midi_lo, midi_hi, per_semitone),
                             persistent=False)
        self.register_buffer("mel_window", torch.hann_window(mel_fft), persistent=False)
        self.register_buffer("pitch_window", torch.hann_window(pitch_fft), persistent=False)

    @property
    def channels(self) -> int:
        return int(self.mel_fb.shape[0] + self.pitch_fb.shape[0])

    def _power(self, x: torch.Tensor, n_fft: int, window: torch.Tensor) -> torch.Tensor:
        """``[B, N]`` -> power ``[B, n_fft / 2 + 1, N / hop]``; frame t centred on sample ``t hop + hop / 2``
        (the middle of its hop), zero-padded at the ends."""
        t = x.shape[-1] // self.hop
        left = n_fft // 2 - self.hop // 2
        xp = F.pad(x, (left, n_fft - left))
        spec = torch.stft(xp, n_fft, self.hop, window=window, center=False, return_complex=True)
        return (spec.real.square() + spec.imag.square())[..., :t]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, N]`` -> ``[B, channels, N / hop]`` (float32, natural-log energies scaled by 1/5)."""
        with torch.autocast(x.device.type, enabled=False):
            x = x.float()
            mel = torch.einsum("mf,bft->bmt", self.mel_fb, self._power(x, self.mel_fft, self.mel_window))
            pitch = torch.einsum("mf,bft->bmt", self.pitch_fb, self._power(x, self.pitch_fft, self.pitch_window))
            return torch.log(torch.cat([mel, pitch], dim=1) + _LOG_FLOOR) / 5.0


def pitch_filterbank(sample_rate: int, n_fft: int, midi_lo: float, midi_hi: float, per_semitone: int) -> torch.Tensor:
    """Triangular filters ``[P, n_fft / 2 + 1]`` centred every ``1 / per_semitone`` semitone from MIDI
    ``midi_lo`` to ``midi_hi``, each reaching zero at its neighbours' centres (but never narrower than
    one FFT bin, so the low bands still see their bin)."""
    freqs = np.linspace(0.0, sample_rate / 2.0, n_fft // 2 + 1)
    steps = int(round((midi_hi - midi_lo) * per_semitone)) + 1
    centres = midi_lo + np.arange(steps) / per_semitone
    midi = 69.0 + 12.0 * np.log2(np.maximum(freqs, 1e-3) / 440.0)
    width = 1.0 / per_semitone
    fb = np.clip(1.0 - np.abs(midi[None] - centres[:, None]) / width, 0.0, None)
    bin_hz = sample_rate / n_fft
    for i, c in enumerate(centres):  # bands narrower than a bin: take the nearest bin
        if fb[i].sum() < 1e-3:
            fb[i, int(round(440.0 * 2 ** ((c - 69.0) / 12.0) / bin_hz))] = 1.0
    return torch.from_numpy(fb.astype(np.float32))


class ChannelNorm(nn.Module):
    """Layer norm over channels of each frame: ``[B, C, T] -> [B, C, T]`` (time-local)."""

    def __init__(self, channels: int):
        super().__init__()
        self.norm = nn.LayerNorm(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x.transpose(1, 2)).transpose(1, 2)


class ResBlock1d(nn.Module):
    """``x + conv(silu(norm(conv(silu(norm(x))))))``, kernel 3, second conv dilated; ``[B, C, T]``."""

    def __init__(self, channels: int, dilation: int = 1):
        super().__init__()
        self.n1, self.c1 = ChannelNorm(channels), nn.Conv1d(channels, channels, 3, padding=1)
        self.n2 = ChannelNorm(channels)
        self.c2 = nn.Conv1d(channels, channels, 3, padding=dilation, dilation=dilation)
        nn.init.zeros_(self.c2.weight)
        nn.init.zeros_(self.c2.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.c2(F.silu(self.n2(self.c1(F.silu(self.n1(x))))))


def _stage(channels: int, blocks: int) -> list[nn.Module]:
    return [ResBlock1d(channels, dilation=3 ** (i % 2)) for i in range(blocks)]


class SynthEncoder(nn.Module):
    """Features ``[B, F_in, T_f]`` -> latents ``[B, latent_dim, T_f / 2**len(channels[1:])]`` in (-1, 1).
    ``channels``: width per level; between levels time halves (stride-2 convolution)."""

    def __init__(self, in_channels: int, channels: tuple[int, ...], blocks: int, latent_dim: int):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv1d(in_channels, channels[0], 3, padding=1)]
        for i, c in enumerate(channels):
            layers += _stage(c, blocks)
            if i + 1 < len(channels):
                layers.append(nn.Conv1d(c, channels[i + 1], 4, stride=2, padding=1))
        layers += [ChannelNorm(channels[-1]), nn.SiLU(), nn.Conv1d(channels[-1], latent_dim, 3, padding=1)]
        self.net = nn.Sequential(*layers)

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.net(feats))


class SynthDecoder(nn.Module):
    """Latents ``[B, latent_dim, T]`` -> control frames ``[B, out_channels, T * 2**(len(channels) - 1)]``.
    ``channels``: width per level from the latent rate up; between levels time doubles (nearest + conv)."""

    def __init__(self, latent_dim: int, channels: tuple[int, ...], blocks: int, out_channels: int,
                 out_bias: float = 0.0):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv1d(latent_dim, channels[0], 3, padding=1)]
        for i, c in enumerate(channels):
            layers += _stage(c, blocks)
            if i + 1 < len(channels):
                layers += [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv1d(c, channels[i + 1], 3, padding=1)]
        layers += [ChannelNorm(channels[-1]), nn.SiLU()]
        self.net = nn.Sequential(*layers)
        self.head = nn.Conv1d(channels[-1], out_channels, 3, padding=1)
        nn.init.normal_(self.head.weight, std=1e-3)
        nn.init.constant_(self.head.bias, out_bias)

    def forward(self, latents: torch.Tensor) -> torch.Tensor:
        hidden = self.net(latents)
        with torch.autocast(hidden.device.type, enabled=False):  # levels in fp32 (bf16 steps are ~0.4 dB)
            return self.head(hidden.float())
