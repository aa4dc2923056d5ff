"""Chunked processing of long audio with bounded memory.

Both directions split the signal on latent-frame boundaries (4096 samples) into cores of
``chunk_frames`` latent frames, and process each core with ``context`` extra frames on each side.

* Encoding keeps exactly the core's latent frames of each chunk (no blending needed: latent frames
  are discrete; the context removes the edge effects of padding and receptive-field truncation).
* Decoding blends neighbouring chunks with a raised-cosine crossfade of ``context`` frames centred on
  each border (weighted overlap-add, weights summing to one), so a seam is never a hard cut.

:func:`measure_chunk_seams` compares whole vs chunked encode+decode and reports the error near chunk
borders against the error elsewhere (used by the tests and the benchmarks).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch


def plan_chunks(total: int, chunk: int, context: int) -> list[tuple[int, int, int, int]]:
    """Split ``total`` frames into cores of ``chunk`` frames: ``(a, s, e, b)`` with core [s, e) and
    processed span [a, b) = core widened by ``context`` frames, clipped to [0, total). A last core shorter
    than ``context`` is merged into the one before, so every core is long enough for its crossfades."""
    starts = list(range(0, total, chunk))
    if len(starts) > 1 and total - starts[-1] < max(1, context):
        starts.pop()  # a last core shorter than the crossfade joins the previous one
    out = []
    for i, s in enumerate(starts):
        e = starts[i + 1] if i + 1 < len(starts) else total
        out.append((max(0, s - context), s, e, min(total, e + context)))
    return out


def chunked_encode(
    encode: Callable[[torch.Tensor], torch.Tensor], audio: torch.Tensor, spf: int, chunk: int, context: int
) -> torch.Tensor:
    """``audio [B, A, T * spf]`` -> latents ``[B, D, T]``, encoding ``chunk``-frame cores with context.
    ``encode`` maps ``[B, A, n * spf]`` to ``[B, D, n]``."""
    total = audio.shape[-1] // spf
    if total <= chunk:
        return encode(audio)
    parts = []
    for a, s, e, b in plan_chunks(total, chunk, context):
        z = encode(audio[..., a * spf: b * spf])
        parts.append(z[..., s - a: e - a])
    return torch.cat(parts, dim=-1)


def _fade_weights(a: int, s: int, e: int, b: int, total: int, spf: int, fade: int) -> torch.Tensor:
    """Per-sample weight over [a, b) * spf: 1 in the core, raised-cosine ramps of ``fade`` frames centred
    on the core's inner borders (none at the signal's ends)."""
    n = (b - a) * spf
    w = torch.zeros(n, dtype=torch.float64)
    half = fade * spf // 2
    lo = (s - a) * spf - (half if s > 0 else 0)
    hi = (e - a) * spf + (half if e < total else 0)
    w[lo:hi] = 1.0
    if s > 0 and half > 0:
        ramp = 0.5 - 0.5 * torch.cos(math.pi * (torch.arange(2 * half, dtype=torch.float64) + 0.5) / (2 * half))
        w[lo: lo + 2 * half] = ramp
    if e < total and half > 0:
        ramp = 0.5 + 0.5 * torch.cos(math.pi * (torch.arange(2 * half, dtype=torch.float64) + 0.5) / (2 * half))
        w[hi - 2 * half: hi] = ramp
    return w


def chunked_decode(
    decode: Callable[[torch.Tensor, int], torch.Tensor], latents: torch.Tensor, spf: int, chunk: int, context: int
) -> torch.Tensor:
    """Latents ``[B, D, T]`` -> audio ``[B, A, T * spf]``. ``decode(latents_slice, first_frame)`` decodes a
    slice whose first latent frame has absolute index ``first_frame`` (for position-keyed noise)."""
    total = latents.shape[-1]
    if total <= chunk:
        return decode(latents, 0)
    fade = min(context, chunk)
    out = None
    for a, s, e, b in plan_chunks(total, chunk, context):
        y = decode(latents[..., a:b], a)
        if out is None:
            out = torch.zeros(*y.shape[:-1], total * spf, dtype=y.dtype)
        w = _fade_weights(a, s, e, b, total, spf, fade).to(y.dtype)
        out[..., a * spf: b * spf] += y * w
    return out


@dataclass
class SeamReport:
    """Whole vs chunked encode+decode: RMS errors (relative to the signal's RMS) within ``border_frames``
    latent frames of a chunk border and elsewhere, and the relative RMS latent difference."""

    border_error: float
    elsewhere_error: float
    latent_error: float
    n_borders: int


def measure_chunk_seams(codec, audio: torch.Tensor, chunk_seconds: float, *, seed: int = 0, steps: int = 1,
                        mode: str = "consistency", border_frames: int = 1) -> SeamReport:
    """Encode+decode ``audio [1, C, N]`` whole and with ``chunk_seconds`` chunks (same seed) and compare."""
    spf = codec.config.samples_per_frame
    z_whole = codec.encode(audio, chunk_seconds=math.inf)
    z_chunk = codec.encode(audio, chunk_seconds=chunk_seconds)
    y_whole = codec.decode(z_whole, steps=steps, seed=seed, mode=mode, chunk_seconds=math.inf)
    y_chunk = codec.decode(z_whole, steps=steps, seed=seed, mode=mode, chunk_seconds=chunk_seconds)
    ref_rms = y_whole.square().mean().sqrt().clamp_min(1e-8)
    err = (y_whole - y_chunk).square().mean(dim=(0, 1))  # [N]
    total = z_whole.shape[-1]
    chunk = codec.chunk_frames(chunk_seconds)
    mask = torch.zeros(total * spf, dtype=torch.bool)
    borders = list(range(chunk, total, chunk))
    for f in borders:
        mask[max(0, (f - border_frames) * spf): (f + border_frames) * spf] = True
    border = err[mask].mean().sqrt() / ref_rms if mask.any() else torch.tensor(0.0)
    elsewhere = err[~mask].mean().sqrt() / ref_rms
    zl = (z_whole - z_chunk).square().mean().sqrt() / z_whole.square().mean().sqrt().clamp_min(1e-8)
    return SeamReport(float(border), float(elsewhere), float(zl), len(borders))
