"""Shared pieces of the codec tests: a tiny codec config (real networks, seconds to run)."""

from __future__ import annotations

import numpy as np
import torch

from diffariff.codec import Codec, CodecConfig

TINY = dict(freq_patch=8, enc_channels=(8, 16, 16, 32), dec_channels=(8, 16, 16, 32),
            unet_channels=(8, 16, 16, 32), attn_heads=4, noise_embed_dim=32, chunk_seconds=2.0,
            chunk_context_frames=4)


def tiny_codec(seed: int = 0, **overrides) -> Codec:
    """A tiny codec whose U-Net output layer is randomised (as after training), so consistency decoding
    really depends on the noise."""
    torch.manual_seed(seed)
    codec = Codec(CodecConfig(**{**TINY, **overrides}))
    with torch.no_grad():
        codec.unet.head.conv.weight.normal_(0, 0.02)
    return codec.eval()


def as_batch(audio: np.ndarray, mono: bool = True) -> torch.Tensor:
    """``[2, N]`` numpy -> ``[1, 1 or 2, N]`` tensor."""
    x = torch.from_numpy(audio)
    return (x.mean(0, keepdim=True) if mono else x).unsqueeze(0)
