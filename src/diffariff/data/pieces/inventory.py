"""Which pieces exist: music21's corpus and the MIDI files of two Debian packages, minus what is
reserved for evaluation.

Every work by Bach is RESERVED for evaluation: music21 paths under ``bach/`` or ``cpebach/`` and any
work whose composer (in music21's metadata, or in the parsed score) contains "bach" are never read
for training (:func:`check_not_reserved` raises :class:`ReservedPieceError`; the loaders call it
before and after parsing). Collections left out on purpose: ``demos`` and ``theoryExercises``
(test files), ``leadSheet`` (20th-century songs), ``schoenberg`` and ``webern`` (20th-century works
whose copyright status varies by country).

A :class:`PieceRef` names one piece without reading it; ``id`` is stable across machines and is what
the split hashes.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from ...errors import InputError

OPENMSX_DIR = Path("/usr/share/games/openttd/baseset/openmsx")
BLUPI_DIR = Path("/usr/share/planetblupi/music")

#: MIDI packages: source name -> (folder, licence read from /usr/share/doc/PKG/copyright, composer).
MIDI_SOURCES: dict[str, tuple[Path, str, str]] = {
    "openttd-openmsx": (OPENMSX_DIR, "GPL-2.0 (openttd-openmsx, (c) 2010-2021 OpenMSX authors)", "OpenMSX authors"),
    "planetblupi-music-midi": (BLUPI_DIR, "GPL-3+ (planetblupi-music-midi, (c) 1997 Daniel Roux, EPSITEC SA & "
                                          "Denis Dumoulin; 2017-2018 Mathieu Schroeter)", "Daniel Roux"),
}
#: OpenMSX credits its musicians per file (readme.txt): file-name pattern -> composer.
OPENMSX_COMPOSERS = (("redfarn", "Jim Redfarn"), ("imuh3", "imuh3"), ("train_filled_with_cash", "imuh3"),
                     ("flying_scotsman", "imuh3"), ("chuggachugga", "imuh3"), ("busy_schedule", "mimm"),
                     ("the_fast_route", "mimm"), ("modern_motion", "Kyle Timmerman"),
                     ("keep_on_rolling", "Trolley Trev"), ("tttheme2", "-lucas-"))
MUSIC21_LICENCE = "music21 corpus (BSD-3 distribution; works in the public domain or licensed to music21)"

#: music21 corpus collection -> (genre, canonical composer; None: traditional / per-work metadata).
COLLECTIONS: dict[str, tuple[str, str | None]] = {
    "haydn": ("string quartet", "Joseph Haydn"),
    "mozart": ("string quartet", "Wolfgang Amadeus Mozart"),
    "beethoven": ("string quartet", "Ludwig van Beethoven"),
    "palestrina": ("choral", "Giovanni Pierluigi da Palestrina"),
    "monteverdi": ("choral", "Claudio Monteverdi"),
    "josquin": ("choral", "Josquin des Prez"),
    "trecento": ("choral", None),
    "ciconia": ("choral", "Johannes Ciconia"),
    "luca": ("choral", "D. Luca"),
    "lusitano": ("choral", "Vicente Lusitano"),
    "schumann_robert": ("keyboard and chamber", "Robert Schumann"),
    "schumann_clara": ("keyboard and chamber", "Clara Schumann"),
    "joplin": ("keyboard and chamber", "Scott Joplin"),
    "chopin": ("keyboard and chamber", "Frederic Chopin"),
    "schubert": ("keyboard and chamber", "Franz Schubert"),
    "handel": ("keyboard and chamber", "George Frideric Handel"),
    "corelli": ("keyboard and chamber", "Arcangelo Corelli"),
    "verdi": ("keyboard and chamber", "Giuseppe Verdi"),
    "weber": ("keyboard and chamber", "Carl Maria von Weber"),
    "beach": ("keyboard and chamber", "Amy Beach"),
    "johnson_j_r": ("keyboard and chamber", "J. Rosamond Johnson"),
    "liliuokalani": ("keyboard and chamber", "Liliuokalani"),
    "essenFolksong": ("folk tune", None),
    "oneills1850": ("folk tune", None),
    "ryansMammoth": ("folk tune", None),
    "airdsAirs": ("folk tune", None),
    "miscFolk": ("folk tune", None),
    "nottingham-dataset": ("folk tune", None),
}
#: Genres of the MIDI sources.
MIDI_GENRE = "game music"
#: Collections never used (see the module docstring); Bach is refused separately and always.
EXCLUDED_COLLECTIONS = frozenset({"demos", "theoryExercises", "leadSheet", "schoenberg", "webern"})
#: File types that are analyses, not music (music21's Roman-numeral analyses of Monteverdi).
EXCLUDED_SUFFIXES = (".rntxt",)
#: Collections whose ABC files hold one voice per tune: the whole file is one piece.
VOICE_PER_TUNE = frozenset({"josquin"})


class ReservedPieceError(InputError):
    """The piece is reserved for evaluation (a work by Bach)."""


@dataclass(frozen=True)
class PieceRef:
    """One piece, not yet read: ``source`` (``music21`` or a MIDI package), ``path`` (corpus-relative
    for music21, absolute for MIDI), ``number`` (the work inside a multi-work ABC file), ``genre``,
    ``collection``, ``composer`` (canonical) and ``title``."""

    source: str
    path: str
    number: int | None
    genre: str
    collection: str
    composer: str
    title: str
    licence: str

    @property
    def id(self) -> str:
        base = self.path if self.source == "music21" else os.path.basename(self.path)
        return f"{self.source}:{base}" + (f"#{self.number}" if self.number is not None else "")


def is_bach(*texts: str | None) -> bool:
    """True when any text (a path, a composer) names Bach (any Bach: J.S., C.P.E., ...)."""
    return any(t is not None and re.search(r"bach", str(t), re.IGNORECASE) for t in texts)


def check_not_reserved(path: str, composer: str | None = None) -> None:
    """Raise :class:`ReservedPieceError` for a work by Bach (by corpus path or composer)."""
    parts = str(path).replace("\\", "/").split("/")
    if any(is_bach(p) for p in parts[:-1]) or is_bach(composer) or is_bach(parts[-1].split(".")[0]):
        raise ReservedPieceError(f"{path}: works by Bach are reserved for evaluation and never used for training")


def composer_of(collection: str, raw: str | None) -> str:
    """Canonical composer: the collection's, else the cleaned metadata field, else 'traditional'."""
    canon = COLLECTIONS.get(collection, ("", None))[1]
    if canon:
        return canon
    text = " ".join(str(raw or "").split()).strip(" .")
    if collection == "trecento":
        name = re.split(r"\s+(?:[A-Z]{1,2}-|\()", text)[0].strip() if text else ""
        return "anonymous" if not name or name.lower().startswith("anon") else name
    return "traditional"


