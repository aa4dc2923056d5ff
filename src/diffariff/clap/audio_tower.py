"""The CLAP audio tower: log-mel spectrogram -> small 2-D ResNet -> frequency-aware pooling.

Input is mono audio ``[B, N]`` at the tower's internal rate (``frontend_rate`` Hz, 24 kHz by
default; :class:`~diffariff.clap.builtin.BuiltinClap` resamples 48 kHz input to it). The front end is
a fixed STFT + mel filterbank (``hop`` samples per frame, 10 ms by default); the ResNet halves the
frequency and time axes per stage with GroupNorm (per-example, so results do not depend on what
else is in the batch). The last feature map ``[B, C, F', T']`` keeps its frequency axis: it is
flattened to ``[B, C*F', T']`` and mixed by a 1x1 convolution before mean + max pooling over time,
so the pooled vector knows *where* in the spectrum each feature fired (timbre and register matter
here). Any clip length works; the output is one un-normalised feature vector ``[B, pool_dim*2]``.
"""

from __future__ import annotations

import math

import librosa
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int, f_min: float, f_max: float) -> torch.Tensor:
    """Triangular mel filters ``[n_mels, n_fft // 2 + 1]`` (area-normalised, HTK mel scale; librosa's)."""
    fb = librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=n_mels, fmin=f_min, fmax=f_max, htk=True,
                             norm="slaney", dtype=np.float64)
    return torch.from_numpy(fb).to(torch.float32)


class LogMel(nn.Module):
    """Mono audio ``[B, N]`` (float32, ``sample_rate`` Hz) -> log-mel ``[B, n_mels, N // hop + 1]``.

    Always computed in float32 (also under autocast). Clips shorter than ``n_fft`` samples are
    zero-padded to ``n_fft``.
    """

    def __init__(self, sample_rate: int, n_fft: int, hop: int, n_mels: int, f_min: float, f_max: float):
        super().__init__()
        self.n_fft = int(n_fft)
        self.hop = int(hop)
        self.register_buffer("window", torch.hann_window(self.n_fft), persistent=False)
        self.register_buffer("fbank", mel_filterbank(sample_rate, n_fft, n_mels, f_min, f_max), persistent=False)

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device_type=audio.device.type, enabled=False):
            x = audio.float()
            if x.shape[-1] < self.n_fft:
                x = F.pad(x, (0, self.n_fft - x.shape[-1]))
            spec = torch.stft(x, self.n_fft, self.hop, window=self.window, center=True, pad_mode="reflect",
                              return_complex=True)
            power = spec.real.square() + spec.imag.square()
            mel = torch.matmul(self.fbank, power)
            # log compression with a floor ~ -100 dB re. full scale, scaled to roughly unit range
            return (torch.log(mel + 1e-6) + 6.0) / 4.0


class ResBlock2d(nn.Module):
    """Two 3x3 convolutions with GroupNorm + GELU and a (strided) shortcut: ``[B, cin, F, T] -> [B, cout, F/s, T/s]``."""

    def __init__(self, cin: int, cout: int, stride: int, groups: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.norm1 = nn.GroupNorm(math.gcd(groups, cout), cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.norm2 = nn.GroupNorm(math.gcd(groups, cout), cout)
        self.skip = (
            nn.Identity() if (cin == cout and stride == 1) else nn.Conv2d(cin, cout, 1, stride=stride, bias=False)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.gelu(self.norm1(self.conv1(x)))
        h = self.norm2(self.conv2(h))
        return F.gelu(h + self.skip(x))


class AudioTower(nn.Module):
    """Mono audio ``[B, N]`` at ``sample_rate`` Hz -> pooled features ``[B, 2 * pool_dim]``.

    Args:
        sample_rate: internal rate of the tower (Hz).
        n_fft, hop: STFT size and hop (samples); n_mels, f_min, f_max: mel filterbank (Hz).
        channels: width of each ResNet stage; every stage halves frequency and time.
        blocks: residual blocks per stage (the first one strides).
        stem_stride: (freq, time) stride of the first convolution.
        pool_dim: width of the frequency-aware feature mixer before pooling.
        groups: GroupNorm groups.
    """

    def __init__(
        self,
        sample_rate: int,
        n_fft: int,
        hop: int,
        n_mels: int,
        f_min: float,
        f_max: float,
        channels: tuple[int, ...],
        blocks: int,
        stem_stride: tuple[int, int],
        pool_dim: int,
        groups: int,
    ):
        super().__init__()
        self.logmel = LogMel(sample_rate, n_fft, hop, n_mels, f_min, f_max)
        c0 = channels[0]
        self.stem = nn.Sequential(
            nn.Conv2d(1, c0, 3, stride=tuple(stem_stride), padding=1, bias=False),
            nn.GroupNorm(math.gcd(groups, c0), c0),
            nn.GELU(),
        )
        stages = []
        cin = c0
        for c in channels:
            for b in range(blocks):
                stages.append(ResBlock2d(cin, c, stride=2 if b == 0 else 1, groups=groups))
                cin = c
        self.stages = nn.Sequential(*stages)
        f = (n_mels - 1) // int(stem_stride[0]) + 1  # 3x3 convolutions with padding 1
        for _ in channels:
            f = (f - 1) // 2 + 1
        self.freq_bins = f
        self.mix = nn.Conv1d(cin * f, pool_dim, 1)
        self.out_dim = 2 * pool_dim

    def features(self, audio: torch.Tensor) -> torch.Tensor:
        """Audio ``[B, N]`` -> feature map ``[B, C, F', T']`` (for inspection)."""
        x = self.logmel(audio).unsqueeze(1)
        return self.stages(self.stem(x))

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        h = self.features(audio)
        h = F.gelu(self.mix(h.flatten(1, 2)))  # [B, pool_dim, T']
        return torch.cat([h.mean(dim=-1), h.amax(dim=-1)], dim=-1)


class ProjectionHead(nn.Module):
    """``[B, din] -> [B, dout]`` two-layer MLP (Linear, GELU, Linear) with a linear shortcut; not normalised."""

    def __init__(self, din: int, hidden: int, dout: int):
        super().__init__()
        self.fc1 = nn.Linear(din, hidden)
        self.fc2 = nn.Linear(hidden, dout)
        self.short = nn.Linear(din, dout, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x))) + self.short(x)
