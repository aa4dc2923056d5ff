"""Codec encoding of a long context without a whole-length copy of it.

``Codec.encode`` lays the whole signal out first (the mono or mid/side mix, then a padded copy: two
more float32 copies of the context) before encoding it chunk by chunk. :func:`encode_long` slices the
caller's array chunk by chunk instead (each chunk with its context frames, as
:func:`diffariff.codec.chunking.chunked_encode` cuts them) and lays out only the slice; channel
mixing is per sample and the padding only touches the last chunk, so the latents equal
``codec.encode(audio)`` exactly.
"""

from __future__ import annotations

import numpy as np
import torch

from ..audio_spool import is_spooled
from ..codec.chunking import plan_chunks


@torch.no_grad()
def encode_long(codec, audio: np.ndarray) -> torch.Tensor:
    """Audio float32 ``[C, N]`` at 48 kHz (an array or a :class:`~diffariff.audio_spool.SpooledAudio`)
    -> latents ``[1, 64, ceil(N / 4096)]``, equal to ``codec.encode(audio[None])``; at most one chunk
    (20 s + context) is laid out at a time. Codecs without chunked encoding are called whole."""
    arr = audio if is_spooled(audio) else np.asarray(audio, dtype=np.float32)
    if not hasattr(codec, "chunk_frames") or not hasattr(codec, "prepare_audio"):
        return codec.encode(torch.as_tensor(np.asarray(arr, dtype=np.float32))[None])
    spf = int(codec.config.samples_per_frame)
    total = -(-arr.shape[-1] // spf)
    chunk = codec.chunk_frames()
    if total <= chunk:
        return codec.encode(torch.as_tensor(np.asarray(arr, dtype=np.float32))[None])
    parts = []
    for a, s, e, b in plan_chunks(total, chunk, int(codec.config.chunk_context_frames)):
        piece = torch.as_tensor(np.ascontiguousarray(arr[:, a * spf: b * spf]))[None]
        x, _ = codec.prepare_audio(piece)  # pads only the last piece, as the whole signal's padding
        parts.append(codec.encode_prepared(x).float()[..., s - a: e - a])
    return torch.cat(parts, dim=-1)
