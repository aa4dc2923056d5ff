"""Building blocks shared by the diffusion networks: noise embedding, AdaLN modulation, dynamic
positional bias, rotary embedding and self-attention with depthwise convolutions after Q, K, V.

Sequence tensors inside the blocks are channels-last ``[B, T, C]`` (T latent frames).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError, InputError


class SinusoidalEmbedding(nn.Module):
    """Sinusoidal features of a scalar per sample: ``[B] -> [B, dim]``.

    Angular frequencies are geometric from 1 to ``max_freq`` so that EDM's c_noise = ln(sigma)/4
    (about -1.6 .. 1.1 for sigma in [0.002, 80]) is resolved finely and coarsely at once.
    """

    def __init__(self, dim: int = 512, max_freq: float = 1000.0):
        super().__init__()
        if dim % 2:
            raise ConfigError(f"sinusoidal embedding dim must be even, got {dim}")
        freqs = torch.exp(torch.linspace(0.0, math.log(max_freq), dim // 2))
        self.register_buffer("freqs", freqs, persistent=False)

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        ang = t.float().reshape(-1, 1) * self.freqs.reshape(1, -1)
        return torch.cat([ang.cos(), ang.sin()], dim=1)


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """AdaLN modulation of ``x`` [B, T, C] by per-sample ``shift``, ``scale`` [B, C]."""
    return x * (1 + scale.unsqueeze(1)) + shift.unsqueeze(1)


class AdaLNZero(nn.Module):
    """SiLU -> Linear(cond_dim, n * width), zero-initialised (AdaLN-Zero): returns ``n`` tensors
    [B, width] (shifts, scales, gates) from the conditioning vector [B, cond_dim]."""

    def __init__(self, cond_dim: int, width: int, n: int):
        super().__init__()
        self.n = n
        self.proj = nn.Linear(cond_dim, n * width)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, cond: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return self.proj(F.silu(cond)).chunk(self.n, dim=1)


class DynamicPositionBias(nn.Module):
    """Per-head attention bias b(i - j) = MLP(i - j) (Linear(1,d) -> SiLU -> Linear(d,d) -> SiLU ->
    Linear(d,heads)), evaluated on the 2T-1 distinct offsets, so it works for any length T.

    With ``log_distance`` the MLP input is sign(i-j) * ln(1 + |i-j|): offsets far beyond the training
    window map to inputs only slightly beyond the trained range, which helps extrapolation to long
    sequences (as in Swin-v2's log-spaced continuous position bias).
    """

    def __init__(self, dim: int, heads: int, log_distance: bool = True):
        super().__init__()
        self.log_distance = log_distance
        self.mlp = nn.Sequential(
            nn.Linear(1, dim), nn.SiLU(), nn.Linear(dim, dim), nn.SiLU(), nn.Linear(dim, heads)
        )

    def forward(self, t: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        """Bias [heads, T, T] for a sequence of ``t`` frames."""
        rel = torch.arange(-(t - 1), t, device=device, dtype=torch.float32)
        if self.log_distance:
            rel = rel.sign() * torch.log1p(rel.abs())
        table = self.mlp(rel.unsqueeze(1).to(self.mlp[0].weight.dtype))  # [2T-1, heads]
        idx = torch.arange(t, device=device)
        offsets = idx.unsqueeze(1) - idx.unsqueeze(0) + (t - 1)  # [T, T], i - j shifted to >= 0
        return table[offsets].permute(2, 0, 1).to(dtype)


class RotaryEmbedding(nn.Module):
    """Rotary position embedding (Su et al.) for heads of size ``head_dim`` (even)."""

    def __init__(self, head_dim: int, base: float = 10000.0):
        super().__init__()
        if head_dim % 2:
            raise ConfigError(f"rotary embedding needs an even head dim, got {head_dim}")
        inv = 1.0 / base ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim)
        self.register_buffer("inv_freq", inv, persistent=False)

    def forward(self, q: torch.Tensor, k: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Rotate ``q``, ``k`` [B, heads, T, head_dim] by their positions."""
        t = q.shape[-2]
        ang = torch.arange(t, device=q.device, dtype=torch.float32).unsqueeze(1) * self.inv_freq
        cos, sin = ang.cos().to(q.dtype), ang.sin().to(q.dtype)
        return _rotate(q, cos, sin), _rotate(k, cos, sin)


def _rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    x1, x2 = x[..., 0::2], x[..., 1::2]
    out = torch.stack([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)
    return out.flatten(-2)


class Attention(nn.Module):
    """Multi-head self-attention over frames with a depthwise 1-D convolution (kernel
    ``dwconv_kernel``, 'same' padding) after each of the Q, K, V projections (Primer) and a
    positional scheme ``pos`` in {"dpb", "rope", "none"}. ``[B, T, C] -> [B, T, C]``."""

    def __init__(
        self, width: int, heads: int, dwconv_kernel: int = 3, pos: str = "dpb", dpb_dim: int = 64,
        dpb_log_distance: bool = True,
    ):
        super().__init__()
        if width % heads:
            raise ConfigError(f"width {width} is not divisible by heads {heads}")
        if pos not in ("dpb", "rope", "none"):
            raise ConfigError(f"pos must be 'dpb', 'rope' or 'none', got '{pos}'")
        if dwconv_kernel < 0 or (dwconv_kernel > 0 and dwconv_kernel % 2 == 0):
            raise ConfigError(f"dwconv_kernel must be 0 (off) or odd, got {dwconv_kernel}")
        self.heads = heads
        self.qkv = nn.Linear(width, 3 * width)
        self.dwconv = (
            nn.Conv1d(3 * width, 3 * width, dwconv_kernel, padding=dwconv_kernel // 2, groups=3 * width)
            if dwconv_kernel > 0
            else None
        )
        self.out = nn.Linear(width, width)
        self.pos = pos
        self.dpb = DynamicPositionBias(dpb_dim, heads, dpb_log_distance) if pos == "dpb" else None
        self.rope = RotaryEmbedding(width // heads) if pos == "rope" else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, c = x.shape
        qkv = self.qkv(x)
        if self.dwconv is not None:
            qkv = self.dwconv(qkv.transpose(1, 2)).transpose(1, 2)
        q, k, v = qkv.reshape(b, t, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        bias = None
        if self.rope is not None:
            q, k = self.rope(q, k)
        elif self.dpb is not None:
            bias = self.dpb(t, x.device, q.dtype).unsqueeze(0)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
        return self.out(y.transpose(1, 2).reshape(b, t, c))


class ConditionEmbedding(nn.Module):
    """The global conditioning vector [B, cond_dim] from the noise level and the CLAP embedding.

    noise: 512-d sinusoidal embedding of c_noise -> MLP; CLAP [B, clap_dim] -> MLP; summed. Absent or
    dropped CLAP uses a learned null embedding (per sample via ``drop_clap`` [B] bool).
    """

    def __init__(self, cond_dim: int, clap_dim: int, noise_emb_dim: int = 512):
        super().__init__()
        self.noise_emb = SinusoidalEmbedding(noise_emb_dim)
        self.noise_mlp = nn.Sequential(nn.Linear(noise_emb_dim, cond_dim), nn.SiLU(), nn.Linear(cond_dim, cond_dim))
        self.clap_mlp = nn.Sequential(nn.Linear(clap_dim, cond_dim), nn.SiLU(), nn.Linear(cond_dim, cond_dim))
        self.null_clap = nn.Parameter(torch.randn(clap_dim) / math.sqrt(clap_dim))
        self.clap_dim = clap_dim

    def forward(
        self, c_noise: torch.Tensor, clap: torch.Tensor | None, drop_clap: torch.Tensor | None, batch: int
    ) -> torch.Tensor:
        if c_noise.ndim == 0:
            c_noise = c_noise.expand(batch)
        emb = self.noise_mlp(self.noise_emb(c_noise).to(self.null_clap.dtype))
        null = self.null_clap.unsqueeze(0).expand(batch, -1)
        if clap is None:
            e = null
        else:
            if clap.shape != (batch, self.clap_dim):
                raise InputError(f"clap must have shape [{batch}, {self.clap_dim}], got {list(clap.shape)}")
            e = clap.to(null.dtype)
            if drop_clap is not None:
                e = torch.where(drop_clap.reshape(-1, 1).bool(), null, e)
        return emb + self.clap_mlp(e)


class ContextInput(nn.Module):
    """Concatenates the context latents to the noisy input along channels:
    ``x [B, C, T], context [B, Cc, T] | None -> [B, C + Cc + 1, T]``.

    An absent (None) or per-sample dropped (``drop_context`` [B] bool) context is replaced by a
    learned null vector [Cc] repeated over time, and an extra indicator channel (1 = context present,
    0 = absent) is appended. The indicator makes "no context" unambiguous from the first step (a
    learned null alone starts equal to some real latent value, e.g. that of silence); the learned
    null lets the network place the filler where it disturbs least.
    """

    def __init__(self, context_channels: int):
        super().__init__()
        self.context_channels = context_channels
        self.null_context = nn.Parameter(torch.zeros(context_channels))

    def forward(
        self, x: torch.Tensor, context: torch.Tensor | None, drop_context: torch.Tensor | None
    ) -> torch.Tensor:
        b, _, t = x.shape
        null = self.null_context.to(x.dtype).reshape(1, -1, 1).expand(b, -1, t)
        present = torch.ones(b, 1, 1, dtype=x.dtype, device=x.device)
        if context is None:
            ctx, present = null, torch.zeros_like(present)
        else:
            if context.shape != (b, self.context_channels, t):
                raise InputError(
                    f"context must have shape [{b}, {self.context_channels}, {t}], got {list(context.shape)}"
                )
            ctx = context.to(x.dtype)
            if drop_context is not None:
                drop = drop_context.reshape(b, 1, 1).bool()
                ctx = torch.where(drop, null, ctx)
                present = (~drop).to(x.dtype)
        return torch.cat([x, ctx, present.expand(b, 1, t)], dim=1)
