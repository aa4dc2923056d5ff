"""Stems that drop into a DAW: written at the context's own sample rate, sample-aligned and exactly as
long as the context, with a sidecar JSON (``<out>.json``, e.g. ``bass.wav.json``) that carries the
tempo, the meter and the first downbeat. A WAV output also carries the tempo and meter inside the
file, in an ``acid`` chunk (:func:`acid_chunk`), which DAWs read on import to set or follow the
session tempo. The chunk is written in the same atomic write as the audio: the writer
(:func:`diffariff.audio.save_audio`, :func:`diffariff.longform.writer.write_blocks`) closes its
temporary file, appends the chunk to it and fixes the RIFF size field
(:func:`diffariff.audio.append_wav_chunk`), then renames it onto the output; the file is written once.
FLAC outputs carry no chunk (no tempo field), and neither does a WAV file that libsndfile wrote as RF64
or that the chunk would take past the 32-bit RIFF size limit (4 GiB): it is written without it, with
no error; the sidecar still has the tempo.

diffariff works at 48 kHz inside; :func:`to_output_rate` converts a 48 kHz stem back with soxr (high
quality) and pads or trims the last sample so that it has the context's exact length (soxr rounds
lengths; a stem for a 44.1 kHz context of F frames has F frames). Level: the stem's loudness is
the context's minus 3 LU (BS.1770), as every generated stem (:mod:`diffariff.pipeline`).
"""

from __future__ import annotations

import dataclasses
import os
import struct
from pathlib import Path

import numpy as np

from .. import __version__
from .bars import BarGrid

INTERNAL_SR = 48_000


@dataclasses.dataclass(frozen=True)
class OutputFormat:
    """Where an output goes: ``sample_rate`` (Hz) and ``length`` (samples at that rate) of the context."""

    sample_rate: int
    length: int

    @classmethod
    def internal(cls, samples_48k: int) -> OutputFormat:
        return cls(INTERNAL_SR, int(samples_48k))

    @classmethod
    def of_file(cls, path: str | os.PathLike, seconds: float | None = None) -> OutputFormat:
        """The rate and frame count of an audio file (from its header), cropped to ``seconds``."""
        import soundfile as sf

        info = sf.info(str(path))
        frames = int(info.frames)
        if seconds is not None:
            frames = min(frames, int(round(seconds * info.samplerate)))
        return cls(int(info.samplerate), frames)


def to_output_rate(audio: np.ndarray, fmt: OutputFormat) -> np.ndarray:
    """48 kHz ``audio`` [..., N] -> float32 [..., fmt.length] at ``fmt.sample_rate`` (soxr HQ; the
    length is made exact by trimming or zero-padding the rounding's last sample or two)."""
    from ..audio import resample

    arr = np.asarray(audio, dtype=np.float32)
    if fmt.sample_rate != INTERNAL_SR:
        flat = arr.reshape(-1, arr.shape[-1])
        arr = resample(flat, INTERNAL_SR, fmt.sample_rate).reshape(arr.shape[:-1] + (-1,))
    n = arr.shape[-1]
    if n > fmt.length:
        arr = arr[..., : fmt.length]
    elif n < fmt.length:
        arr = np.concatenate([arr, np.zeros(arr.shape[:-1] + (fmt.length - n,), np.float32)], axis=-1)
    return np.ascontiguousarray(arr, dtype=np.float32)


def sidecar_path(out: str | os.PathLike) -> Path:
    """``bass.wav`` -> ``bass.wav.json``."""
    p = Path(out)
    return p.with_name(p.name + ".json")


