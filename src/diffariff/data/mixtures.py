"""Plain recorded mixtures (finished music, no stems) from a folder, for codec / CLAP training.

Layout: ``ROOT/<source>/**/<file>.{ogg,opus,flac,wav,mp3}``. The first folder under ``ROOT`` names
the *source* (for the Debian soundtracks of ``scripts/install_real_music.sh``: the package, e.g.
``ROOT/drascula-music/track3.ogg``). Files lying directly in ``ROOT`` take ``ROOT``'s own name as
their source (so a flat package folder loaded on its own keeps its source name and splits). Hidden
files and folders are ignored; several paths resolving to the same file (symlinks) count once, under
the first of them in sorted order.

Every file is checked when the folder is loaded: its header is read (:func:`diffariff.audio.audio_info`)
and its first 0.1 s decoded. Unreadable files and files shorter than ``min_seconds`` are skipped with
one warning each; a folder without a single usable file raises :class:`~diffariff.errors.DatasetError`.
Opus files are read by libsndfile (>= 1.0.29 decodes Ogg/Opus; checked here with 1.2.2), like the
other formats, so no decoding cache is needed.

Splits are by source first, so generalisation to unseen music can be measured:

* a source in ``holdout`` (default :data:`DEFAULT_HOLDOUT_SOURCES`) goes wholly to ``"test_ood"``:
  its music is never trained on, and its figures are out-of-domain figures;
* any other file goes to ``"train"`` / ``"valid"`` / ``"test"`` (about 90 / 5 / 5 %) by a SHA-1 hash
  of ``"<source>/<relpath>"`` (``relpath``: the path under the source folder, ``/``-separated), so the
  assignment is the same on every machine and does not move when files are added;
* an optional ``ROOT/splits.json`` ``{"<split>": ["<source>" or "<source>/<relpath>", ...]}``
  overrides both; a file entry wins over its source's entry.

Audio is read lazily, span by span (:meth:`Recording.load` seeks and decodes only the asked span).
:func:`random_spans` draws random non-silent spans, what a codec trainer needs.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..audio import audio_info, check_sample_rate, load_audio
from ..errors import DatasetError, DiffariffError
from .songs import _read_span
from .sources import _check_root, _load_splits

#: Audio file suffixes read as mixtures (compared lower-case).
AUDIO_SUFFIXES = (".ogg", ".opus", ".flac", ".wav", ".mp3")
#: Sources held out whole as split "test_ood" unless the caller names others.
DEFAULT_HOLDOUT_SOURCES: tuple[str, ...] = ("planetblupi-music-ogg",)
#: Files shorter than this (seconds) are skipped: one 10 s training window must fit.
DEFAULT_MIN_SECONDS = 10.0
#: Hash-split fractions of the sources that are not held out, in order (the last takes the rest).
SPLIT_FRACTIONS: tuple[tuple[str, float], ...] = (("train", 0.90), ("valid", 0.05), ("test", 0.05))
#: Split of the held-out sources.
OOD_SPLIT = "test_ood"
#: Spans whose RMS is below this (dBFS) count as silent in :func:`random_spans`.
SILENCE_DBFS = -50.0
#: Draws :func:`random_spans` makes for one span before it gives up on finding a non-silent one.
SPAN_ATTEMPTS = 8
#: Seconds decoded from the start of each file when the folder is loaded, to catch broken files.
_PROBE_SECONDS = 0.1


@dataclass(frozen=True)
class Recording:
    """One recorded mixture: where it is, where it comes from, how long it is and its split.

    ``duration`` is in seconds from the file header; ``sample_rate`` (Hz) and ``channels`` are the
    file's own. ``relpath`` is the ``/``-separated path under the source folder.
    """

    path: Path
    source: str
    relpath: str
    duration: float
    split: str
    sample_rate: int
    channels: int

    @property
    def key(self) -> str:
        """``"<source>/<relpath>"``: the name the split hash and ``splits.json`` use."""
        return f"{self.source}/{self.relpath}"

    @property
    def frames(self) -> int:
        """Length in samples at the file's own rate."""
        return int(round(self.duration * self.sample_rate))

    def load(self, sample_rate: int = 48_000, channels: int = 2, offset_seconds: float = 0.0,
             seconds: float | None = None) -> np.ndarray:
        """``float32 [channels, N]`` at ``sample_rate`` Hz from ``offset_seconds`` (file time).

        Only that span is decoded. ``N = round(seconds * sample_rate)`` exactly, zero-padded past the
        end of the file; ``seconds=None`` reads to the end. Resampling uses
        :func:`diffariff.audio.resample` with a little real signal on each side of the span.
        """
        if offset_seconds < 0:
            raise DatasetError(f"{self.path}: negative offset {offset_seconds} s")
        check_sample_rate(sample_rate, "target")
        if seconds is None:
            seconds = max(self.duration - offset_seconds, 0.0)
        if seconds < 0:
            raise DatasetError(f"{self.path}: negative span length {seconds} s")
        n = int(round(seconds * sample_rate))
        return _read_span(self.path, (self.sample_rate, self.frames), sample_rate, channels,
                          offset_seconds, n)


