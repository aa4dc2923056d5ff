"""Decoder side: the upsampler (latents -> feature pyramid + deterministic spectrogram head) and the
consistency U-Net that denoises the residual between the true and the deterministic spectrogram.

Shapes: latents ``[B, 64, T]``; pyramid level i is ``[B, dec_channels[i], F_i, T_i]`` with
``F_i = 1024 / (freq_patch * 2**i)`` and ``T_i`` the STFT frames (8 T) divided by the time
downsampling before level i; spectrograms ``[B, S, 1024, 8 T]``.

The upsampler is translation-equivariant in time, so steady latents give steady feature maps: its 8 STFT
frames per latent frame would be identical. ``subframe_embedding`` adds a learned map ``[C, F_0]`` per
position (0..7) inside the latent frame at the finest level, so the head can shape frames within a latent frame
(e.g. turn a partial's phase between bins of a demodulated spectrogram, :mod:`.stft`). Chunks start on
latent frames, so positions are the same in chunked and whole decoding.
"""

from __future__ import annotations

import torch
from torch import nn

from .config import CodecConfig
from .layers import FreqAttention, PatchIn, PatchOut, ResBlock2d, Upsample, sinusoidal_embedding


class Upsampler(nn.Module):
    """Latents ``[B, 64, T]`` -> (pyramid: list of L maps, finest first; deterministic spectrogram
    ``[B, S, 1024, 8 T]``)."""

    def __init__(self, cfg: CodecConfig):
        super().__init__()
        chans, levels = cfg.dec_channels, len(cfg.dec_channels)
        self.deep_c, self.deep_f = chans[-1], cfg.deep_freq
        self.proj = nn.Conv1d(cfg.latent_dim, chans[-1] * cfg.deep_freq, 3, padding=1)
        self.levels = nn.ModuleList()
        freq = cfg.deep_freq
        for i in reversed(range(levels)):
            mods = nn.ModuleList([ResBlock2d(chans[i], chans[i]) for _ in range(cfg.dec_blocks)])
            if i >= levels - cfg.attn_levels:
                mods.append(FreqAttention(chans[i], cfg.attn_heads, freq))
            self.levels.append(mods)
            freq *= 2
        self.ups = nn.ModuleList(
            [Upsample(chans[i], chans[i - 1], cfg.time_down[i - 1]) for i in reversed(range(1, levels))]
        )
        self.head = PatchOut(chans[0], cfg.spec_channels, cfg.freq_patch)
        # per channel, frequency row and position: the frame-wise group norms would cancel a map that is
        # constant over frequency
        fine = cfg.freq_bins // cfg.freq_patch
        self.subframe = nn.Parameter(torch.zeros(1, chans[0], fine, 8)) if cfg.subframe_embedding else None

    def forward(self, latents: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        b, _, t = latents.shape
        h = self.proj(latents).reshape(b, self.deep_c, self.deep_f, t)
        pyramid = []
        for j, mods in enumerate(self.levels):
            if self.subframe is not None and j == len(self.levels) - 1:  # finest level: 8 frames per latent
                h = h + self.subframe.to(h.dtype).repeat(1, 1, 1, t)
            for m in mods:
                h = m(h)
            pyramid.append(h)
            if j < len(self.ups):
                h = self.ups[j](h)
        pyramid.reverse()
        return pyramid, self.head(h)


class ConsistencyUNet(nn.Module):
    """F_theta of the consistency decoder: ``(x_in [B, S, F, T_stft] (= c_in * noisy residual),
    det [B, S, F, T_stft] (deterministic spectrogram, scaled), c_noise [B], pyramid) -> [B, S, F, T_stft]``.

    Down path adds a 1x1 projection of the pyramid map at each level; up path uses skip connections.
    """

    def __init__(self, cfg: CodecConfig):
        super().__init__()
        chans, levels = cfg.unet_channels, len(cfg.unet_channels)
        e = cfg.noise_embed_dim
        self.embed_dim = e
        self.noise_mlp = nn.Sequential(nn.Linear(e, e), nn.SiLU(), nn.Linear(e, e))
        self.patch = PatchIn(2 * cfg.spec_channels, chans[0], cfg.freq_patch)
        self.cond = nn.ModuleList([nn.Conv2d(cfg.dec_channels[i], chans[i], 1) for i in range(levels)])
        self.down = nn.ModuleList()
        self.up = nn.ModuleList()
        self.attn_from = levels - cfg.attn_levels
        freq = cfg.freq_bins // cfg.freq_patch
        freqs = []
        for c in chans:
            self.down.append(nn.ModuleList([ResBlock2d(c, c, e) for _ in range(cfg.unet_blocks)]))
            freqs.append(freq)
            freq //= 2
        self.down_attn = nn.ModuleList(
            [FreqAttention(chans[i], cfg.attn_heads, freqs[i]) if i >= self.attn_from else nn.Identity()
             for i in range(levels)]
        )
        self.downs = nn.ModuleList(
            [nn.Conv2d(chans[i], chans[i + 1], 3, stride=(2, 2 if cfg.time_down[i] else 1), padding=1)
             for i in range(levels - 1)]
        )
        for i in range(levels):
            self.up.append(ResBlock2d(2 * chans[i], chans[i], e))
        self.ups = nn.ModuleList([Upsample(chans[i], chans[i - 1], cfg.time_down[i - 1]) for i in range(1, levels)])
        self.head = PatchOut(chans[0], cfg.spec_channels, cfg.freq_patch, zero=True)

    def forward(
        self, x_in: torch.Tensor, det: torch.Tensor, c_noise: torch.Tensor, pyramid: list[torch.Tensor]
    ) -> torch.Tensor:
        emb = self.noise_mlp(sinusoidal_embedding(c_noise, self.embed_dim))
        h = self.patch(torch.cat([x_in, det], dim=1))
        skips = []
        for i, blocks in enumerate(self.down):
            h = h + self.cond[i](pyramid[i])
            for blk in blocks:
                h = blk(h, emb)
            h = self.down_attn[i](h)
            skips.append(h)
            if i < len(self.downs):
                h = self.downs[i](h)
        for i in reversed(range(len(self.up))):
            h = self.up[i](torch.cat([h, skips[i]], dim=1), emb)
            if i > 0:
                h = self.ups[i - 1](h)
        return self.head(h)
