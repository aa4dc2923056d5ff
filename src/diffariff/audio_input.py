"""Audio inputs of the :class:`~diffariff.pipeline.Accompanist`: any audio-like value (a file path, or
an array / tensor ``[C, N]`` / ``[N]`` with its sample rate) becomes validated float32 ``[2, N]`` at
48 kHz (:func:`read_audio`), and :func:`crossfade_paste` joins an edited span into a stem
(:func:`crossfade_paste_blocks`: the same, a block at a time, for long stems).

:func:`check_audio_input` checks a file input from its header alone (existence, format, sample rate,
duration limits, channel count; NaN / inf in float files), so that a command can refuse a bad input
in a fraction of a second, before it loads any model. This module imports no torch (tensors are
recognised only when torch is already loaded), which keeps those checks fast."""

from __future__ import annotations

import dataclasses
import os
import sys
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from .audio import (
    DEFAULT_MAX_SECONDS,
    check_audio_file,
    check_finite,
    check_sample_rate,
    downmix_message,
    load_audio,
    resample,
    to_channels,
)
from .audio_spool import SpooledAudio, spool_audio_file
from .errors import AudioFileError, AudioTooLongError, EmptyAudioError, InputError

SAMPLE_RATE = 48_000
#: Shortest usable context / stem and reference / style reference (seconds).
MIN_CONTEXT_SECONDS = 0.5
MIN_REFERENCE_SECONDS = 1.0

AudioLike = Any  # path (str / PathLike), numpy array or torch tensor [C, N] / [N]


def to_numpy(audio: Any, what: str) -> np.ndarray:
    """An array or tensor ``[C, N]`` / ``[N]`` -> float32 ``[C, N]`` (AudioFileError / EmptyAudioError)."""
    torch = sys.modules.get("torch")  # a tensor can only exist once torch is imported
    if torch is not None and torch.is_tensor(audio):
        audio = audio.detach().to("cpu", torch.float32).numpy()
    arr = np.asarray(audio, dtype=np.float32)
    if arr.ndim == 1:
        arr = arr[None]
    if arr.ndim != 2:
        raise AudioFileError(f"{what} must be shaped [C, N] or [N], got {tuple(arr.shape)}")
    if arr.shape[1] == 0 or arr.shape[0] == 0:
        raise EmptyAudioError(f"{what} has no samples")
    return arr


@dataclasses.dataclass(frozen=True)
class InputFile:
    """A checked audio file input: its ``path``, header ``sample_rate`` and ``channels``, and the
    ``samples`` at 48 kHz that :func:`read_audio` will return (after cropping)."""

    path: Path
    sample_rate: int
    channels: int
    samples: int

    @property
    def seconds(self) -> float:
        return self.samples / SAMPLE_RATE


def check_audio_input(audio: AudioLike | None, what: str = "audio", *, min_seconds: float = 0.0,
                      max_seconds: float | None = DEFAULT_MAX_SECONDS,
                      seconds: float | None = None) -> InputFile | None:
    """Check a file input as :func:`read_audio` would, from its header (no decoding but a NaN scan of
    float files): the same errors, raised in milliseconds. More than two channels: the downmix
    warning :func:`read_audio` gives (same text). Returns the file's facts, or None for a value that
    is not a path (None, arrays: they are checked when read)."""
    if not isinstance(audio, str | os.PathLike):
        return None
    path = Path(audio)
    sr, channels, total = check_audio_file(path)
    if max_seconds is not None and total > max_seconds:
        raise AudioTooLongError(f"{path}: {total:.1f} s is longer than the limit of {max_seconds:.1f} s")
    # soxr's output length: frames x 48000 / rate, rounded half up (exact, e.g. 1 s at 44.1 kHz -> 48000)
    samples = int(round(total * sr) * SAMPLE_RATE / sr + 0.5)
    if seconds is not None:
        if seconds <= 0:
            raise InputError(f"seconds must be > 0, got {seconds}")
        samples = min(samples, int(round(seconds * SAMPLE_RATE)))
    if samples < min_seconds * SAMPLE_RATE:
        raise InputError(f"{what} {path.name} is {samples / SAMPLE_RATE:.2f} s long; "
                         f"at least {min_seconds:g} s is needed")
    if channels > 2:
        warnings.warn(downmix_message(path, channels), UserWarning, stacklevel=2)
    return InputFile(path, sr, channels, samples)