def split_of_recording(source: str, relpath: str, holdout: Iterable[str] = DEFAULT_HOLDOUT_SOURCES) -> str:
    """The split of file ``relpath`` (``/``-separated, under its source folder) of ``source``.

    ``"test_ood"`` for a held-out source, else ``"train"`` / ``"valid"`` / ``"test"`` by a SHA-1 hash
    of ``"<source>/<relpath>"`` with the fractions of :data:`SPLIT_FRACTIONS`.
    """
    if source in set(holdout):
        return OOD_SPLIT
    digest = hashlib.sha1(f"{source}/{relpath}".encode()).digest()
    u = int.from_bytes(digest[:8], "big") / 2.0**64
    edge = 0.0
    for name, fraction in SPLIT_FRACTIONS:
        edge += fraction
        if u < edge:
            return name
    return SPLIT_FRACTIONS[-1][0]


def load_mixtures(root: str | os.PathLike, split: str | None = None, *,
                  holdout: Iterable[str] = DEFAULT_HOLDOUT_SOURCES,
                  min_seconds: float = DEFAULT_MIN_SECONDS) -> list[Recording]:
    """Every usable recording under ``root`` (sorted by source, then path); see the module doc.

    ``split``: keep only that split (DatasetError naming the splits present when it is empty).
    ``holdout``: sources whose files all go to ``"test_ood"``. ``min_seconds``: shorter files are
    skipped with a warning.
    """
    root = _check_root(root)
    holdout = tuple(holdout)
    overrides = _load_split_overrides(root)
    root_name = Path(os.path.abspath(root)).name
    recordings: list[Recording] = []
    seen: set[Path] = set()
    for path in _walk_audio(root):
        real = path.resolve()
        if real in seen:
            continue
        seen.add(real)
        rel = path.relative_to(root).parts
        source, relpath = (rel[0], "/".join(rel[1:])) if len(rel) > 1 else (root_name, rel[0])
        try:
            sr, channels, seconds = audio_info(path)
            check_sample_rate(sr, str(path))
            load_audio(path, max_seconds=None, duration_seconds=_PROBE_SECONDS)
        except DiffariffError as exc:
            warnings.warn(f"skipping unreadable audio file: {_one_line(exc)}", stacklevel=2)
            continue
        if seconds < min_seconds:
            warnings.warn(f"skipping {path}: {seconds:.1f} s is shorter than {min_seconds:g} s", stacklevel=2)
            continue
        key = f"{source}/{relpath}"
        chosen = overrides.get(key) or overrides.get(source) or split_of_recording(source, relpath, holdout)
        recordings.append(Recording(path, source, relpath, seconds, chosen, sr, channels))
    if not recordings:
        raise DatasetError(f"{root}: no usable audio files ({' '.join(AUDIO_SUFFIXES)}, "
                           f"at least {min_seconds:g} s) found")
    recordings.sort(key=lambda r: (r.source, r.relpath))
    if split is None:
        return recordings
    chosen_recs = [r for r in recordings if r.split == split]
    if not chosen_recs:
        present = ", ".join(sorted({r.split for r in recordings}))
        raise DatasetError(f"{root}: no recordings in split '{split}' (splits present: {present})")
    return chosen_recs


