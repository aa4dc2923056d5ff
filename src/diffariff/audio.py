"""Audio I/O and basic audio operations: the one place that reads or writes audio files.

Conventions: audio arrays are ``float32`` numpy arrays shaped ``[channels, samples]`` with values in
[-1, 1] at a given sample rate (Hz). Torch code uses ``[B, C, N]`` tensors of the same layout.

* :func:`load_audio` reads wav / flac / ogg / mp3 (soundfile / libsndfile), validates it, resamples
  with soxr (high quality) and converts channels.
* :func:`check_audio_file` makes load_audio's checks from the header alone (plus a NaN scan of float
  files), so that bad inputs are refused before any slow work.
* :func:`save_audio` writes wav / flac as 16-bit, 24-bit or float, atomically; a file that cannot be
  created or written is an OutputPathError and leaves no temporary file. A WAV file can carry one
  extra RIFF chunk (e.g. the tempo: :func:`diffariff.timing.daw.acid_chunk`), appended in place to the
  still-temporary file by :func:`append_wav_chunk` before the rename: one write, one rename.
* :func:`to_channels`: mono -> stereo duplicates; stereo -> mono averages; **more than two
  channels are downmixed to mono by averaging (with a warning)** and then, if stereo is asked for,
  duplicated. Surround layouts have no universal stereo fold-down, and stems are mono-compatible by
  construction, so an average is the least surprising choice.
* :func:`loudness` / :func:`normalize_loudness`: integrated loudness in LUFS (ITU-R BS.1770-4, via
  pyloudnorm), with a peak ceiling.
"""

from __future__ import annotations

import os
import struct
import warnings
from pathlib import Path

import numpy as np
import pyloudnorm
import soundfile as sf
import soxr

from .errors import (
    AudioFileError,
    AudioNotFoundError,
    AudioTooLongError,
    EmptyAudioError,
    NonFiniteAudioError,
    NotAudioError,
    OutputPathError,
    SampleRateError,
)
from .fsutil import atomic_path, os_reason

#: Sample rates accepted on input (Hz). Anything outside is treated as a broken header.
MIN_SAMPLE_RATE = 4_000
MAX_SAMPLE_RATE = 384_000
#: Default upper bound on input duration (seconds); callers may pass another ``max_seconds``.
DEFAULT_MAX_SECONDS = 30 * 60.0
#: Formats :func:`save_audio` writes, by file suffix.
_WRITE_FORMATS = {".wav": "WAV", ".flac": "FLAC"}
#: Sample formats by the names users give.
SUBTYPES = {"16": "PCM_16", "24": "PCM_24", "float": "FLOAT", "PCM_16": "PCM_16", "PCM_24": "PCM_24", "FLOAT": "FLOAT"}
#: Silence floor for loudness (LUFS); pyloudnorm returns -inf for digital silence.
SILENCE_LUFS = -70.0
#: Sample peak (linear, full scale 1) that every written stem and mix is limited to.
PEAK_CEILING = 0.99


#: Frames read (and checked) per block by :func:`load_audio` (about 22 s at 48 kHz).
READ_BLOCK = 1 << 20


def check_finite(audio: np.ndarray, what: str = "audio") -> None:
    """Raise :class:`NonFiniteAudioError` if ``audio`` holds NaN or inf (checked a block of samples at a
    time, so a long file needs no whole-length mask)."""
    flat = np.asarray(audio).reshape(-1)
    for a in range(0, flat.size, READ_BLOCK * 2):
        if not np.all(np.isfinite(flat[a: a + READ_BLOCK * 2])):
            raise NonFiniteAudioError(f"{what} contains NaN or infinite samples")


