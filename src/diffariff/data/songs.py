"""The multitrack record every dataset layout is read into: :class:`Song`, :class:`Stem` and their labels.

A :class:`Song` is a set of named :class:`Stem` s (each one or more audio files that are summed) plus
labels. Audio is read lazily, span by span, through :mod:`diffariff.audio`: ``Song.load_stem`` returns
``float32 [C, N]`` at the asked sample rate (Hz) and channel count, reading only the asked span of
seconds from disk. Stem durations come from file headers and are cached on the objects.

Labels: ``role`` is the musical function (one of :data:`ROLES`, or whatever a corpus
``metadata.json`` says, e.g. ``arpeggio``); ``family`` is a General-MIDI style
family (:data:`diffariff.data.synth.gm.FAMILIES`) or ``"drums"`` / ``"vocals"`` / ``"other"``;
``instrument`` is a free descriptive name; vocal stems have ``is_vocal=True`` (context only, never a
training target). Where a layout gives no labels they are guessed from names by :func:`guess_labels`.

The layouts that make these records (folder, MUSDB18-HQ, Slakh2100, MoisesDB, MedleyDB) and
:func:`~diffariff.data.sources.open_dataset` are in :mod:`diffariff.data.sources`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..audio import audio_info, load_audio, resample, to_channels
from ..errors import DatasetError

#: Musical roles a stem can have.
#: The vocabulary of the built-in corpus (data/synth/styles.py) where it applies ("chords" for
#: comping / harmony parts, "lead" for melodic lines), plus "percussion", "vocals" and "other".
ROLES = ("drums", "percussion", "bass", "chords", "pad", "lead", "vocals", "other")
#: Samples read on each side of a span before resampling, so the filter has real signal at the edges.
_RESAMPLE_MARGIN_SECONDS = 0.02

# (keywords, family, role), first match wins. Keywords of 5+ letters match anywhere in the name;
# shorter ones must start a word, or end it for the few in _SUFFIX_OK (so "bass" matches
# "electricbass" but not "bassoon", which an earlier rule catches anyway).
_GUESS_RULES: tuple[tuple[tuple[str, ...], str, str], ...] = (
    (("vocal", "vox", "voice", "voices", "singer", "choir", "rap", "speech", "chant"), "vocals",
     "vocals"),
    (("bassoon", "sax", "saxophone", "clarinet", "oboe", "reed"), "reed", "lead"),
    (("flute", "piccolo", "recorder", "whistle", "ocarina", "pipe"), "pipe", "lead"),
    (("trumpet", "trombone", "tuba", "horn", "horns", "brass", "cornet", "flugelhorn"), "brass", "lead"),
    (("percussion", "perc", "shaker", "conga", "bongo", "tambourine", "clap", "cowbell", "timbale",
      "cajon", "triangle", "claves", "agogo", "guiro"), "percussive", "percussion"),
    (("drum", "drums", "kick", "snare", "hihat", "hat", "cymbal", "tom", "overhead", "kit", "ride",
      "crash", "beat"), "drums", "drums"),
    (("bass",), "bass", "bass"),
    (("guitar", "gtr"), "guitar", "chords"),
    (("piano", "keys", "key", "keyboard", "rhodes", "wurli", "clav", "epiano", "harpsichord"), "piano",
     "chords"),
    (("organ", "harmonium", "accordion"), "organ", "chords"),
    (("vibraphone", "marimba", "xylophone", "glockenspiel", "celesta", "bells", "mallet"),
     "chromatic percussion", "lead"),
    (("violin", "viola", "cello", "string", "strings", "fiddle", "harp", "orchestra"), "strings",
     "chords"),
    (("wind", "winds", "woodwind"), "reed", "lead"),
    (("pluck", "plucked", "banjo", "mandolin", "ukulele", "sitar"), "guitar", "chords"),
    (("lead", "melody"), "synth lead", "lead"),
    (("pad", "pads"), "synth pad", "pad"),
    (("synth", "synthesizer"), "synth lead", "chords"),
)

_SUFFIX_OK = frozenset({"bass", "vox", "drum", "drums", "keys", "gtr", "perc", "pad", "pads", "sax"})


@dataclass
class Stem:
    """One stem of a song: the sum of ``files`` (several files for e.g. MoisesDB tracks)."""

    name: str
    files: tuple[Path, ...]
    role: str = "other"
    instrument: str = ""
    family: str = "other"
    tags: tuple[str, ...] = ()
    is_vocal: bool = False
    meta: dict = field(default_factory=dict)
    _info: dict = field(default_factory=dict, repr=False, compare=False)

    def file_info(self, path: Path) -> tuple[int, int]:
        """``(sample_rate Hz, frames)`` of one of the stem's files, from its header (cached)."""
        if path not in self._info:
            sr, _, seconds = audio_info(path)
            self._info[path] = (sr, int(round(seconds * sr)))
        return self._info[path]

    def duration_seconds(self) -> float:
        """Length in seconds: the longest of the stem's files (shorter ones are zero-padded)."""
        return max(frames / sr for sr, frames in (self.file_info(p) for p in self.files))

    def load(self, sample_rate: int = 48_000, channels: int = 2, offset_seconds: float = 0.0,
             duration_seconds: float | None = None) -> np.ndarray:
        """The stem's audio, ``float32 [channels, N]`` at ``sample_rate`` Hz, summed over its files.

        Only the span ``[offset_seconds, offset_seconds + duration_seconds)`` (seconds) is read;
        ``N = round(duration_seconds * sample_rate)`` exactly, zero-padded where a file is shorter.
        ``duration_seconds=None`` reads to the end of the longest file.
        """
        if offset_seconds < 0:
            raise DatasetError(f"stem '{self.name}': negative offset {offset_seconds} s")
        if duration_seconds is None:
            duration_seconds = max(self.duration_seconds() - offset_seconds, 0.0)
        n = int(round(duration_seconds * sample_rate))
        parts = (_read_span(p, self.file_info(p), sample_rate, channels, offset_seconds, n)
                 for p in self.files)
        out = next(parts)
        for part in parts:
            out += part
        return out