def random_spans(recordings: Sequence[Recording], n: int, seconds: float, rng: np.random.Generator | int | None,
                 sample_rate: int = 48_000, channels: int = 2, *, silence_db: float = SILENCE_DBFS,
                 attempts: int = SPAN_ATTEMPTS) -> list[np.ndarray]:
    """``n`` random spans, each ``float32 [channels, round(seconds * sample_rate)]``.

    A recording is drawn with probability proportional to its duration (every second of music is
    equally likely), then a uniform start inside it. Spans with an RMS below ``silence_db`` dBFS are
    redrawn, up to ``attempts`` draws per span; if all of them are that quiet, the loudest is kept
    and a warning is given. Recordings shorter than ``seconds`` are never drawn. A recording that
    fails to decode is warned about once and left out of later draws.
    """
    if n < 0:
        raise DatasetError(f"random_spans: n must be >= 0, not {n}")
    if seconds <= 0:
        raise DatasetError(f"random_spans: seconds must be positive, not {seconds}")
    if attempts < 1:
        raise DatasetError(f"random_spans: attempts must be >= 1, not {attempts}")
    rng = np.random.default_rng(rng)
    pool = [r for r in recordings if r.duration >= seconds]
    threshold = 10.0 ** (silence_db / 20.0)
    spans: list[np.ndarray] = []
    while len(spans) < n:
        best, best_rms = None, -1.0
        for _ in range(attempts):
            if not pool:
                raise DatasetError(f"random_spans: no readable recording is at least {seconds:g} s long")
            weights = np.array([r.duration for r in pool], dtype=np.float64)
            rec = pool[int(rng.choice(len(pool), p=weights / weights.sum()))]
            offset = float(rng.uniform(0.0, rec.duration - seconds))
            try:
                audio = rec.load(sample_rate, channels, offset, seconds)
            except DiffariffError as exc:
                warnings.warn(f"leaving out {rec.path}: {_one_line(exc)}", stacklevel=2)
                pool.remove(rec)
                continue
            rms = float(np.sqrt(np.mean(np.square(audio, dtype=np.float64)))) if audio.size else 0.0
            if rms > best_rms:
                best, best_rms = audio, rms
            if rms >= threshold:
                break
        if best is None:
            continue
        if best_rms < threshold:
            warnings.warn(f"random_spans: no span above {silence_db:g} dBFS in {attempts} draws; "
                          f"keeping the loudest", stacklevel=2)
        spans.append(best)
    return spans


def _walk_audio(root: Path) -> list[Path]:
    """Audio files under ``root`` (symlinked folders followed once), hidden entries skipped, sorted."""
    found: list[Path] = []
    visited: set[Path] = set()
    for folder, dirs, files in os.walk(root, followlinks=True):
        real = Path(folder).resolve()
        if real in visited:
            dirs[:] = []
            continue
        visited.add(real)
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            path = Path(folder) / name
            if not name.startswith(".") and path.suffix.lower() in AUDIO_SUFFIXES:
                found.append(path)
    return sorted(found)


def _load_split_overrides(root: Path) -> dict[str, str]:
    """``"<source>"`` or ``"<source>/<relpath>"`` -> split from an optional ``ROOT/splits.json``."""
    return {name.strip("/"): split for name, split in _load_splits(root, "source or file names").items()}


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]
