"""Long audio kept on disk: :class:`SpooledAudio` is a float32 ``[C, N]`` signal held in an anonymous
temporary file and read back one span at a time, so a 30-minute context (690 MB as float32 stereo at
48 kHz) does not sit in memory while it is encoded, analysed and mixed.

It answers the part of the numpy interface that the long-form consumers use: ``shape``, ``ndim``,
``dtype``, ``len`` and slicing on the last axis (``x[:, a:b]``, ``x[..., a:b]``: a fresh float32 array of
that span); ``np.asarray(x)`` reads the whole signal (for the short paths that need it).
:func:`spool_audio_file` fills one from an audio file block by block, with the same checks, channel
conversion and soxr resampling as :func:`diffariff.audio.load_audio` (the samples are equal to its).
"""

from __future__ import annotations

import os
import tempfile
import warnings
from collections.abc import Iterator

import numpy as np
import soundfile as sf
import soxr

from .audio import (
    READ_BLOCK,
    _check_not_truncated,
    _existing_file,
    _first_line,
    check_finite,
    check_sample_rate,
    downmix_message,
    to_channels,
)
from .errors import AudioFileError, AudioTooLongError, EmptyAudioError, NotAudioError


class SpooledAudio:
    """float32 audio ``[C, N]`` in an anonymous temporary file in ``folder`` (the system's temporary
    folder by default; the file disappears when closed, collected, or the process ends). Fill it with
    :meth:`append`, then read spans by slicing. Use as a context manager or call :meth:`close`."""

    ndim = 2
    dtype = np.dtype(np.float32)

    def __init__(self, channels: int, folder: str | os.PathLike | None = None):
        if int(channels) < 1:
            raise ValueError(f"channels must be >= 1, got {channels}")
        self.channels = int(channels)
        self.length = 0
        self._file = tempfile.TemporaryFile(dir=folder, prefix=".diffariff-audio-")

    @classmethod
    def silence(cls, channels: int, length: int, folder: str | os.PathLike | None = None) -> SpooledAudio:
        """``length`` samples of digital silence ``[channels, length]`` (a sparse file: no disk blocks are
        written until samples are appended)."""
        out = cls(channels, folder=folder)
        out._file.truncate(int(length) * 4 * out.channels)
        out.length = int(length)
        return out

    # ------------------------------------------------------------------------------------ writing
    def append(self, block: np.ndarray) -> None:
        """Add samples ``[C, L]`` (any float dtype; stored as float32) at the end."""
        block = np.asarray(block, dtype=np.float32)
        if block.ndim != 2 or block.shape[0] != self.channels:
            raise ValueError(f"expected [{self.channels}, L] blocks, got {list(block.shape)}")
        self._file.seek(0, os.SEEK_END)
        self._file.write(np.ascontiguousarray(block.T).tobytes())  # interleaved frames, as a wav holds them
        self.length += block.shape[1]

    # ------------------------------------------------------------------------------------ reading
    @property
    def shape(self) -> tuple[int, int]:
        return (self.channels, self.length)

    @property
    def size(self) -> int:
        return self.channels * self.length

    def __len__(self) -> int:
        return self.channels

    def read(self, start: int, stop: int) -> np.ndarray:
        """Samples ``[start, stop)`` (clipped to the signal) as a new float32 array ``[C, L]``."""
        start, stop = max(0, int(start)), min(self.length, int(stop))
        if stop <= start:
            return np.zeros((self.channels, 0), dtype=np.float32)
        frame = 4 * self.channels
        data = os.pread(self._file.fileno(), (stop - start) * frame, start * frame)
        return np.frombuffer(data, dtype=np.float32).reshape(-1, self.channels).T.copy()

    def blocks(self, size: int = READ_BLOCK) -> Iterator[np.ndarray]:
        """The whole signal as consecutive ``[C, size]`` arrays (the last one shorter)."""
        for a in range(0, self.length, int(size)):
            yield self.read(a, a + int(size))

    def __getitem__(self, key) -> np.ndarray:
        """``x[:, a:b]`` / ``x[..., a:b]`` (step 1) -> float32 ``[C, L]``; ``x[c]`` / ``x[c, a:b]`` one channel."""
        if not isinstance(key, tuple):
            key = (key,)
        if key and key[0] is Ellipsis:
            key = (slice(None),) + key[1:]
        if len(key) == 1:
            key = key + (slice(None),)
        if len(key) != 2 or not isinstance(key[1], slice) or key[1].step not in (None, 1):
            raise TypeError("SpooledAudio takes [channels, start:stop] slices with step 1")
        start, stop, _ = key[1].indices(self.length)
        span = self.read(start, stop)
        return span[key[0]]

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        whole = self.read(0, self.length)
        return whole if dtype is None else whole.astype(dtype, copy=False)

    # ---------------------------------------------------------------------------------- lifetime
    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> SpooledAudio:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"SpooledAudio(channels={self.channels}, length={self.length})"


def spool_audio_file(path: str | os.PathLike, sample_rate: int, channels: int, *,
                     max_seconds: float | None = None, max_samples: int | None = None,
                     folder: str | os.PathLike | None = None) -> SpooledAudio:
    """Read an audio file into a :class:`SpooledAudio` at ``sample_rate`` Hz with ``channels`` (1 or 2)
    channels, a block at a time: the same samples as :func:`diffariff.audio.load_audio` (``to_channels``
    then a streamed soxr HQ resampler), the same errors (AudioNotFoundError, NotAudioError,
    EmptyAudioError, NonFiniteAudioError, SampleRateError, AudioTooLongError) and the same downmix
    warning. ``max_samples``: keep only the first samples (at ``sample_rate``)."""
    p = _existing_file(path)
    out = SpooledAudio(channels, folder=folder)
    try:
        with sf.SoundFile(str(p)) as f:
            sr = int(f.samplerate)
            check_sample_rate(sr, str(p))
            _check_not_truncated(f, p)
            if max_seconds is not None and f.frames / sr > max_seconds:
                raise AudioTooLongError(f"{p}: {f.frames / sr:.1f} s is longer than the limit of {max_seconds:.1f} s")
            if f.channels > 2:
                warnings.warn(downmix_message(p, f.channels), UserWarning, stacklevel=2)
            stream = None if sr == int(sample_rate) else soxr.ResampleStream(
                sr, int(sample_rate), int(channels), dtype="float32", quality="HQ")
            limit = None if max_samples is None else int(max_samples)
            while limit is None or out.length < limit:
                raw = f.read(frames=READ_BLOCK, dtype="float32", always_2d=True)
                last = len(raw) < READ_BLOCK
                if len(raw):
                    check_finite(raw, str(p))
                block = to_channels(raw.T, channels, warn=False) if len(raw) else np.zeros((channels, 0), np.float32)
                if stream is not None:
                    block = stream.resample_chunk(np.ascontiguousarray(block.T), last=last).T
                if limit is not None:
                    block = block[:, : limit - out.length]
                if block.shape[1]:
                    out.append(block)
                if last:
                    break
    except AudioFileError:
        out.close()
        raise
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as exc:
        out.close()
        raise NotAudioError(f"{p}: not a readable audio file ({_first_line(exc)})") from None
    except BaseException:
        out.close()
        raise
    if out.length == 0:
        out.close()
        raise EmptyAudioError(f"{p}: the file holds no audio samples")
    return out


def is_spooled(audio) -> bool:
    """Whether ``audio`` is a :class:`SpooledAudio` (read it by spans, never whole)."""
    return isinstance(audio, SpooledAudio)


__all__ = ["SpooledAudio", "is_spooled", "spool_audio_file"]