def music21_refs() -> list[PieceRef]:
    """Every usable work of music21's corpus (Bach and :data:`EXCLUDED_COLLECTIONS` left out)."""
    from music21 import corpus

    bundle = corpus.corpora.CoreCorpus().metadataBundle
    # the bundle has no __iter__, and its __getitem__ copies every entry: iterating it is quadratic
    entries = getattr(bundle, "_metadataEntries", None)
    refs = []
    whole_files: set[str] = set()
    for entry in (list(entries.values()) if entries is not None else bundle):
        path = str(entry.sourcePath).replace("\\", "/")
        collection = path.split("/")[0]
        meta = entry.metadata
        raw = getattr(meta, "composer", None) if meta is not None else None
        if collection in EXCLUDED_COLLECTIONS or collection not in COLLECTIONS or path.endswith(EXCLUDED_SUFFIXES):
            continue
        try:
            check_not_reserved(path, raw)
        except ReservedPieceError:
            continue
        title = (getattr(meta, "title", None) or Path(path).stem) if meta is not None else Path(path).stem
        number = int(entry.number) if entry.number is not None else None
        if collection in VOICE_PER_TUNE:
            if path in whole_files:
                continue
            whole_files.add(path)
            number, title = None, Path(path).stem
        refs.append(PieceRef("music21", path, number, COLLECTIONS[collection][0], collection,
                             composer_of(collection, raw), " ".join(str(title).split()), MUSIC21_LICENCE))
    return sorted(refs, key=lambda r: r.id)


def midi_refs() -> list[PieceRef]:
    """The MIDI files of the installed Debian music packages."""
    refs = []
    for source, (folder, licence, default_composer) in MIDI_SOURCES.items():
        if not folder.is_dir():
            continue
        for f in sorted(folder.glob("*.mid")):
            composer = next((c for pat, c in OPENMSX_COMPOSERS if pat in f.stem), default_composer) \
                if source == "openttd-openmsx" else default_composer
            refs.append(PieceRef(source, str(f), None, MIDI_GENRE, source, composer, f.stem, licence))
    return refs


def all_refs(sources: tuple[str, ...] = ("music21", "midi")) -> list[PieceRef]:
    """Every usable piece of the given sources (``music21``, ``midi``), sorted by id."""
    refs: list[PieceRef] = []
    if "music21" in sources:
        refs += music21_refs()
    if "midi" in sources:
        refs += midi_refs()
    return sorted(refs, key=lambda r: r.id)


#: Suffixes of the files :func:`file_refs` accepts: MIDI, and the score formats music21 reads.
MIDI_SUFFIXES = (".mid", ".midi")
SCORE_SUFFIXES = (".xml", ".musicxml", ".mxl", ".abc", ".krn", ".mei")


def file_refs(paths: list[str]) -> list[PieceRef]:
    """Refs for files given by the user (MIDI or scores); genre and composer unknown. Bach (by path)
    is refused here, and by composer once a score is read."""
    refs = []
    for raw in paths:
        p = Path(raw.strip()).expanduser()
        if not p.is_file():
            raise InputError(f"piece file not found: {p}")
        if p.suffix.lower() not in MIDI_SUFFIXES + SCORE_SUFFIXES:
            raise InputError(f"{p}: not a MIDI or score file ({', '.join(MIDI_SUFFIXES + SCORE_SUFFIXES)})")
        check_not_reserved(str(p))
        refs.append(PieceRef("file", str(p.resolve()), None, "unknown", "files", "unknown", p.stem,
                             "as given by the user"))
    return refs
