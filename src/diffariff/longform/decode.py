"""Codec decoding as a stream of audio blocks, bit-identical to one whole decode.

``Codec.decode`` already decodes long latents chunk by chunk (:mod:`diffariff.codec.chunking`), but it
adds every chunk into one output tensor of the whole length, and the pipeline then holds two mono
decodings, their pseudo-stereo mix and its numpy copy: four to six float32 copies of the stem. Here the
same chunks are decoded in the same order with the same position-keyed noise and crossfade weights,
but each output sample is handed on as soon as no later chunk overlaps it; only the running overlap
(one chunk plus its context) is held. Concatenating the blocks gives exactly
:meth:`diffariff.pipeline.Accompanist.decode`'s array (tests compare them bit for bit).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from ..codec.chunking import _fade_weights, plan_chunks
from ..codec.stereo import from_midside, pseudo_stereo
from ..errors import InputError


def _mono_stream(codec, latents: torch.Tensor, steps: int, seed: int, mode: str,
                 chunk_seconds: float | None = None, semitones: list[int] | None = None) -> Iterator[torch.Tensor]:
    """One decoding of ``latents`` [B, 64, T] as consecutive blocks [B, A, L] (A codec audio channels;
    all blocks together: [B, A, 4096 T]), equal to ``codec.decode(latents, steps, seed, mode)``
    (midside not yet converted to L/R)."""
    spf = int(codec.config.samples_per_frame)
    total = latents.shape[-1]
    chunk = codec.chunk_frames(chunk_seconds)
    context = int(codec.config.chunk_context_frames)

    def dec(z: torch.Tensor, first: int) -> torch.Tensor:
        shift = {} if semitones is None else {"semitones": semitones}
        return codec.decode_chunk(z, first, steps=int(steps), seed=int(seed), mode=mode, **shift)

    if total <= chunk:
        yield dec(latents, 0)
        return
    fade = min(context, chunk)
    plan = plan_chunks(total, chunk, context)
    acc: torch.Tensor | None = None  # running sum over samples [acc_start, ...)
    acc_start = 0
    for k, (a, s, e, b) in enumerate(plan):
        y = dec(latents[..., a:b], a)
        w = _fade_weights(a, s, e, b, total, spf, fade).to(y.dtype)
        lo, hi = a * spf, b * spf
        if acc is None:
            acc = torch.zeros(*y.shape[:-1], hi - acc_start, dtype=y.dtype)
        elif hi - acc_start > acc.shape[-1]:
            grow = torch.zeros(*acc.shape[:-1], hi - acc_start - acc.shape[-1], dtype=acc.dtype)
            acc = torch.cat([acc, grow], dim=-1)
        acc[..., lo - acc_start: hi - acc_start] += y * w
        final = plan[k + 1][0] * spf if k + 1 < len(plan) else total * spf  # no later chunk reaches below
        if final > acc_start:
            yield acc[..., : final - acc_start].clone()
            acc = acc[..., final - acc_start:].clone()
            acc_start = final


@torch.no_grad()
def decode_blocks(codec, latents: torch.Tensor, length: int, *, width: float = 0.4, seed: int = 0, steps: int = 1,
                  mode: str = "consistency", chunk_seconds: float | None = None,
                  semitones: list[int] | None = None) -> Iterator[np.ndarray]:
    """Codec latents [B, 64, T] -> consecutive float32 blocks [B, 2, L] of the stereo stem, ``length``
    samples in all (48 kHz): the blocks of :meth:`diffariff.pipeline.Accompanist.decode` with the same
    arguments (pseudo-stereo of two decodings, seeds ``seed`` and ``seed + 1``, from a mono codec; true
    stereo from a midside codec; ``mode="deterministic"``: the codec's deterministic head). A block is
    about one codec chunk (20 s by default). ``semitones``: per stem, as in ``Accompanist.decode``."""
    if not 0.0 <= float(width) <= 1.0:
        raise InputError(f"stereo width must be between 0 and 1, got {width}")
    if mode not in ("consistency", "deterministic"):
        raise InputError(f"decode mode must be 'consistency' or 'deterministic', got '{mode}'")
    if latents.dim() != 3 or latents.shape[-1] == 0 or not torch.isfinite(latents).all():
        raise InputError(f"latents must be finite and shaped [B, 64, T>0], got {tuple(latents.shape)}")
    latents = latents.float()
    stereo = codec.config.stereo
    pseudo = stereo == "mono" and mode == "consistency"
    first = _mono_stream(codec, latents, steps, seed, mode, chunk_seconds, semitones)
    second = _mono_stream(codec, latents, steps, seed + 1, mode, chunk_seconds, semitones) if pseudo else None
    done = 0
    for y in first:
        if second is not None:
            y = pseudo_stereo(y, next(second), float(width))
        elif stereo == "midside":
            y = from_midside(y)
        if y.shape[1] == 1:
            y = y.repeat(1, 2, 1)
        y = y[..., : max(0, int(length) - done)]
        done += y.shape[-1]
        if y.shape[-1]:
            yield y.detach().float().numpy()