def sidecar(out: str | os.PathLike, fmt: OutputFormat, grid: BarGrid | None, *, bars: tuple[int, int] | None = None,
            loop_bars: int | None = None, context: str | os.PathLike | None = None, kind: str = "stem",
            extra: dict | None = None) -> dict:
    """The sidecar dict of one output file. Timing fields are None when no grid is known (a silent
    context without --bpm / --meter / --downbeat)."""
    seconds = fmt.length / fmt.sample_rate
    meta = {
        "file": Path(out).name, "kind": kind, "diffariff_version": __version__, "sample_rate": fmt.sample_rate,
        "num_samples": fmt.length, "duration_s": round(seconds, 6),
        "context": None if context is None else Path(context).name,
        "level": "stem loudness = context loudness - 3 LU (BS.1770); -23 LUFS for a silent context",
        "bpm": None, "meter": None, "first_downbeat_s": None, "first_downbeat_samples": None,
        "bar_seconds": None, "bars_in_file": None,
        "bars_generated": None if bars is None else [int(bars[0]), int(bars[1])],
        "loop_bars": None if loop_bars is None else int(loop_bars),
    }
    if grid is not None:
        meta.update({"bpm": round(grid.bpm, 4), "meter": grid.meter_name,
                     "first_downbeat_s": round(grid.first_downbeat_s, 6),
                     "first_downbeat_samples": int(round(grid.first_downbeat_s * fmt.sample_rate)),
                     "bar_seconds": round(grid.bar_seconds, 6), "bars_in_file": grid.bar_count(seconds)})
    if extra:
        meta.update(extra)
    return meta


def write_outputs(items: list[tuple[Path, np.ndarray, dict | None]], fmt: OutputFormat,
                  grid: BarGrid | None = None) -> None:
    """Write each 48 kHz ``audio`` at ``fmt`` (atomic wav / flac, 24-bit; a WAV file with the ``acid``
    chunk of ``grid`` in the same write, :func:`tempo_chunk`) and its sidecar dict (atomic JSON; None: no
    sidecar). Everything is converted first, so a conversion error writes nothing."""
    from ..audio import save_audio
    from ..fsutil import write_json_atomic

    chunk = tempo_chunk(grid, fmt)
    ready = [(p, to_output_rate(a, fmt), meta) for p, a, meta in items]
    for path, audio, meta in ready:
        save_audio(path, audio, fmt.sample_rate, extra_chunk=chunk)
        if meta is not None:
            write_json_atomic(sidecar_path(path), meta)


#: the ``acid`` chunk's flags: 0x04 = time-stretch on (a tempo-following file, not a one-shot)
ACID_FLAGS = 0x04
ACID_ROOT_NOTE = 60  # no key is claimed; 60 (C4) is the format's neutral value


def acid_chunk(grid: BarGrid, seconds: float) -> bytes:
    """The 32-byte RIFF ``acid`` chunk of a ``seconds``-long file on ``grid``: flags (uint32), root note
    (uint16), two reserved fields, the number of quarter-note beats (uint32), the meter's unit and
    numerator (uint16 each) and the tempo in quarter notes per minute (float32), little-endian."""
    beats = max(1, int(round(seconds * grid.bpm / 60.0)))
    body = struct.pack("<IHHfIHHf", ACID_FLAGS, ACID_ROOT_NOTE, 0x8000, 0.0, beats, int(grid.beat_unit),
                       int(grid.beats_per_bar), float(grid.bpm))
    return b"acid" + struct.pack("<I", len(body)) + body


def tempo_chunk(grid: BarGrid | None, fmt: OutputFormat) -> bytes | None:
    """The ``acid`` chunk that a WAV output of ``fmt`` (its length in seconds: ``fmt.length`` samples /
    ``fmt.sample_rate`` Hz) on ``grid`` carries, for the writers' ``extra_chunk``; None without a grid."""
    return None if grid is None else acid_chunk(grid, fmt.length / fmt.sample_rate)


def riff_chunk(f, chunk_id: bytes) -> bytes | None:
    """The body of the first chunk ``chunk_id`` of the RIFF/WAVE file ``f`` (binary, positioned anywhere),
    or None."""
    f.seek(12)
    while True:
        header = f.read(8)
        if len(header) < 8:
            return None
        cid, n = header[:4], struct.unpack("<I", header[4:])[0]
        if cid == chunk_id:
            return f.read(n)
        f.seek(n + n % 2, os.SEEK_CUR)


def read_tempo_chunk(path: str | os.PathLike) -> dict | None:
    """The tempo and meter stored in a WAV file's ``acid`` chunk (``{"bpm", "meter", "beats"}``), or None."""
    with Path(path).open("rb") as f:
        if f.read(12)[8:12] != b"WAVE":
            return None
        body = riff_chunk(f, b"acid")
    if body is None or len(body) < 24:
        return None
    _, _, _, _, beats, unit, num, bpm = struct.unpack("<IHHfIHHf", body[:24])
    return {"bpm": float(bpm), "meter": f"{num}/{unit}", "beats": int(beats)}