def _read_channels_first(f: sf.SoundFile, frames: int) -> np.ndarray:
    """``frames`` frames from the open file's position as float32 ``[C, frames]``, read a block at a
    time into one array (no second whole-length copy for the transposition)."""
    out = np.empty((f.channels, frames), dtype=np.float32)
    done = 0
    while done < frames:
        block = f.read(frames=min(READ_BLOCK, frames - done), dtype="float32", always_2d=True)
        if len(block) == 0:
            return out[:, :done].copy()  # shorter than its header said
        out[:, done: done + len(block)] = block.T
        done += len(block)
    return out


def check_sample_rate(sample_rate: int, what: str = "audio") -> None:
    """Raise :class:`SampleRateError` unless MIN_SAMPLE_RATE <= sample_rate <= MAX_SAMPLE_RATE."""
    if not (MIN_SAMPLE_RATE <= int(sample_rate) <= MAX_SAMPLE_RATE):
        raise SampleRateError(
            f"{what} has an unsupported sample rate of {sample_rate} Hz "
            f"(supported: {MIN_SAMPLE_RATE}-{MAX_SAMPLE_RATE} Hz)"
        )


def audio_info(path: str | os.PathLike) -> tuple[int, int, float]:
    """``(sample_rate, channels, seconds)`` of an audio file, read from its header only."""
    p = _existing_file(path)
    try:
        info = sf.info(str(p))
    except (sf.LibsndfileError, RuntimeError, TypeError) as exc:
        raise NotAudioError(f"{p}: not a readable audio file ({_first_line(exc)})") from None
    return int(info.samplerate), int(info.channels), float(info.frames) / max(int(info.samplerate), 1)


def check_audio_file(path: str | os.PathLike) -> tuple[int, int, float]:
    """``(sample_rate, channels, seconds)`` of an audio file after every check :func:`load_audio` makes
    that needs no decoding: the file exists, is not empty, has a readable header, a supported sample
    rate, at least one frame and (WAV family) a complete data chunk; a float file (the only kind that
    can hold them) is also scanned for NaN / inf samples, block by block. Raises what load_audio
    raises, so that bad inputs are refused before any slow work."""
    p = _existing_file(path)
    try:
        with sf.SoundFile(str(p)) as f:
            sr, channels, frames = int(f.samplerate), int(f.channels), int(f.frames)
            check_sample_rate(sr, str(p))
            _check_not_truncated(f, p)
            if frames <= 0:
                raise EmptyAudioError(f"{p}: the file holds no audio samples")
            if f.subtype in ("FLOAT", "DOUBLE"):
                for block in f.blocks(blocksize=1 << 16, dtype="float32", always_2d=True):
                    check_finite(block, str(p))
    except AudioFileError:
        raise
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as exc:
        raise NotAudioError(f"{p}: not a readable audio file ({_first_line(exc)})") from None
    return sr, channels, frames / sr


def downmix_message(what: object, channels: int) -> str:
    """The warning given when ``channels`` (> 2) channels of ``what`` are averaged to mono."""
    return f"{what}: downmixing {channels}-channel audio to mono by averaging its channels"


