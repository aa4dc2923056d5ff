"""Encoder: compressed spectrogram ``[B, S, 1024, T_stft]`` -> latents ``[B, 64, T_stft / 8]`` in (-1, 1).

A frequency patch embedding, then one level per ``enc_channels`` entry (residual blocks,
frequency-wise attention in the ``attn_levels`` deepest levels, a strided downsampling between
levels: frequency / 2 each time, time / 2 three times), then the deepest map is flattened over
(channels, frequency) into 1-D features per latent frame and projected to ``latent_dim`` with tanh.
With ``note_input`` the projection also takes each latent frame's note profile ``[B, 84, T]`` (see
:func:`~diffariff.codec.losses.note_profile`) through its own convolution, zero-initialised so that a
codec warm-started without it encodes exactly as before.
"""

from __future__ import annotations

import torch
from torch import nn

from ..errors import InputError
from .config import CodecConfig
from .layers import Downsample, FreqAttention, PatchIn, ResBlock2d, norm
from .losses import semitone_bands


class Encoder(nn.Module):
    def __init__(self, cfg: CodecConfig):
        super().__init__()
        chans, levels = cfg.enc_channels, len(cfg.enc_channels)
        self.patch = PatchIn(cfg.spec_channels, chans[0], cfg.freq_patch)
        self.levels = nn.ModuleList()
        freq = cfg.freq_bins // cfg.freq_patch
        for i, c in enumerate(chans):
            mods = nn.ModuleList([ResBlock2d(c, c) for _ in range(cfg.enc_blocks)])
            if i >= levels - cfg.attn_levels:
                mods.append(FreqAttention(c, cfg.attn_heads, freq))
            if i < levels - 1:
                mods.append(Downsample(c, chans[i + 1], cfg.time_down[i]))
                freq //= 2
            self.levels.append(mods)
        self.out_norm = norm(chans[-1])
        self.bottleneck = nn.Conv1d(chans[-1] * freq, cfg.latent_dim, 3, padding=1)
        self.note_in = None
        if cfg.note_input:
            self.note_in = nn.Conv1d(semitone_bands(), cfg.latent_dim, 3, padding=1)
            nn.init.zeros_(self.note_in.weight)
            nn.init.zeros_(self.note_in.bias)

    def forward(self, spec: torch.Tensor, notes: torch.Tensor | None = None) -> torch.Tensor:
        """``[B, S, F, T_stft]`` (T_stft % 8 == 0) and, with ``note_input``, the note profiles
        ``[B, 84, T_stft / 8]`` -> ``[B, latent_dim, T_stft / 8]``."""
        h = self.patch(spec)
        for mods in self.levels:
            for m in mods:
                h = m(h)
        h = torch.nn.functional.silu(self.out_norm(h))
        b, c, f, t = h.shape
        pre = self.bottleneck(h.reshape(b, c * f, t))
        if self.note_in is not None:
            if notes is None or notes.shape[-1] != t:
                raise InputError(f"this encoder needs note profiles of {t} frames (codec.note_features)")
            pre = pre + self.note_in(notes.to(pre.dtype))
        return torch.tanh(pre)