@dataclass
class Song:
    """A multitrack song: named stems, its split (``"train"``, ``"test"``, ... or None) and labels.

    ``tags`` holds song-level labels (genre, key, tempo, artist, ...); ``source`` names the layout.
    """

    name: str
    stems: dict[str, Stem]
    split: str | None = None
    source: str = "folder"
    tags: dict = field(default_factory=dict)
    root: Path = Path(".")
    _duration: float | None = field(default=None, repr=False, compare=False)

    def duration_seconds(self) -> float:
        """Length in seconds: the shortest of the stems, from the file headers (cached)."""
        if self._duration is None:
            if not self.stems:
                raise DatasetError(f"song '{self.name}' has no stems")
            self._duration = min(stem.duration_seconds() for stem in self.stems.values())
        return self._duration

    def stem(self, name: str) -> Stem:
        """The stem called ``name`` (DatasetError naming the song when there is none)."""
        if name not in self.stems:
            raise DatasetError(f"song '{self.name}' has no stem '{name}' (stems: {', '.join(self.stems)})")
        return self.stems[name]

    def load_stem(self, name: str, sample_rate: int = 48_000, channels: int = 2, offset_seconds: float = 0.0,
                  duration_seconds: float | None = None) -> np.ndarray:
        """One stem as ``float32 [channels, N]`` at ``sample_rate`` Hz; see :meth:`Stem.load`."""
        return self.stem(name).load(sample_rate, channels, offset_seconds, duration_seconds)

    def load_mix(self, stem_names, sample_rate: int = 48_000, channels: int = 2, offset_seconds: float = 0.0,
                 duration_seconds: float | None = None) -> np.ndarray:
        """The sum of several stems, ``float32 [channels, N]``; an empty list gives silence.

        ``duration_seconds=None`` reads to the end of the song (its shortest stem).
        """
        if duration_seconds is None:
            duration_seconds = max(self.duration_seconds() - offset_seconds, 0.0)
        n = int(round(duration_seconds * sample_rate))
        out = np.zeros((channels, n), dtype=np.float32)
        for name in stem_names:
            out += self.load_stem(name, sample_rate, channels, offset_seconds, duration_seconds)
        return out

    def target_stems(self) -> list[str]:
        """Names of the stems that may be a generation target (every non-vocal stem)."""
        return [name for name, stem in self.stems.items() if not stem.is_vocal]


def _read_span(path: Path, info: tuple[int, int], sample_rate: int, channels: int, offset_seconds: float,
               n: int) -> np.ndarray:
    """``float32 [channels, n]`` of one file from ``offset_seconds``, resampled, zero-padded."""
    sr, frames = info
    start = int(round(offset_seconds * sr))
    if n == 0 or start >= frames:
        return np.zeros((channels, n), dtype=np.float32)
    if sr == sample_rate:
        length = min(n, frames - start)
        audio, _ = load_audio(path, channels=channels, max_seconds=None, offset_seconds=start / sr,
                              duration_seconds=length / sr)
        if audio.shape[1] == n:
            return audio
        out = np.zeros((channels, n), dtype=np.float32)
        out[:, : audio.shape[1]] = audio[:, :n]
        return out
    out = np.zeros((channels, n), dtype=np.float32)
    margin = int(round(_RESAMPLE_MARGIN_SECONDS * sr))
    lo = max(start - margin, 0)
    hi = min(start + int(np.ceil(n * sr / sample_rate)) + margin, frames)
    audio, _ = load_audio(path, max_seconds=None, offset_seconds=lo / sr, duration_seconds=(hi - lo) / sr)
    audio = to_channels(resample(audio, sr, sample_rate), channels)
    skip = int(round((start - lo) * sample_rate / sr))
    piece = audio[:, skip: skip + n]
    out[:, : piece.shape[1]] = piece
    return out


# ----------------------------------------------------------------------------------------- labels


def guess_labels(name: str) -> tuple[str, str, bool]:
    """``(role, family, is_vocal)`` guessed from a stem / instrument name such as ``"bass_di"``."""
    text = name.lower()
    words = re.findall(r"[a-z]+", text)
    for keywords, family, role in _GUESS_RULES:
        for kw in keywords:
            if (len(kw) >= 5 and kw in text) or any(
                    w.startswith(kw) or (kw in _SUFFIX_OK and w.endswith(kw)) for w in words):
                return role, family, role == "vocals"
    return "other", "other", False