def load_audio(
    path: str | os.PathLike,
    sample_rate: int | None = None,
    channels: int | None = None,
    *,
    max_seconds: float | None = DEFAULT_MAX_SECONDS,
    offset_seconds: float = 0.0,
    duration_seconds: float | None = None,
) -> tuple[np.ndarray, int]:
    """Read an audio file as ``float32 [C, N]`` and its sample rate.

    Args:
        path: wav / flac / ogg / mp3 (anything libsndfile reads).
        sample_rate: resample to this rate (Hz) with soxr high quality; ``None`` keeps the file's.
        channels: convert to this many channels (see :func:`to_channels`); ``None`` keeps them.
        max_seconds: refuse files longer than this (:class:`AudioTooLongError`); ``None``: no limit.
        offset_seconds, duration_seconds: read only this span (seconds, file time).

    Raises: AudioNotFoundError, NotAudioError (not audio, truncated header), EmptyAudioError,
        NonFiniteAudioError, SampleRateError, AudioTooLongError.
    """
    p = _existing_file(path)
    try:
        with sf.SoundFile(str(p)) as f:
            sr = int(f.samplerate)
            check_sample_rate(sr, str(p))
            _check_not_truncated(f, p)
            total = f.frames
            if max_seconds is not None and total / sr > max_seconds:
                raise AudioTooLongError(
                    f"{p}: {total / sr:.1f} s is longer than the limit of {max_seconds:.1f} s"
                )
            start = int(round(offset_seconds * sr))
            if start > 0:
                f.seek(min(start, total))
            left = max(0, total - min(start, total))
            frames = left if duration_seconds is None else min(left, max(0, int(round(duration_seconds * sr))))
            audio = _read_channels_first(f, frames)
    except AudioFileError:
        raise
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as exc:
        raise NotAudioError(f"{p}: not a readable audio file ({_first_line(exc)})") from None
    if audio.shape[1] == 0:
        raise EmptyAudioError(f"{p}: the file holds no audio samples")
    check_finite(audio, str(p))
    if channels is not None:
        if audio.shape[0] > 2:  # named after the file, once (the command line prints it as one line)
            warnings.warn(downmix_message(p, audio.shape[0]), UserWarning, stacklevel=2)
        audio = to_channels(audio, channels, warn=False)
    if sample_rate is not None and sample_rate != sr:
        audio = resample(audio, sr, sample_rate)
        sr = int(sample_rate)
    return audio, sr


def save_audio(
    path: str | os.PathLike,
    audio: np.ndarray,
    sample_rate: int,
    *,
    subtype: str = "24",
    extra_chunk: bytes | None = None,
) -> Path:
    """Write ``audio`` (``[C, N]`` or ``[N]``) to a wav / flac file, atomically.

    ``subtype``: "16", "24" or "float" (flac has no float; it is refused). PCM output is clipped
    to [-1, 1]. Non-finite or empty audio is refused before anything is written. ``extra_chunk``: the
    bytes of one RIFF chunk (4-byte id, uint32 body size in bytes, body) that a WAV file carries after
    its audio, appended before the rename (:func:`append_wav_chunk`, which also says when it is
    skipped); FLAC has no RIFF chunks and gets none.
    """
    p = Path(path)
    fmt = _WRITE_FORMATS.get(p.suffix.lower())
    if fmt is None:
        raise AudioFileError(f"{p}: can only write {', '.join(_WRITE_FORMATS)} files")
    if subtype not in SUBTYPES:
        raise AudioFileError(f"unknown sample format '{subtype}' (use 16, 24 or float)")
    sub = SUBTYPES[subtype]
    if fmt == "FLAC" and sub == "FLOAT":
        raise AudioFileError(f"{p}: flac cannot store float samples (use 16 or 24)")
    check_sample_rate(sample_rate, "output")
    arr = np.asarray(audio, dtype=np.float32)
    if arr.ndim == 1:
        arr = arr[None]
    if arr.ndim != 2 or arr.shape[1] == 0:
        raise EmptyAudioError(f"refusing to write empty or malformed audio of shape {arr.shape} to {p}")
    check_finite(arr, f"audio for {p}")
    if sub != "FLOAT":
        arr = np.clip(arr, -1.0, 1.0)
    with atomic_path(p) as tmp:  # OutputPathError when the file cannot be created; no temp file is left
        try:
            sf.write(str(tmp), arr.T, int(sample_rate), subtype=sub, format=fmt)
        except sf.LibsndfileError as exc:  # e.g. the disk filled up while writing
            raise OutputPathError(f"cannot write {p}: {_first_line(exc)}") from None
        if extra_chunk is not None and fmt == "WAV":
            append_wav_chunk(tmp, extra_chunk, shown=p)
    return p


#: The largest RIFF size field (bytes after the first 8 of the file): a plain WAV file ends at 4 GiB + 7.
RIFF_SIZE_LIMIT = 0xFFFFFFFF


