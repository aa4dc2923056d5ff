"""Uploaded files: size and duration limits, and audio read with one-line errors.

An upload is written to the browser session's folder in chunks (never held whole in memory) and
refused with :class:`UploadTooLarge` past :attr:`Limits.max_upload_bytes`. Audio is then checked
from its header (:func:`~diffariff.audio_input.check_audio_input`: not audio, empty, NaN / inf,
too long, too short) and read as float32 ``[2, N]`` at 48 kHz (:func:`~diffariff.audio_input.read_audio`).
Error messages name the file as the browser sent it, never the server's temporary path.
"""

from __future__ import annotations

import dataclasses
import re
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from ..audio_input import check_audio_input, read_audio
from ..errors import DiffariffError, InputError

#: Chunk size for copying uploads to disk (bytes).
CHUNK = 1 << 20


class StudioError(InputError):
    """A request the studio refuses; ``status`` is the HTTP status code of the JSON error answer."""

    status = 400


class UploadTooLarge(StudioError):
    """An upload (or a whole request body) is larger than the limit."""

    status = 413


class NotFound(StudioError):
    """An unknown browser session, lane, candidate or job."""

    status = 404


@dataclasses.dataclass(frozen=True)
class Limits:
    """What the studio accepts. ``max_seconds``: longest track / upload (seconds);
    ``max_upload_bytes``: largest request body; ``max_candidates``: candidates per request;
    ``max_steps``: sampling steps per request; ``max_lanes``: lanes per track."""

    max_seconds: float = 120.0
    max_upload_bytes: int = 100 * 1024 * 1024
    max_candidates: int = 8
    max_steps: int = 200
    max_lanes: int = 16

    def public(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def one_line(text: object) -> str:
    """``text`` as one line (whitespace runs collapsed), at most 300 characters."""
    line = " ".join(str(text).split())
    return line if len(line) <= 300 else line[:297] + "..."


def safe_name(filename: str | None, default: str = "upload") -> str:
    """A file name safe to create in a folder: the last path part of ``filename``, with anything but
    letters, digits, ``.``, ``-`` and ``_`` replaced; ``default`` when nothing is left."""
    base = re.split(r"[\\/]", filename or "")[-1]
    base = re.sub(r"[^A-Za-z0-9._-]+", "_", base).strip("._")[:80]
    return base or default


async def save_upload(upload: Any, folder: Path, max_bytes: int) -> Path:
    """Copy a Starlette ``UploadFile`` into ``folder`` (a fresh name) and return its path.
    UploadTooLarge past ``max_bytes``; StudioError for an empty upload."""
    folder.mkdir(parents=True, exist_ok=True)
    name = safe_name(getattr(upload, "filename", None))
    path = folder / name
    k = 1
    while path.exists():
        path = folder / f"{Path(name).stem}_{k}{Path(name).suffix}"
        k += 1
    size = 0
    with open(path, "wb") as out:
        while True:
            chunk = await upload.read(CHUNK)
            if not chunk:
                break
            size += len(chunk)
            if size > max_bytes:
                out.close()
                path.unlink(missing_ok=True)
                raise UploadTooLarge(f"{display_name(upload)} is larger than the upload limit of "
                                     f"{max_bytes / 1e6:.0f} MB")
            out.write(chunk)
    return path


def display_name(upload: Any) -> str:
    """The name the browser gave an upload (for messages)."""
    return one_line(getattr(upload, "filename", None) or "the uploaded file")


def read_upload(path: Path, shown: str, what: str, *, max_seconds: float | None,
                min_seconds: float = 0.0) -> tuple[np.ndarray, list[str]]:
    """Audio file ``path`` -> (float32 [2, N] at 48 kHz, warnings as one-line texts). Every refusal is
    an InputError whose message names ``shown`` (the upload's own name) instead of ``path``."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            check_audio_input(path, what, min_seconds=min_seconds, max_seconds=max_seconds)
            audio = read_audio(path, what=what, max_seconds=max_seconds, min_seconds=min_seconds)
        except DiffariffError as exc:
            raise InputError(_rename(str(exc), path, shown)) from None
    notes = sorted({_rename(str(w.message), path, shown) for w in caught})
    return audio, notes


def _rename(message: str, path: Path, shown: str) -> str:
    return one_line(message.replace(str(path), shown).replace(path.name, shown))


def fit_length(audio: np.ndarray, samples: int) -> np.ndarray:
    """``audio`` [C, N] cropped or padded with silence at the end to ``samples`` samples."""
    n = audio.shape[1]
    if n >= samples:
        return np.ascontiguousarray(audio[:, :samples])
    return np.pad(audio, ((0, 0), (0, samples - n)))
