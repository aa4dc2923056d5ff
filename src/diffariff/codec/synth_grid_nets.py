"""Pitch-grid networks of the synth codec (``nets="grid"``): 2-D convolutions over (pitch, time).

The 1-D networks (:mod:`.synth_nets`) treat the 280 oscillator levels as 280 unrelated output channels: a
decoder whose last layers are 128 channels wide writes its log-levels in a 128-dimensional subspace, and
what it learnt for a note at one pitch says nothing about the same note a semitone higher. Measured on the
1-D codec after 6000 steps: with its latents *optimised directly* against a clip (no encoder in the way), the
decoded stems still had no pitch classes (correlation 0.0-0.1, levels 10-24 dB low), while free control
levels fitted with the same losses reach 0.93-0.96. The decoder could not express a note.

Here the bank's log-levels are an image ``[pitch, time]`` made by 2-D convolutions, so a note is a local
pattern that can sit at any pitch (translation along the pitch axis is a shift of the same weights); a learnt
embedding per pitch row keeps register-dependent timbre. The encoder reads the 1/3-semitone band energies
the same way. Noise gains and the mel features keep a 1-D branch.

* :class:`GridEncoder`: front-end features ``[B, n_mels + K, T_f]`` -> latents ``[B, D, T_f / 4]`` in (-1, 1).
* :class:`GridDecoder`: latents ``[B, D, T]`` -> control log-levels ``[B, K + noise_bands, 8 T]``.

Norms are per (pitch, time) position over channels and every convolution is 3 taps in time, so a signal
processed in chunks with a few latent frames of context equals it processed whole.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .synth_nets import ResBlock1d

#: pitch rows are halved (encoder) or doubled (decoder) this many times between the bank and the latent grid
PITCH_LEVELS = 3


class PositionNorm(nn.Module):
    """RMS norm over channels at every position of ``[B, C, H, W]`` (never mixes time frames)."""

    def __init__(self, channels: int):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(1, channels, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.square().mean(dim=1, keepdim=True) + 1e-5) * self.weight


class ResBlock2d(nn.Module):
    """``x + conv(silu(norm(conv(silu(norm(x))))))`` with 3x3 kernels; ``[B, C, pitch, time]``."""

    def __init__(self, channels: int):
        super().__init__()
        self.n1, self.c1 = PositionNorm(channels), nn.Conv2d(channels, channels, 3, padding=1)
        self.n2, self.c2 = PositionNorm(channels), nn.Conv2d(channels, channels, 3, padding=1)
        nn.init.zeros_(self.c2.weight)
        nn.init.zeros_(self.c2.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.c2(F.silu(self.n2(self.c1(F.silu(self.n1(x))))))


def grid_rows(bank_size: int) -> int:
    """Pitch rows of the latent-rate grid: the bank halved ``PITCH_LEVELS`` times (it must divide)."""
    if bank_size % 2**PITCH_LEVELS:
        raise ValueError(f"the bank size ({bank_size}) must be a multiple of {2 ** PITCH_LEVELS} for grid nets")
    return bank_size // 2**PITCH_LEVELS


class GridEncoder(nn.Module):
    """Features ``[B, n_mels + K, T_f]`` -> latents ``[B, latent_dim, T_f / 4]`` (tanh).

    Pitch branch: the K band energies as a one-channel image; a strided 4x4 stem halves pitch and time, then
    per width in ``channels`` residual stages, with a strided convolution between them (pitch and time halve
    after the first stage, pitch only after the second), flattened to ``channels[-1] * K / 8`` channels.
    Mel branch: 1-D stages down to the latent rate. Both are joined by a 1-D stage and a 3-tap projection."""

    def __init__(self, n_mels: int, bank_size: int, channels: tuple[int, ...], mel_channels: int,
                 blocks: int, latent_dim: int):
        super().__init__()
        if len(channels) != PITCH_LEVELS:
            raise ValueError(f"grid encoder needs {PITCH_LEVELS} widths, got {len(channels)}")
        self.n_mels, self.rows = n_mels, grid_rows(bank_size)
        layers: list[nn.Module] = [nn.Conv2d(1, channels[0], 4, stride=2, padding=1)]
        for i, c in enumerate(channels):
            layers += [ResBlock2d(c) for _ in range(blocks)]
            if i + 1 < len(channels):
                time_down = i == 0  # stem and first stride: the latent hop is 4 feature frames
                layers.append(nn.Conv2d(c, channels[i + 1], (4, 4 if time_down else 3),
                                        stride=(2, 2 if time_down else 1), padding=1))
        self.pitch = nn.Sequential(*layers)
        mel: list[nn.Module] = [nn.Conv1d(n_mels, mel_channels, 3, padding=1)]
        for _ in range(2):
            mel += [ResBlock1d(mel_channels), nn.Conv1d(mel_channels, mel_channels, 4, stride=2, padding=1)]
        self.mel = nn.Sequential(*mel)
        joined = channels[-1] * self.rows + mel_channels
        hidden = max(4 * latent_dim, mel_channels)
        self.join = nn.Sequential(nn.Conv1d(joined, hidden, 1), *[ResBlock1d(hidden, 3 ** (i % 2)) for i in range(blocks)],
                                  nn.SiLU(), nn.Conv1d(hidden, latent_dim, 3, padding=1))

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        mel, bands = feats[:, : self.n_mels], feats[:, self.n_mels:]
        grid = self.pitch(bands[:, None])  # [B, C, K / 8, T_f / 4]
        b, c, h, t = grid.shape
        joined = torch.cat([grid.reshape(b, c * h, t), self.mel(mel)], dim=1)
        return torch.tanh(self.join(joined))


class GridDecoder(nn.Module):
    """Latents ``[B, latent_dim, T]`` -> log-levels ``[B, K + noise_bands, 8 T]``.

    Pitch branch: a 3-tap projection to a ``channels[0] x K / 8`` grid plus a learnt embedding per row; per
    width in ``channels`` residual stages with a nearest 2x upsampling of pitch and time and a 3x3 convolution
    between them, reaching ``K / 2`` rows at ``4 T``; a 3x3 head writes 4 values per position that a pixel
    shuffle places on the full ``K x 8 T`` grid (the costly full-resolution stage is skipped). Noise
    branch: 1-D stages (``noise_channels``, time doubling between them) to ``noise_bands`` gains."""

    def __init__(self, latent_dim: int, bank_size: int, channels: tuple[int, ...], noise_channels: tuple[int, ...],
                 noise_bands: int, blocks: int, out_bias: float = -9.0):
        super().__init__()
        if len(channels) != PITCH_LEVELS:
            raise ValueError(f"grid decoder needs {PITCH_LEVELS} widths, got {len(channels)}")
        if len(noise_channels) != PITCH_LEVELS + 1:
            raise ValueError(f"grid decoder's noise branch needs {PITCH_LEVELS + 1} widths")
        self.rows, self.c0 = grid_rows(bank_size), channels[0]
        self.project = nn.Conv1d(latent_dim, channels[0] * self.rows, 3, padding=1)
        self.row_embedding = nn.Parameter(torch.zeros(1, channels[0], self.rows, 1))
        layers: list[nn.Module] = []
        for i, c in enumerate(channels):
            layers += [ResBlock2d(c) for _ in range(blocks if i + 1 < len(channels) else 1)]
            if i + 1 < len(channels):
                layers += [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(c, channels[i + 1], 3, padding=1)]
        layers += [PositionNorm(channels[-1]), nn.SiLU()]
        self.pitch = nn.Sequential(*layers)
        self.pitch_head = nn.Conv2d(channels[-1], 4, 3, padding=1)
        nn.init.normal_(self.pitch_head.weight, std=1e-3)
        nn.init.constant_(self.pitch_head.bias, out_bias)
        noise: list[nn.Module] = [nn.Conv1d(latent_dim, noise_channels[0], 3, padding=1)]
        for i, c in enumerate(noise_channels):
            noise.append(ResBlock1d(c))
            if i + 1 < len(noise_channels):
                noise += [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv1d(c, noise_channels[i + 1], 3, padding=1)]
        noise += [nn.SiLU(), nn.Conv1d(noise_channels[-1], noise_bands, 3, padding=1)]
        self.noise = nn.Sequential(*noise)
        nn.init.normal_(self.noise[-1].weight, std=1e-3)
        nn.init.constant_(self.noise[-1].bias, out_bias)

    def bank(self, latents: torch.Tensor) -> torch.Tensor:
        """The pitch branch alone: latents ``[B, latent_dim, T]`` -> the bank's log-levels ``[B, K, 8 T]``."""
        b, _, t = latents.shape
        grid = self.project(latents).reshape(b, self.c0, self.rows, t) + self.row_embedding
        hidden = self.pitch(grid)
        with torch.autocast(hidden.device.type, enabled=False):  # levels in fp32 (bf16 steps are ~0.4 dB)
            return F.pixel_shuffle(self.pitch_head(hidden.float()), 2)[:, 0]

    def forward(self, latents: torch.Tensor) -> torch.Tensor:
        hidden = self.noise[:-1](latents)
        with torch.autocast(hidden.device.type, enabled=False):
            noise = self.noise[-1](hidden.float())
        return torch.cat([self.bank(latents), noise], dim=1)