def append_wav_chunk(tmp: str | os.PathLike, chunk: bytes, *, shown: object = None) -> bool:
    """Append the RIFF chunk ``chunk`` (4-byte id, uint32 little-endian body size in bytes, body) to the
    end of the closed WAV file ``tmp`` in place and update its RIFF size field (bytes 4-7). A zero byte
    goes first when the file has an odd length and after an odd-length chunk (chunks start on even
    offsets). The audio bytes are not touched.

    Only for a temporary file that the calling writer has just created and closed, before
    :func:`diffariff.fsutil.atomic_path` renames it onto the output: a failure halfway leaves a broken
    temporary file, which the atomic write then deletes, never a user's file.

    Returns False, leaving the file as it is, when the file is not a plain ``RIFF``/``WAVE`` file whose
    size field equals its length minus 8 (an RF64 file, or one over 4 GiB, whose 32-bit field cannot
    hold its size) or when the chunk would take the RIFF size past :data:`RIFF_SIZE_LIMIT`: such a file
    is written without the chunk, and without an error. Raises ValueError for malformed ``chunk`` bytes
    and OutputPathError (naming ``shown``, default ``tmp``) when the file cannot be read or written.
    """
    chunk = bytes(chunk)
    if len(chunk) < 8 or struct.unpack("<I", chunk[4:8])[0] != len(chunk) - 8:
        raise ValueError("a RIFF chunk is a 4-byte id, its body size (uint32) and the body")
    try:
        with open(tmp, "r+b") as f:
            head = f.read(12)
            size = f.seek(0, os.SEEK_END)  # bytes
            if (len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE"
                    or struct.unpack("<I", head[4:8])[0] != size - 8):
                return False
            tail = b"\0" * (size % 2) + chunk + b"\0" * (len(chunk) % 2)
            riff_size = size + len(tail) - 8
            if riff_size > RIFF_SIZE_LIMIT:
                return False
            f.write(tail)
            f.seek(4)
            f.write(struct.pack("<I", riff_size))
    except OSError as exc:  # e.g. the disk filled up, or the file size limit was reached
        raise OutputPathError(f"cannot write {shown if shown is not None else tmp}: {os_reason(exc)}") from None
    return True


