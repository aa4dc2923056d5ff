"""1-D U-Net over latent frames in the DDPM++ spirit (Diff-A-Riff's latent model): residual blocks
with adaptive group norm driven by the noise + CLAP conditioning vector, x2 down/up-sampling per
level, self-attention at the coarse levels, skip connections between mirrored levels. Odd or
non-divisible lengths are padded internally (replicate) and cropped back.

``forward(x [B, 64, T], c_noise [B], context [B, 64, T] | None, clap [B, D] | None,
drop_context [B] bool | None, drop_clap [B] bool | None) -> [B, 64, T]``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError, InputError
from .layers import ConditionEmbedding, ContextInput


@dataclass
class UNetConfig:
    """U-Net hyper-parameters. ``channel_mults[i]`` x ``base_channels`` channels at level i (level i
    runs at T / 2^i frames); ``attn_levels`` lists the levels with self-attention. The defaults are
    the paper-size model (~410 M params; Diff-A-Riff reports ~430 M)."""

    base_channels: int = 416
    channel_mults: tuple[int, ...] = (1, 2, 3, 4)
    num_res_blocks: int = 2
    attn_levels: tuple[int, ...] = (2, 3)
    heads: int = 8
    clap_dim: int = 512
    latent_channels: int = 64
    context_channels: int = 64
    cond_dim: int = 512
    noise_emb_dim: int = 512
    groups: int = 32
    dropout: float = 0.0
    kernel_size: int = 3

    def __post_init__(self) -> None:
        self.channel_mults = tuple(int(m) for m in self.channel_mults)
        self.attn_levels = tuple(int(a) for a in self.attn_levels)
        if not self.channel_mults or min(self.channel_mults) < 1:
            raise ConfigError(f"UNetConfig.channel_mults must be positive, got {self.channel_mults}")
        for m in self.channel_mults:
            c = m * self.base_channels
            if c % self.groups or c % self.heads:
                raise ConfigError(f"UNetConfig: {c} channels not divisible by groups {self.groups} / heads {self.heads}")
        if any(a < 0 or a >= len(self.channel_mults) for a in self.attn_levels):
            raise ConfigError(f"UNetConfig.attn_levels {self.attn_levels} outside 0..{len(self.channel_mults) - 1}")
        if self.kernel_size % 2 == 0 or self.num_res_blocks < 1:
            raise ConfigError("UNetConfig: kernel_size must be odd and num_res_blocks >= 1")


class ResBlock(nn.Module):
    """GN -> SiLU -> Conv -> adaptive GN (scale, shift from cond) -> SiLU -> Dropout -> Conv (zero
    init), plus a 1x1 skip when channels change; output scaled by 1/sqrt(2). [B, Cin, T] -> [B, Cout, T]."""

    def __init__(self, cin: int, cout: int, cfg: UNetConfig):
        super().__init__()
        k = cfg.kernel_size
        self.norm1 = nn.GroupNorm(cfg.groups, cin)
        self.conv1 = nn.Conv1d(cin, cout, k, padding=k // 2)
        self.emb = nn.Linear(cfg.cond_dim, 2 * cout)
        self.norm2 = nn.GroupNorm(cfg.groups, cout, affine=False)
        self.drop = nn.Dropout(cfg.dropout)
        self.conv2 = nn.Conv1d(cout, cout, k, padding=k // 2)
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv2.bias)
        self.skip = nn.Conv1d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        scale, shift = self.emb(F.silu(cond)).unsqueeze(-1).chunk(2, dim=1)
        h = self.norm2(h) * (1 + scale) + shift
        h = self.conv2(self.drop(F.silu(h)))
        return (self.skip(x) + h) / math.sqrt(2)


class AttnBlock(nn.Module):
    """GN -> multi-head self-attention over frames -> 1x1 projection (zero init), residual."""

    def __init__(self, channels: int, heads: int, groups: int):
        super().__init__()
        self.heads = heads
        self.norm = nn.GroupNorm(groups, channels)
        self.qkv = nn.Conv1d(channels, 3 * channels, 1)
        self.proj = nn.Conv1d(channels, channels, 1)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, t = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(b, 3, self.heads, c // self.heads, t).transpose(-1, -2).unbind(1)
        y = F.scaled_dot_product_attention(q, k, v)  # [B, heads, T, c/heads]
        return (x + self.proj(y.transpose(-1, -2).reshape(b, c, t))) / math.sqrt(2)


class Level(nn.Module):
    """Residual blocks (each optionally followed by attention) at one resolution."""

    def __init__(self, channels_in: list[int], cout: int, attn: bool, cfg: UNetConfig):
        super().__init__()
        self.res = nn.ModuleList([ResBlock(cin, cout, cfg) for cin in channels_in])
        self.attn = nn.ModuleList([AttnBlock(cout, cfg.heads, cfg.groups) if attn else nn.Identity() for _ in channels_in])


class UNet1d(nn.Module):
    """The 1-D U-Net network F (see module doc for the signature)."""

    def __init__(self, config: UNetConfig):
        super().__init__()
        self.config = cfg = config
        chans = [m * cfg.base_channels for m in cfg.channel_mults]
        self.context_in = ContextInput(cfg.context_channels)
        self.cond = ConditionEmbedding(cfg.cond_dim, cfg.clap_dim, cfg.noise_emb_dim)
        self.conv_in = nn.Conv1d(cfg.latent_channels + cfg.context_channels + 1, chans[0], 3, padding=1)
        self.down = nn.ModuleList()
        self.downsample = nn.ModuleList()
        skips = [chans[0]]
        c = chans[0]
        for i, ch in enumerate(chans):
            ins = [c] + [ch] * (cfg.num_res_blocks - 1)
            self.down.append(Level(ins, ch, i in cfg.attn_levels, cfg))
            c = ch
            skips += [ch] * cfg.num_res_blocks
            if i < len(chans) - 1:
                self.downsample.append(nn.Conv1d(c, c, 3, stride=2, padding=1))
                skips.append(c)
        self.mid1 = ResBlock(c, c, cfg)
        self.mid_attn = AttnBlock(c, cfg.heads, cfg.groups)
        self.mid2 = ResBlock(c, c, cfg)
        self.up = nn.ModuleList()
        self.upsample = nn.ModuleList()
        for i in reversed(range(len(chans))):
            ch = chans[i]
            ins = []
            for _ in range(cfg.num_res_blocks + 1):
                ins.append(c + skips.pop())
                c = ch
            self.up.append(Level(ins, ch, i in cfg.attn_levels, cfg))
            if i > 0:
                self.upsample.append(nn.Conv1d(c, c, 3, padding=1))
        self.norm_out = nn.GroupNorm(cfg.groups, c)
        self.conv_out = nn.Conv1d(c, cfg.latent_channels, 3, padding=1)
        nn.init.zeros_(self.conv_out.weight)
        nn.init.zeros_(self.conv_out.bias)

    @property
    def multiple(self) -> int:
        """Internal lengths must be a multiple of this (2^(levels-1))."""
        return 2 ** (len(self.config.channel_mults) - 1)

    def forward(
        self,
        x: torch.Tensor,
        c_noise: torch.Tensor,
        context: torch.Tensor | None = None,
        clap: torch.Tensor | None = None,
        drop_context: torch.Tensor | None = None,
        drop_clap: torch.Tensor | None = None,
    ) -> torch.Tensor:
        if x.ndim != 3 or x.shape[1] != self.config.latent_channels or x.shape[2] < 1:
            raise InputError(f"UNet input must be [B, {self.config.latent_channels}, T>=1], got {list(x.shape)}")
        b, _, t = x.shape
        cond = self.cond(c_noise, clap, drop_clap, b)
        h = self.context_in(x, context, drop_context)
        pad = (-t) % self.multiple
        if pad:
            h = F.pad(h, (0, pad), mode="replicate")
        h = self.conv_in(h)
        hs = [h]
        for i, level in enumerate(self.down):
            for res, attn in zip(level.res, level.attn):
                h = attn(res(h, cond))
                hs.append(h)
            if i < len(self.downsample):
                h = self.downsample[i](h)
                hs.append(h)
        h = self.mid2(self.mid_attn(self.mid1(h, cond)), cond)
        for j, level in enumerate(self.up):
            for res, attn in zip(level.res, level.attn):
                h = attn(res(torch.cat([h, hs.pop()], dim=1), cond))
            if j < len(self.upsample):
                h = self.upsample[j](F.interpolate(h, scale_factor=2.0, mode="nearest"))
        h = self.conv_out(F.silu(self.norm_out(h)))
        return h[..., :t]
