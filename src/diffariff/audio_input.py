"""Audio inputs of the :class:`~diffariff.pipeline.Accompanist`: any audio-like value (a file path, or
an array / tensor ``[C, N]`` / ``[N]`` with its sample rate) becomes validated float32 ``[2, N]`` at
48 kHz (:func:`read_audio`), and :func:`crossfade_paste` joins an edited span into a stem."""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .audio import DEFAULT_MAX_SECONDS, check_finite, check_sample_rate, load_audio, resample, to_channels
from .errors import AudioFileError, AudioTooLongError, EmptyAudioError, InputError

SAMPLE_RATE = 48_000

AudioLike = Any  # path (str / PathLike), numpy array or torch tensor [C, N] / [N]


def to_numpy(audio: Any, what: str) -> np.ndarray:
    """An array or tensor ``[C, N]`` / ``[N]`` -> float32 ``[C, N]`` (AudioFileError / EmptyAudioError)."""
    if torch.is_tensor(audio):
        audio = audio.detach().to("cpu", torch.float32).numpy()
    arr = np.asarray(audio, dtype=np.float32)
    if arr.ndim == 1:
        arr = arr[None]
    if arr.ndim != 2:
        raise AudioFileError(f"{what} must be shaped [C, N] or [N], got {tuple(arr.shape)}")
    if arr.shape[1] == 0 or arr.shape[0] == 0:
        raise EmptyAudioError(f"{what} has no samples")
    return arr


def read_audio(audio: AudioLike, sample_rate: int | None = None, *, what: str = "audio",
               max_seconds: float | None = DEFAULT_MAX_SECONDS, min_seconds: float = 0.0,
               seconds: float | None = None) -> np.ndarray:
    """Any audio input -> float32 [2, N] at 48 kHz (validated; see the module doc). ``seconds`` crops
    to the first ``seconds``; shorter than ``min_seconds`` -> InputError."""
    if isinstance(audio, str | os.PathLike):
        arr, _ = load_audio(audio, SAMPLE_RATE, 2, max_seconds=max_seconds)
        name = f"{what} {Path(audio).name}"
    else:
        sr = SAMPLE_RATE if sample_rate is None else int(sample_rate)
        check_sample_rate(sr, what)
        arr = to_numpy(audio, what)
        check_finite(arr, what)
        if max_seconds is not None and arr.shape[1] / sr > max_seconds:
            raise AudioTooLongError(f"{what}: {arr.shape[1] / sr:.1f} s is longer than the limit of {max_seconds:.1f} s")
        if arr.shape[0] > 2:
            warnings.warn(f"downmixing {arr.shape[0]}-channel {what} to mono by averaging", stacklevel=3)
            arr = arr.mean(axis=0, keepdims=True)
        arr = to_channels(resample(arr, sr, SAMPLE_RATE), 2)
        name = what
    if seconds is not None:
        if seconds <= 0:
            raise InputError(f"seconds must be > 0, got {seconds}")
        arr = arr[:, : int(round(seconds * SAMPLE_RATE))]
    if arr.shape[1] < min_seconds * SAMPLE_RATE:
        raise InputError(f"{name} is {arr.shape[1] / SAMPLE_RATE:.2f} s long; at least {min_seconds:g} s is needed")
    return np.ascontiguousarray(arr, dtype=np.float32)


def crossfade_paste(base: np.ndarray, insert: np.ndarray, start: int, end: int, fade: int) -> np.ndarray:
    """``base`` [..., N] with samples [start, end) replaced by ``insert`` [..., N] (same shape), joined
    by raised-cosine crossfades of ``fade`` samples centred on both borders."""
    n = base.shape[-1]
    w = np.zeros(n, dtype=np.float64)
    w[start:end] = 1.0
    half = fade // 2
    if half > 0:
        ramp = 0.5 - 0.5 * np.cos(np.pi * (np.arange(2 * half) + 0.5) / (2 * half))
        for edge, r in ((start, ramp), (end, ramp[::-1])):
            lo, hi = edge - half, edge + half
            a, b = max(lo, 0), min(hi, n)
            if a < b and 0 < edge < n:
                w[a:b] = r[a - lo: b - lo]
    return (base * (1 - w) + insert * w).astype(np.float32)