def resample(audio: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    """Resample ``[C, N]`` audio from ``sr_in`` to ``sr_out`` Hz with soxr (HQ). Returns float32."""
    if int(sr_in) == int(sr_out):
        return np.asarray(audio, dtype=np.float32)
    check_sample_rate(sr_in, "input")
    check_sample_rate(sr_out, "target")
    arr = np.asarray(audio, dtype=np.float32)
    out = soxr.resample(arr.T, int(sr_in), int(sr_out), quality="HQ")
    out = out.reshape(-1, arr.shape[0]) if out.ndim == 1 else out
    return np.ascontiguousarray(out.T, dtype=np.float32)


def to_channels(audio: np.ndarray, channels: int, *, warn: bool = True) -> np.ndarray:
    """Convert ``[C, N]`` audio to ``channels`` (1 or 2) channels.

    mono -> stereo: duplicate; stereo -> mono: average; more than two channels: average to mono with
    a warning (unless ``warn`` is False: the caller gave its own), then duplicate when stereo is
    asked for.
    """
    if channels not in (1, 2):
        raise AudioFileError(f"can only convert to 1 or 2 channels, not {channels}")
    arr = np.asarray(audio, dtype=np.float32)
    if arr.ndim == 1:
        arr = arr[None]
    c = arr.shape[0]
    if c == channels:
        return arr
    if c > 2 and warn:
        warnings.warn(f"downmixing {c}-channel audio to mono by averaging its channels", stacklevel=2)
    mono = arr.mean(axis=0, keepdims=True) if c > 1 else arr
    return np.repeat(mono, channels, axis=0) if channels == 2 else mono


def loudness(audio: np.ndarray, sample_rate: int) -> float:
    """Integrated loudness (LUFS, BS.1770-4) of ``[C, N]`` audio; SILENCE_LUFS for silence.

    Clips shorter than pyloudnorm's 400 ms gating block are measured with one block of their length.
    """
    arr = np.asarray(audio, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[None]
    n = arr.shape[1]
    if n == 0 or not np.any(arr):
        return SILENCE_LUFS
    block = min(0.4, n / sample_rate)
    meter = pyloudnorm.Meter(int(sample_rate), block_size=block)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        value = float(meter.integrated_loudness(arr.T))
    return max(value, SILENCE_LUFS) if np.isfinite(value) else SILENCE_LUFS


def gain_db(audio: np.ndarray, db: float) -> np.ndarray:
    """``audio`` scaled by ``db`` decibels."""
    return (np.asarray(audio, dtype=np.float32) * np.float32(10.0 ** (db / 20.0))).astype(np.float32)


def peak_limit(audio: np.ndarray, ceiling: float = PEAK_CEILING) -> np.ndarray:
    """Scale ``audio`` down so its absolute peak is at most ``ceiling`` (a transparent limiter)."""
    arr = np.asarray(audio, dtype=np.float32)
    peak = float(np.max(np.abs(arr))) if arr.size else 0.0
    return arr * np.float32(ceiling / peak) if peak > ceiling else arr


def normalize_loudness(
    audio: np.ndarray, sample_rate: int, target_lufs: float = -20.0, *, ceiling: float | None = 0.99
) -> np.ndarray:
    """Scale ``audio`` to ``target_lufs`` integrated loudness, then peak-limit to ``ceiling``.

    Silent audio is returned unchanged.
    """
    current = loudness(audio, sample_rate)
    if current <= SILENCE_LUFS:
        return np.asarray(audio, dtype=np.float32)
    out = gain_db(audio, target_lufs - current)
    return peak_limit(out, ceiling) if ceiling is not None else out


def is_silent(audio: np.ndarray, threshold_db: float = -60.0) -> bool:
    """True when the RMS of ``audio`` (``[N]``, ``[C, N]``, or a spooled ``[C, N]`` signal read by spans:
    :class:`~diffariff.audio_spool.SpooledAudio`) is at or below ``threshold_db`` dBFS. Summed in float64
    a block of samples at a time: no float64 copy of a long signal."""
    spooled = not isinstance(audio, np.ndarray) and hasattr(audio, "read") and hasattr(audio, "shape")
    arr = audio if spooled else np.asarray(audio)
    size = int(np.prod(arr.shape))
    if size == 0:
        return True
    flat = arr if spooled else arr.reshape(-1, arr.shape[-1])
    total = 0.0
    for s in range(0, flat.shape[-1], READ_BLOCK // 4):
        total += float(np.sum(np.square(flat[:, s:s + READ_BLOCK // 4], dtype=np.float64)))
    return bool(np.sqrt(total / size) <= 10.0 ** (float(threshold_db) / 20.0))


def _existing_file(path: str | os.PathLike) -> Path:
    p = Path(path)
    if not p.exists():
        raise AudioNotFoundError(f"{p}: no such file")
    if not p.is_file():
        raise AudioNotFoundError(f"{p}: not a regular file")
    if p.stat().st_size == 0:
        raise NotAudioError(f"{p}: the file is empty (0 bytes)")
    return p


def _check_not_truncated(f: sf.SoundFile, p: Path) -> None:
    """Refuse a WAV-family file whose data chunk is shorter than its header says.

    libsndfile silently reads what is there; its header log (``extra_info``) marks the data chunk
    with ``(should be N)`` when the file ends early. A truncated FLAC/OGG/MP3 fails while decoding
    and is reported by the reader instead.
    """
    for line in (f.extra_info or "").splitlines():
        if line.strip().startswith("data") and "should be" in line:
            raise NotAudioError(f"{p}: the file is truncated ({line.strip()})")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]
