"""Context + stem mixes for Accompaniment Prompt Adherence, on fixed-length windows.

The recipe (Grachten & Nistal 2025, as used by Improved Diff-A-Riff):

1. Cut each (context, stem) pair into non-overlapping windows of ``window_seconds`` (5 s: a 10-s
   pair gives two windows). A trailing remainder shorter than a window is dropped; a clip shorter
   than one window is kept whole as a single window.
2. Per window, scale the stem so its integrated loudness (ITU-R BS.1770, :func:`diffariff.audio.
   loudness`) equals the context's. A silent context (or a silent stem) leaves the stem as it is.
3. Sum, normalise the mix to -20 LUFS and, if a sample would exceed the peak ceiling (0.99), scale
   the whole window down to the ceiling (:func:`diffariff.audio.normalize_loudness`). A limited mix
   therefore sits slightly below -20 LUFS; clipping is never allowed.

Audio is ``float32 [C, N]`` at ``sample_rate`` Hz; contexts and stems of a pair must have the same
length (N samples); mono and stereo may be mixed (mono is duplicated to stereo).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..audio import (
    SILENCE_LUFS,
    check_finite,
    check_sample_rate,
    gain_db,
    loudness,
    normalize_loudness,
    to_channels,
)
from ..errors import InputError

#: Window length (seconds) on which mixes and their embeddings are computed.
WINDOW_SECONDS = 5.0
#: Loudness of every mix (LUFS).
MIX_LUFS = -20.0
#: Largest allowed absolute sample value of a mix.
PEAK_CEILING = 0.99


def _as_audio(x, what: str) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().float().cpu().numpy()
    arr = np.asarray(x, dtype=np.float32)
    if arr.ndim == 1:
        arr = arr[None]
    if arr.ndim != 2 or arr.shape[1] == 0 or arr.shape[0] not in (1, 2):
        raise InputError(f"{what} must be mono or stereo [C, N] audio, got shape {tuple(arr.shape)}")
    check_finite(arr, what)
    return arr


def _match_channels(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    channels = max(a.shape[0], b.shape[0])
    return to_channels(a, channels), to_channels(b, channels)


def split_windows(audio, sample_rate: int, window_seconds: float | None = WINDOW_SECONDS) -> list[np.ndarray]:
    """Non-overlapping windows ``[C, W]`` (W = round(window_seconds * sample_rate)) of ``[C, N]`` audio.

    The remainder after the last full window is dropped; audio shorter than one window is returned
    whole as the only window; ``window_seconds=None`` returns the audio whole.
    """
    arr = _as_audio(audio, "audio")
    if window_seconds is None:
        return [arr]
    if window_seconds <= 0:
        raise InputError(f"window length must be positive, got {window_seconds} s")
    w = int(round(window_seconds * sample_rate))
    n = arr.shape[1] // w
    if n == 0:
        return [arr]
    return [arr[:, i * w:(i + 1) * w] for i in range(n)]


def match_loudness(stem, context, sample_rate: int, *, context_lufs: float | None = None) -> np.ndarray:
    """``stem [C, N]`` scaled so its integrated loudness (LUFS) equals that of ``context``.

    A silent context or a silent stem leaves the stem unchanged (float32). ``context_lufs``: the
    context's loudness if already measured (skips measuring it again).
    """
    st = _as_audio(stem, "stem")
    ctx_lufs = loudness(_as_audio(context, "context"), sample_rate) if context_lufs is None else float(context_lufs)
    stem_lufs = loudness(st, sample_rate)
    if ctx_lufs > SILENCE_LUFS and stem_lufs > SILENCE_LUFS:
        return gain_db(st, ctx_lufs - stem_lufs)
    return st


def mix_pair(
    context, stem, sample_rate: int, *, target_lufs: float = MIX_LUFS, ceiling: float = PEAK_CEILING,
    context_lufs: float | None = None,
) -> np.ndarray:
    """One mix ``float32 [C, N]``: stem loudness matched to the context, sum at ``target_lufs``.

    ``context`` and ``stem`` are ``[C, N]`` with the same N. See the module docstring.
    ``context_lufs``: the context's loudness if already known (see :func:`match_loudness`).
    """
    check_sample_rate(sample_rate, "mix")
    ctx, st = _match_channels(_as_audio(context, "context"), _as_audio(stem, "stem"))
    if ctx.shape[1] != st.shape[1]:
        raise InputError(f"context and stem lengths differ: {ctx.shape[1]} vs {st.shape[1]} samples")
    mix = ctx + match_loudness(st, ctx, sample_rate, context_lufs=context_lufs)
    return normalize_loudness(mix, sample_rate, target_lufs, ceiling=ceiling).astype(np.float32)


def build_mixes(
    contexts: Sequence, stems: Sequence, sample_rate: int, *,
    target_lufs: float = MIX_LUFS, ceiling: float = PEAK_CEILING, context_lufs: Sequence[float] | None = None,
) -> list[np.ndarray]:
    """:func:`mix_pair` over aligned lists: ``mixes[i] = mix(contexts[i], stems[i])``, each ``[C, N_i]``.

    No windowing here: pass already-windowed audio (see :func:`windowed_pairs`). ``context_lufs``:
    the contexts' loudness values if already measured (one per context).
    """
    if len(contexts) != len(stems):
        raise InputError(f"got {len(contexts)} contexts but {len(stems)} stems")
    if context_lufs is not None and len(context_lufs) != len(contexts):
        raise InputError(f"got {len(context_lufs)} context loudness values for {len(contexts)} contexts")
    lufs = [None] * len(contexts) if context_lufs is None else [float(v) for v in context_lufs]
    return [
        mix_pair(c, s, sample_rate, target_lufs=target_lufs, ceiling=ceiling, context_lufs=v)
        for c, s, v in zip(contexts, stems, lufs)
    ]


def windowed_pairs(
    contexts: Sequence, stems: Sequence, sample_rate: int, window_seconds: float | None = WINDOW_SECONDS
) -> tuple[list[np.ndarray], list[np.ndarray], np.ndarray]:
    """Cut aligned (context, stem) pairs into windows.

    Returns ``(context_windows, stem_windows, groups)`` where ``groups[j]`` is the index of the pair
    window j came from (``int [J]``). A pair's context and stem must have the same length.
    """
    if len(contexts) != len(stems):
        raise InputError(f"got {len(contexts)} contexts but {len(stems)} stems")
    ctx_w: list[np.ndarray] = []
    stem_w: list[np.ndarray] = []
    groups: list[int] = []
    for i, (c, s) in enumerate(zip(contexts, stems)):
        ca, sa = _as_audio(c, f"context {i}"), _as_audio(s, f"stem {i}")
        if ca.shape[1] != sa.shape[1]:
            raise InputError(f"pair {i}: context and stem lengths differ ({ca.shape[1]} vs {sa.shape[1]} samples)")
        cw, sw = split_windows(ca, sample_rate, window_seconds), split_windows(sa, sample_rate, window_seconds)
        ctx_w.extend(cw)
        stem_w.extend(sw)
        groups.extend([i] * len(cw))
    return ctx_w, stem_w, np.asarray(groups, dtype=np.int64)
