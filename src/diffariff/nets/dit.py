"""Diffusion Transformer over latent frames (Improved Diff-A-Riff): no patching (one token per
latent frame), AdaLN-Zero blocks modulated by the noise + CLAP conditioning vector, self-attention
with depthwise convolutions after Q, K, V and a choice of positional scheme (dynamic positional
bias, rotary, none). Runs on any sequence length T.

``forward(x [B, 64, T], c_noise [B], context [B, 64, T] | None, clap [B, D] | None,
drop_context [B] bool | None, drop_clap [B] bool | None) -> [B, 64, T]``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..errors import ConfigError, InputError
from .layers import AdaLNZero, Attention, ConditionEmbedding, ContextInput, modulate


@dataclass
class DiTConfig:
    """DiT hyper-parameters. The paper model is width 1024, depth 18, heads 4 (~280 M params);
    ``cond_dim`` is the size of the AdaLN conditioning vector (512 as the noise embedding)."""

    width: int = 1024
    depth: int = 18
    heads: int = 4
    mlp_ratio: float = 4.0
    clap_dim: int = 512
    latent_channels: int = 64
    context_channels: int = 64
    cond_dim: int = 512
    noise_emb_dim: int = 512
    pos: str = "dpb"
    qkv_dwconv_kernel: int = 3
    dpb_dim: int = 64
    dpb_log_distance: bool = True  # MLP input sign(i-j) ln(1+|i-j|); False: raw i-j as in the bass paper

    def __post_init__(self) -> None:
        for name in ("width", "depth", "heads", "clap_dim", "latent_channels", "cond_dim", "noise_emb_dim"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"DiTConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.width % self.heads:
            raise ConfigError(f"DiTConfig.width {self.width} is not divisible by heads {self.heads}")
        if self.pos not in ("dpb", "rope", "none"):
            raise ConfigError(f"DiTConfig.pos must be 'dpb', 'rope' or 'none', got '{self.pos}'")
        if self.mlp_ratio <= 0:
            raise ConfigError(f"DiTConfig.mlp_ratio must be > 0, got {self.mlp_ratio}")


class DiTBlock(nn.Module):
    """Pre-norm transformer block with AdaLN-Zero (shift, scale, gate for attention and MLP)."""

    #: the chunks of the AdaLN projection's output, in the order forward() unpacks them
    ADA_CHUNKS = ("shift1", "scale1", "gate1", "shift2", "scale2", "gate2")

    def __init__(self, cfg: DiTConfig):
        super().__init__()
        w = cfg.width
        self.norm1 = nn.LayerNorm(w, elementwise_affine=False, eps=1e-6)
        self.attn = Attention(w, cfg.heads, cfg.qkv_dwconv_kernel, cfg.pos, cfg.dpb_dim, cfg.dpb_log_distance)
        self.norm2 = nn.LayerNorm(w, elementwise_affine=False, eps=1e-6)
        hidden = int(w * cfg.mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(w, hidden), nn.GELU(approximate="tanh"), nn.Linear(hidden, w))
        self.ada = AdaLNZero(cfg.cond_dim, w, len(self.ADA_CHUNKS))

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        sh1, sc1, g1, sh2, sc2, g2 = self.ada(cond)
        x = x + g1.unsqueeze(1) * self.attn(modulate(self.norm1(x), sh1, sc1))
        x = x + g2.unsqueeze(1) * self.mlp(modulate(self.norm2(x), sh2, sc2))
        return x


class DiT(nn.Module):
    """The DiT network F of the EDM/consistency denoisers (see module doc for the signature)."""

    def __init__(self, config: DiTConfig):
        super().__init__()
        self.config = cfg = config
        self.context_in = ContextInput(cfg.context_channels)
        self.cond = ConditionEmbedding(cfg.cond_dim, cfg.clap_dim, cfg.noise_emb_dim)
        self.proj_in = nn.Linear(cfg.latent_channels + cfg.context_channels + 1, cfg.width)
        self.blocks = nn.ModuleList([DiTBlock(cfg) for _ in range(cfg.depth)])
        self.norm_out = nn.LayerNorm(cfg.width, elementwise_affine=False, eps=1e-6)
        self.ada_out = AdaLNZero(cfg.cond_dim, cfg.width, 2)
        self.proj_out = nn.Linear(cfg.width, cfg.latent_channels)
        nn.init.zeros_(self.proj_out.weight)
        nn.init.zeros_(self.proj_out.bias)

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
            raise InputError(
                f"DiT input must be [B, {self.config.latent_channels}, T>=1], got {list(x.shape)}"
            )
        b = x.shape[0]
        cond = self.cond(c_noise, clap, drop_clap, b)
        h = self.proj_in(self.context_in(x, context, drop_context).transpose(1, 2))
        for block in self.blocks:
            h = block(h, cond)
        shift, scale = self.ada_out(cond)
        h = modulate(self.norm_out(h), shift, scale)
        return self.proj_out(h).transpose(1, 2)
