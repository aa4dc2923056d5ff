"""Channel layouts of the codec.

* **True stereo** (``CodecConfig.stereo = "midside"``, the Music2Latent2 idea): both channels go into the
  same 64-channel latent as four spectrogram channels (re/im of mid, re/im of side). Mid/side rather
  than L/R because for music mid carries most of the energy and side is small and often near zero: the
  network sees one dominant and one small, largely uncorrelated signal instead of two near-copies,
  a mono input is simply side = 0, and an error in side never changes the mono fold-down.
  ``mid = (L + R) / 2``, ``side = (L - R) / 2``; ``L = mid + side``, ``R = mid - side``.
* **Pseudo-stereo** (Diff-A-Riff) from a mono codec: decode the same latent twice with different noise,
  ``d1`` and ``d2``; with width ``w`` in [0, 1]:
  ``mid = (d1 + d2) / 2``, ``side = w (d1 - d2) / 2``, ``L = mid + side``, ``R = mid - side``.
  w = 0 gives L = R = mid (identical channels); w = 1 gives L = d1, R = d2.
"""

from __future__ import annotations

import torch

from ..errors import InputError


def to_midside(audio: torch.Tensor) -> torch.Tensor:
    """``[B, 1 or 2, N]`` L/R -> ``[B, 2, N]`` mid/side (mono: side = 0)."""
    if audio.shape[1] == 1:
        return torch.cat([audio, torch.zeros_like(audio)], dim=1)
    left, right = audio[:, 0:1], audio[:, 1:2]
    return torch.cat([(left + right) / 2, (left - right) / 2], dim=1)


def from_midside(ms: torch.Tensor) -> torch.Tensor:
    """``[B, 2, N]`` mid/side -> ``[B, 2, N]`` L/R."""
    mid, side = ms[:, 0:1], ms[:, 1:2]
    return torch.cat([mid + side, mid - side], dim=1)


def pseudo_stereo(d1: torch.Tensor, d2: torch.Tensor, width: float) -> torch.Tensor:
    """Two mono decodings ``[B, 1, N]`` -> stereo ``[B, 2, N]`` of width ``width`` in [0, 1] (formula above)."""
    if not 0.0 <= float(width) <= 1.0:
        raise InputError(f"stereo width must be between 0 and 1, got {width}")
    mid = (d1 + d2) / 2
    side = float(width) * (d1 - d2) / 2
    return torch.cat([mid + side, mid - side], dim=1)
