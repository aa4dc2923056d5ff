"""Building blocks of the codec's 2-D networks over (frequency, time) feature maps ``[B, C, F, T]``."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class FrameGroupNorm(nn.Module):
    """Group normalisation with statistics over (channels of a group, frequency) of each time frame
    separately: ``[B, C, F, T] -> [B, C, F, T]``. Unlike ``nn.GroupNorm`` it never mixes time frames,
    so the networks stay time-local and chunked processing matches whole-signal processing."""

    def __init__(self, groups: int, channels: int, eps: float = 1e-5):
        super().__init__()
        self.groups, self.eps = groups, eps
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, f, t = x.shape
        # time frames into the batch, then the native group norm kernel (faster than strided reductions)
        h = x.permute(0, 3, 1, 2).reshape(b * t, c, f)
        h = F.group_norm(h, self.groups, self.weight, self.bias, self.eps)
        return h.reshape(b, t, c, f).permute(0, 2, 3, 1)


def norm(channels: int) -> FrameGroupNorm:
    return FrameGroupNorm(min(8, channels), channels)


class ResBlock2d(nn.Module):
    """Pre-norm residual block: GN-SiLU-conv3x3 twice, optional scale/shift from an embedding
    ``emb [B, E]`` (the noise level in the consistency U-Net). ``[B, Cin, F, T] -> [B, Cout, F, T]``."""

    def __init__(self, cin: int, cout: int, emb_dim: int = 0):
        super().__init__()
        self.norm1, self.conv1 = norm(cin), nn.Conv2d(cin, cout, 3, padding=1)
        self.norm2, self.conv2 = norm(cout), nn.Conv2d(cout, cout, 3, padding=1)
        self.emb = nn.Linear(emb_dim, 2 * cout) if emb_dim else None
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv2.bias)

    def forward(self, x: torch.Tensor, emb: torch.Tensor | None = None) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.norm2(h)
        if self.emb is not None and emb is not None:
            scale, shift = self.emb(emb)[:, :, None, None].chunk(2, dim=1)
            h = h * (1 + scale) + shift
        h = self.conv2(F.silu(h))
        return self.skip(x) + h


class FreqAttention(nn.Module):
    """Multi-head self-attention along the frequency axis, independently for every time frame:
    ``[B, C, F, T] -> [B, C, F, T]`` (residual). Learned frequency-position embedding of size F."""

    def __init__(self, channels: int, heads: int, freq: int):
        super().__init__()
        self.heads = heads
        self.norm = norm(channels)
        self.pos = nn.Parameter(torch.zeros(1, channels, freq, 1))
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.out = nn.Conv2d(channels, channels, 1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, f, t = x.shape
        qkv = self.qkv(self.norm(x) + self.pos)  # [B, 3C, F, T]
        qkv = qkv.reshape(b, 3, self.heads, c // self.heads, f, t).permute(1, 0, 5, 2, 4, 3)
        q, k, v = qkv.reshape(3, b * t, self.heads, f, c // self.heads).unbind(0)
        h = F.scaled_dot_product_attention(q, k, v)  # [B*T, H, F, D]
        h = h.reshape(b, t, self.heads, f, c // self.heads).permute(0, 2, 4, 3, 1).reshape(b, c, f, t)
        return x + self.out(h)


class Downsample(nn.Module):
    """Strided 3x3 conv: frequency / 2, time / 2 when ``time`` (else time kept)."""

    def __init__(self, cin: int, cout: int, time: bool):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 3, stride=(2, 2 if time else 1), padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class Upsample(nn.Module):
    """Nearest x2 in frequency (and time when ``time``) followed by a 3x3 conv."""

    def __init__(self, cin: int, cout: int, time: bool):
        super().__init__()
        self.factor = (2, 2 if time else 1)
        self.conv = nn.Conv2d(cin, cout, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=self.factor, mode="nearest"))


class PatchIn(nn.Module):
    """Spectrogram ``[B, S, F, T]`` -> features ``[B, C, F / p, T]``: frequency patches of size p,
    with a time context of 3 frames."""

    def __init__(self, cin: int, cout: int, patch: int):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, (patch, 3), stride=(patch, 1), padding=(0, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class PatchOut(nn.Module):
    """Features ``[B, C, F / p, T]`` -> spectrogram ``[B, S, F, T]`` (norm, SiLU, conv3x3 to S*p
    channels, then the channels unfolded back into frequency). Zero-initialised when ``zero``."""

    def __init__(self, cin: int, cout: int, patch: int, zero: bool = False):
        super().__init__()
        self.cout, self.patch = cout, patch
        self.norm = norm(cin)
        self.conv = nn.Conv2d(cin, cout * patch, 3, padding=1)
        if zero:
            nn.init.zeros_(self.conv.weight)
            nn.init.zeros_(self.conv.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(F.silu(self.norm(x)))
        b, _, f, t = y.shape
        y = y.reshape(b, self.cout, self.patch, f, t).permute(0, 1, 3, 2, 4)
        return y.reshape(b, self.cout, f * self.patch, t)


def sinusoidal_embedding(x: torch.Tensor, dim: int) -> torch.Tensor:
    """``[B]`` scalars -> ``[B, dim]`` sin/cos features (periods 1 .. 10^4)."""
    half = dim // 2
    freqs = torch.exp(-math.log(10_000.0) * torch.arange(half, device=x.device, dtype=torch.float32) / half)
    args = x.float()[:, None] * freqs[None, :] * 1000.0
    return torch.cat([args.sin(), args.cos()], dim=1)