def file_inputs(*values: AudioLike | None) -> list[Path]:
    """The file paths among ``values`` (None, arrays, tensors and embeddings are skipped)."""
    return [Path(v) for v in values if isinstance(v, str | os.PathLike)]


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


#: Context files longer than this (seconds at 48 kHz) are spooled to disk by :func:`read_audio_spooled`.
SPOOL_SECONDS = 60.0


def read_audio_spooled(audio: AudioLike, sample_rate: int | None = None, *, what: str = "audio",
                       max_seconds: float | None = DEFAULT_MAX_SECONDS, min_seconds: float = 0.0,
                       seconds: float | None = None,
                       folder: str | os.PathLike | None = None) -> np.ndarray | SpooledAudio:
    """:func:`read_audio` for the long-form path: a file longer than :data:`SPOOL_SECONDS` comes back as a
    :class:`~diffariff.audio_spool.SpooledAudio` ``[2, N]`` at 48 kHz (the same samples, read a block at a
    time into a temporary file in ``folder``; the caller closes it), anything else as
    :func:`read_audio` returns it. Same checks and errors."""
    info = check_audio_input(audio, what, min_seconds=min_seconds, max_seconds=max_seconds, seconds=seconds)
    if info is None or info.samples <= SPOOL_SECONDS * SAMPLE_RATE:
        return read_audio(audio, sample_rate, what=what, max_seconds=max_seconds, min_seconds=min_seconds,
                          seconds=seconds)
    with warnings.catch_warnings():  # check_audio_input has given the downmix warning already
        warnings.simplefilter("ignore", UserWarning)
        out = spool_audio_file(info.path, SAMPLE_RATE, 2, max_seconds=max_seconds, folder=folder,
                               max_samples=None if seconds is None else int(round(seconds * SAMPLE_RATE)))
    if out.length < min_seconds * SAMPLE_RATE:
        out.close()
        raise InputError(f"{what} {info.path.name} is {out.length / SAMPLE_RATE:.2f} s long; "
                         f"at least {min_seconds:g} s is needed")
    return out


def crossfade_weights(n: int, start: int, end: int, fade: int, lo: int = 0, hi: int | None = None) -> np.ndarray:
    """The weight of the inserted signal in a paste of samples [start, end) into an ``n``-sample signal:
    1 inside, 0 outside, raised-cosine crossfades of ``fade`` samples centred on both borders (none at a
    border that is the signal's start or end). float64 ``[hi - lo]``: only samples [lo, hi) (default:
    all ``n``), so a long signal can be pasted a block at a time."""
    hi = n if hi is None else int(hi)
    idx = np.arange(int(lo), hi)
    w = ((idx >= start) & (idx < end)).astype(np.float64)
    half = fade // 2
    if half > 0:
        ramp = 0.5 - 0.5 * np.cos(np.pi * (np.arange(2 * half) + 0.5) / (2 * half))
        for edge, r in ((start, ramp), (end, ramp[::-1])):
            first = edge - half  # the ramp's first sample
            a, b = max(first, 0, lo), min(edge + half, n, hi)
            if a < b and 0 < edge < n:
                w[a - lo: b - lo] = r[a - first: b - first]
    return w


def crossfade_paste(base: np.ndarray, insert: np.ndarray, start: int, end: int, fade: int) -> np.ndarray:
    """``base`` [..., N] with samples [start, end) replaced by ``insert`` [..., N] (same shape), joined
    by raised-cosine crossfades of ``fade`` samples centred on both borders (:func:`crossfade_weights`)."""
    w = crossfade_weights(base.shape[-1], start, end, fade)
    return (base * (1 - w) + insert * w).astype(np.float32)


def crossfade_paste_blocks(base: np.ndarray | SpooledAudio, inserts: Iterable[np.ndarray], start: int, end: int,
                           fade: int) -> Iterator[np.ndarray]:
    """:func:`crossfade_paste` a block at a time: ``base`` float32 ``[C, N]`` (an array or a
    :class:`~diffariff.audio_spool.SpooledAudio`, read by spans), ``inserts`` consecutive ``[C, L]``
    blocks of the inserted signal -> the pasted signal's float32 ``[C, L]`` blocks, equal sample for
    sample to the whole-array paste."""
    n, done = int(base.shape[-1]), 0
    for y in inserts:
        w = crossfade_weights(n, start, end, fade, done, done + y.shape[-1])
        yield (base[:, done:done + y.shape[-1]] * (1 - w) + y * w).astype(np.float32)
        done += y.shape[-1]
