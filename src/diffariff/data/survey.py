"""A dataset surveyed before training on it: which songs are usable, which files are unreadable, which
songs to hold out.

:func:`survey_data` opens any layout :func:`~diffariff.data.sources.open_dataset` reads, checks every
stem file without decoding more than needed (:func:`~diffariff.audio.check_audio_file`: header, sample
rate, complete data chunk, NaN / inf in float files), drops unreadable files with a one-line warning
and keeps the songs that can give training pairs (:mod:`diffariff.data.pairs`): two or more readable
stems, one of them not vocals, and at least a window plus a reference clip long (seconds).
:func:`split_holdout` picks the songs to evaluate on.
"""

from __future__ import annotations

import dataclasses
import os
import warnings
from collections import Counter
from dataclasses import dataclass

import torch

from ..errors import InputError
from ..torchutil import seeded_generator
from .songs import Song
from .sources import detect_layout, open_dataset

#: dataset splits whose songs are held out first
HELD_SPLITS = ("test", "valid", "validation", "eval")


@dataclass
class DataSurvey:
    """What :func:`survey_data` found: the usable ``songs``, the ``unusable`` ones (name, reason) and
    the ``skipped`` unreadable files (path, reason)."""

    root: str
    layout: str
    songs: list[Song]
    unusable: list[tuple[str, str]]
    skipped: list[tuple[str, str]]

    def report(self) -> list[str]:
        """Human-readable lines: songs, stems per role, hours, what was left out."""
        roles = Counter(s.role for song in self.songs for s in song.stems.values())
        hours = sum(song.duration_seconds() for song in self.songs) / 3600
        stems = sum(roles.values())
        lines = [f"data {self.root} ({self.layout}): {len(self.songs)} usable songs of "
                 f"{len(self.songs) + len(self.unusable)}, {stems} stems, {hours:.3f} h",
                 "  roles: " + ", ".join(f"{r} {n}" for r, n in roles.most_common())]
        lines += [f"  left out {name}: {why}" for name, why in self.unusable]
        if self.skipped:
            lines.append(f"  {len(self.skipped)} unreadable file(s) skipped")
        return lines


def survey_data(root: str | os.PathLike, min_seconds: float, layout: str = "auto", warn: bool = True) -> DataSurvey:
    """Open the dataset at ``root``, check every stem file (header, sample rate, NaN / inf for float
    files) and keep the songs with >= 2 readable stems, one not vocals, and >= ``min_seconds`` long.
    Unreadable files are dropped with a one-line warning (``warn``)."""
    from ..audio import check_audio_file

    name = detect_layout(root) if layout == "auto" else layout
    songs, unusable, skipped = [], [], []
    for song in open_dataset(root, name):
        stems = {}
        for key, stem in song.stems.items():
            files = []
            for path in stem.files:
                try:
                    check_audio_file(path)
                    files.append(path)
                except InputError as exc:
                    skipped.append((str(path), str(exc)))
                    if warn:
                        warnings.warn(f"skipped unreadable file: {exc}", stacklevel=2)
            if files:
                stems[key] = dataclasses.replace(stem, files=tuple(files), _info={})
        song = dataclasses.replace(song, stems=stems, _duration=None)
        if len(stems) < 2 or not song.target_stems():
            unusable.append((song.name, f"{len(stems)} readable stem(s), {len(song.target_stems())} not vocals"))
        elif song.duration_seconds() < min_seconds:
            unusable.append((song.name, f"{song.duration_seconds():.1f} s, shorter than {min_seconds:.1f} s"))
        else:
            songs.append(song)
    return DataSurvey(str(root), name, songs, unusable, skipped)


def split_holdout(songs: list[Song], n: int, seed: int) -> tuple[list[Song], list[Song]]:
    """(training songs, ``n`` held-out songs): songs of a test / valid split first, then a seeded draw."""
    order = torch.randperm(len(songs), generator=seeded_generator(seed)).tolist()
    ranked = sorted(range(len(songs)), key=lambda i: (str(songs[i].split).lower() not in HELD_SPLITS, order[i]))
    held = {i for i in ranked[:n]}
    return [s for i, s in enumerate(songs) if i not in held], [s for i, s in enumerate(songs) if i in held]
