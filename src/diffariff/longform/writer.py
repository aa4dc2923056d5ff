"""Writing long stems block by block: loudness-normalised, peak-limited, at the context's rate.

The whole-array path (``Accompanist._finish`` then :func:`diffariff.timing.daw.write_outputs`) needs
the stem in memory several times over (decoded, normalised, limited, resampled, clipped). Here the
decoded blocks go to an anonymous temporary file of raw float32 samples (pass 1, while measuring each
stem's integrated loudness and peak with :class:`~.loudness.LoudnessMeter`); pass 2 reads them back a
block at a time, applies the same gain and limiter as :func:`diffariff.audio.normalize_loudness`
(float32, same rounding: the limiter's peak is the product of the raw peak and the gain, which float
rounding preserves), resamples with a streaming soxr resampler (bit-identical to one-shot
:func:`diffariff.audio.resample`) and writes 24-bit PCM into the atomic temporary output file
(:func:`diffariff.fsutil.atomic_path`): nothing appears at the output path unless every file was
written. A WAV file's tempo chunk is appended to that temporary file before its rename (one write).
An optional mix (context + stem, peak-limited as :meth:`~diffariff.pipeline.Accompanist.mix`) is
written the same way.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from ..audio import SILENCE_LUFS, SUBTYPES, append_wav_chunk, check_finite
from ..errors import AudioFileError, OutputPathError
from ..fsutil import atomic_path
from .loudness import LoudnessMeter

SAMPLE_RATE = 48_000
#: Samples per block read back in pass 2 (about 5.5 s at 48 kHz).
READ_BLOCK = 1 << 18


class StemSpool:
    """Pass 1: ``n`` stereo stems of ``total`` samples at 48 kHz, fed as blocks ``[n, 2, L]``, kept as
    raw float32 in anonymous temporary files in ``folder`` (deleted when closed or on a crash) while
    their loudness and peak are measured. Use as a context manager."""

    def __init__(self, n: int, total: int, folder: str | os.PathLike | None = None):
        self.n, self.total = int(n), int(total)
        self.meters = [LoudnessMeter(SAMPLE_RATE, 2, self.total) for _ in range(self.n)]
        self._files = [tempfile.TemporaryFile(dir=folder, prefix=".diffariff-stem-") for _ in range(self.n)]
        self.seen = 0

    def __enter__(self) -> StemSpool:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        for f in self._files:
            f.close()

    def feed(self, block: np.ndarray) -> None:
        """The next samples of every stem: float32 ``[n, 2, L]``."""
        block = np.asarray(block, dtype=np.float32)
        if block.shape[:2] != (self.n, 2):
            raise ValueError(f"expected [{self.n}, 2, L] blocks, got {list(block.shape)}")
        check_finite(block, "generated audio")
        for i in range(self.n):
            self.meters[i].feed(block[i])
            self._files[i].write(np.ascontiguousarray(block[i].T).tobytes())
        self.seen += block.shape[-1]

    def raw_blocks(self, i: int, block: int = READ_BLOCK) -> Iterator[np.ndarray]:
        """Stem ``i`` as it was fed, float32 ``[2, L]`` blocks of ``block`` samples."""
        f = self._files[i]
        f.seek(0)
        while True:
            buf = f.read(block * 8)
            if not buf:
                return
            yield np.frombuffer(buf, dtype=np.float32).reshape(-1, 2).T

    def finished_blocks(self, i: int, target_lufs: float, ceiling: float) -> Iterator[np.ndarray]:
        """Stem ``i`` at ``target_lufs`` and peak-limited to ``ceiling``, as
        :func:`diffariff.audio.normalize_loudness` would make it, in float32 ``[2, L]`` blocks."""
        if self.seen != self.total:
            raise ValueError(f"{self.seen} of {self.total} samples were fed")
        meter = self.meters[i]
        current = meter.value()
        if current <= SILENCE_LUFS:
            yield from self.raw_blocks(i)
            return
        gain = np.float32(10.0 ** ((target_lufs - current) / 20.0))
        peak = float(np.float32(meter.peak) * gain)
        limit = np.float32(ceiling / peak) if peak > ceiling else None
        for raw in self.raw_blocks(i):
            y = (raw * gain).astype(np.float32)
            yield y * limit if limit is not None else y


def mixed_blocks(context: np.ndarray, stem: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
    """``context`` float [C, N] (mono or stereo) + the stem's ``[2, L]`` blocks, float32 (before limiting),
    as :meth:`diffariff.pipeline.Accompanist.mix` sums them (in float64)."""
    start = 0
    for y in stem:
        c = np.asarray(context[..., start:start + y.shape[-1]], dtype=np.float64)
        c = np.repeat(c, 2, axis=0) if c.shape[0] == 1 else c
        yield (c + y).astype(np.float32)
        start += y.shape[-1]


def limited(blocks: Callable[[], Iterable[np.ndarray]], ceiling: float) -> Iterator[np.ndarray]:
    """:func:`diffariff.audio.peak_limit` over a signal given as re-iterable blocks: one pass for the
    peak, one to scale."""
    peak = max((float(np.max(np.abs(b))) for b in blocks() if b.size), default=0.0)
    scale = np.float32(ceiling / peak) if peak > ceiling else None
    for b in blocks():
        yield b * scale if scale is not None else b


def write_blocks(path: str | os.PathLike, blocks: Iterable[np.ndarray], sample_rate: int, length: int, *,
                 subtype: str = "24", extra_chunk: bytes | None = None) -> Path:
    """Write 48 kHz float32 ``[2, L]`` blocks to a wav / flac file at ``sample_rate`` Hz with exactly
    ``length`` samples (trimmed or zero-padded as :func:`diffariff.timing.daw.to_output_rate`), PCM
    clipped to [-1, 1], atomically (as :func:`diffariff.audio.save_audio`). ``extra_chunk``: one RIFF
    chunk's bytes (e.g. the tempo, :func:`diffariff.timing.daw.acid_chunk`) that a WAV file carries
    after its audio: appended to the closed temporary file before the rename
    (:func:`diffariff.audio.append_wav_chunk`; skipped for RF64 or past 4 GiB), so the file is
    written once; FLAC gets none."""
    p = Path(path)
    fmt = {".wav": "WAV", ".flac": "FLAC"}.get(p.suffix.lower())
    if fmt is None:
        raise AudioFileError(f"{p}: can only write .wav, .flac files")
    sub = SUBTYPES[subtype]
    stream = None if int(sample_rate) == SAMPLE_RATE else soxr.ResampleStream(
        SAMPLE_RATE, int(sample_rate), 2, dtype="float32", quality="HQ")
    with atomic_path(p) as tmp:
        try:
            with sf.SoundFile(str(tmp), "w", int(sample_rate), 2, sub, format=fmt) as out:
                _write_resampled(out, blocks, stream, int(length), clip=sub != "FLOAT")
        except sf.LibsndfileError as exc:  # e.g. the disk filled up while writing
            raise OutputPathError(f"cannot write {p}: {exc}") from None
        if extra_chunk is not None and fmt == "WAV":
            append_wav_chunk(tmp, extra_chunk, shown=p)
    return p


def _write_resampled(out: sf.SoundFile, blocks: Iterable[np.ndarray], stream, length: int, *, clip: bool) -> None:
    """Write 48 kHz ``[2, L]`` blocks to ``out`` through ``stream`` (a soxr stream, or None: no resampling),
    exactly ``length`` frames (samples per channel) at the output rate."""
    written = 0

    def put(y: np.ndarray) -> None:
        nonlocal written
        y = y[: max(0, length - written)]
        if clip:
            y = np.clip(y, -1.0, 1.0)
        if len(y):
            out.write(y)
            written += len(y)

    pending = None
    for b in blocks:
        if pending is not None:
            put(pending if stream is None else stream.resample_chunk(pending))
        pending = np.ascontiguousarray(np.asarray(b, dtype=np.float32).T)
    if pending is not None:
        put(pending if stream is None else stream.resample_chunk(pending, last=True))
    if written < length:
        put(np.zeros((length - written, 2), np.float32))
