"""Multitrack songs from the dataset layouts users point us at: each layout read into one list of songs.

A song is a :class:`~diffariff.data.songs.Song`: named stems plus labels (:mod:`diffariff.data.songs`
holds the record, its lazy span reading, the label vocabulary and :func:`~diffariff.data.songs.guess_labels`);
this module finds the songs and their labels on disk.

Layouts, each with a ``load_<layout>(root, split=None)``:

* ``folder``   ``ROOT/<song>/<stem>.{wav,flac,ogg,mp3}`` (``mixture.*`` / ``mix.*`` skipped), with an
  optional diffariff corpus ``metadata.json`` per song and an optional ``ROOT/splits.json``.
* ``musdb``    MUSDB18-HQ ``ROOT/{train,test}/<track>/{drums,bass,other,vocals}.wav``.
* ``slakh``    Slakh2100 ``ROOT[/<split>]/TrackNNNNN/{metadata.yaml, stems/SNN.flac}``.
* ``moisesdb`` MoisesDB ``ROOT/<provider>/<uuid>/data.json`` (``ROOT/<uuid>/data.json`` accepted too).
* ``medleydb`` MedleyDB ``ROOT/Audio/<Track>/<Track>_STEMS/*.wav`` + ``<Track>_METADATA.yaml``
  (beside the audio or in ``ROOT/Metadata/``).

:func:`open_dataset` picks the adapter (``layout="auto"`` detects it). A missing root, an unknown
layout or malformed metadata raises :class:`~diffariff.errors.DatasetError` naming the file.
Where a layout gives no labels they are guessed from names by :func:`~diffariff.data.songs.guess_labels`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import yaml

from ..errors import DatasetError
from .songs import Song, Stem, guess_labels

#: Layout names accepted by :func:`open_dataset`.
LAYOUTS = ("auto", "folder", "musdb", "slakh", "moisesdb", "medleydb")
#: Audio file suffixes of the generic folder layout.
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3")
#: File names (without suffix) that hold a full mix, never a stem.
MIX_NAMES = ("mixture", "mix")

# Slakh2100 inst_class -> role; the family is the inst_class itself (lower case).
_SLAKH_ROLES = {
    "bass": "bass", "drums": "drums", "percussive": "percussion", "piano": "chords", "organ": "chords",
    "guitar": "chords", "strings": "chords", "strings (continued)": "chords", "ensemble": "chords",
    "synth pad": "pad", "synth lead": "lead", "brass": "lead", "reed": "lead", "pipe": "lead",
    "chromatic percussion": "lead",
}


# ----------------------------------------------------------------------------------------- labels


def _labelled_stem(name: str, files: tuple[Path, ...], label_source: str, tags: tuple[str, ...] = (),
                   meta: dict | None = None, instrument: str | None = None) -> Stem:
    role, family, vocal = guess_labels(label_source)
    instrument = instrument if instrument is not None else label_source.replace("_", " ").strip().lower()
    return Stem(name, files, role, instrument, family, _unique(tags or (instrument,)), vocal, meta or {})


def _unique(items) -> tuple[str, ...]:
    seen: dict[str, None] = {}
    for item in items:
        text = str(item).strip().lower()
        if text:
            seen.setdefault(text, None)
    return tuple(seen)


# ------------------------------------------------------------------------------------ file helpers


def _check_root(root: str | os.PathLike) -> Path:
    p = Path(root)
    if not p.exists():
        raise DatasetError(f"{p}: dataset folder does not exist")
    if not p.is_dir():
        raise DatasetError(f"{p}: not a folder")
    return p


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DatasetError(f"{path}: malformed JSON ({str(exc).splitlines()[0]})") from None


def _read_yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise DatasetError(f"{path}: malformed YAML ({str(exc).splitlines()[0]})") from None


def _mapping(value: Any, path: Path, what: str) -> dict:
    if not isinstance(value, dict):
        raise DatasetError(f"{path}: {what} must be a mapping, got {type(value).__name__}")
    return value


def _subdirs(path: Path) -> list[Path]:
    return sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))


def _audio_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir()
                  if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES and not p.name.startswith("."))


def _load_splits(root: Path, what: str = "song names") -> dict[str, str]:
    """Name -> split from an optional ``ROOT/splits.json`` ``{"train": [names], ...}`` (``what``: what the
    names are, for the error message)."""
    path = root / "splits.json"
    if not path.is_file():
        return {}
    data = _mapping(_read_json(path), path, "the top level")
    out: dict[str, str] = {}
    for split, names in data.items():
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise DatasetError(f"{path}: split '{split}' must be a list of {what}")
        for name in names:
            out[name] = str(split)
    return out


def _finish(songs: list[Song], root: Path, layout: str, split: str | None) -> list[Song]:
    songs = sorted((s for s in songs if s.stems), key=lambda s: s.name)
    if not songs:
        raise DatasetError(f"{root}: no {layout} songs with stems found")
    if split is None:
        return songs
    chosen = [s for s in songs if s.split == split]
    if not chosen:
        present = sorted({str(s.split) for s in songs})
        raise DatasetError(f"{root}: no songs in split '{split}' (splits present: {', '.join(present)})")
    return chosen


# ---------------------------------------------------------------------------------------- adapters


def load_folder(root: str | os.PathLike, split: str | None = None) -> list[Song]:
    """Generic ``ROOT/<song>/<stem>.{wav,flac,ogg,mp3}`` folders (``mixture.*`` / ``mix.*`` skipped).

    A song's ``metadata.json`` in the diffariff corpus format (``split``, ``stems: {name: {file, role,
    instrument, family, program, is_drum, tags}}`` and song-level keys) is authoritative for its stems
    and labels; without it, labels are guessed from the file names and the split comes from an
    optional ``ROOT/splits.json``.
    """
    root = _check_root(root)
    splits = _load_splits(root)
    songs = []
    for folder in _subdirs(root):
        meta_path = folder / "metadata.json"
        if meta_path.is_file():
            songs.append(_folder_song_from_metadata(folder, meta_path, root))
            continue
        stems = {}
        for path in _audio_files(folder):
            if path.stem.lower() in MIX_NAMES:
                continue
            if path.stem in stems:
                raise DatasetError(f"{path}: two audio files for stem '{path.stem}' in {folder}")
            stems[path.stem] = _labelled_stem(path.stem, (path,), path.stem)
        songs.append(Song(folder.name, stems, splits.get(folder.name), "folder", {}, folder))
    return _finish(songs, root, "folder", split)


def _folder_song_from_metadata(folder: Path, meta_path: Path, root: Path) -> Song:
    meta = _mapping(_read_json(meta_path), meta_path, "the top level")
    entries = _mapping(meta.get("stems"), meta_path, "'stems'")
    stems = {}
    for name, entry in entries.items():
        entry = _mapping(entry, meta_path, f"stem '{name}'")
        file = entry.get("file")
        if not isinstance(file, str):
            raise DatasetError(f"{meta_path}: stem '{name}' has no 'file'")
        path = folder / file
        if not path.is_file():
            raise DatasetError(f"{meta_path}: stem '{name}' names a missing file {path}")
        guessed_role, guessed_family, _ = guess_labels(str(entry.get("instrument") or name))
        role = str(entry.get("role") or guessed_role)
        tags = entry.get("tags") or []
        if not isinstance(tags, list):
            raise DatasetError(f"{meta_path}: stem '{name}' tags must be a list")
        extra = {k: v for k, v in entry.items() if k not in ("file", "role", "instrument", "family", "tags")}
        is_vocal = bool(entry.get("is_vocal", role.startswith("vocal")))
        stems[str(name)] = Stem(str(name), (path,), role, str(entry.get("instrument") or name),
                                str(entry.get("family") or guessed_family), _unique(tags), is_vocal, extra)
    split = meta.get("split")
    song_tags = {k: v for k, v in meta.items() if k not in ("stems", "split")}
    return Song(folder.name, stems, None if split is None else str(split), "folder", song_tags, folder)


def load_musdb(root: str | os.PathLike, split: str | None = None) -> list[Song]:
    """MUSDB18-HQ ``ROOT/{train,test}/<track>/{mixture,drums,bass,other,vocals}.wav`` (44.1 kHz).

    ``mixture`` is skipped, ``vocals`` is a vocal (context-only) stem, the split is the folder name.
    """
    root = _check_root(root)
    labels = {"drums": ("drums", "drums", "drums"), "bass": ("bass", "bass", "bass"),
              "other": ("other", "other", "other"), "vocals": ("vocals", "vocals", "vocals")}
    songs = []
    for split_dir in (root / "train", root / "test"):
        if not split_dir.is_dir():
            continue
        for folder in _subdirs(split_dir):
            stems = {}
            for name, (role, family, instrument) in labels.items():
                path = folder / f"{name}.wav"
                if path.is_file():
                    stems[name] = Stem(name, (path,), role, instrument, family, (instrument,),
                                       name == "vocals", {})
            songs.append(Song(folder.name, stems, split_dir.name, "musdb", {}, folder))
    if not songs:
        raise DatasetError(f"{root}: not a MUSDB18-HQ folder (expected train/ and test/ track folders)")
    return _finish(songs, root, "musdb", split)


def load_slakh(root: str | os.PathLike, split: str | None = None) -> list[Song]:
    """Slakh2100 ``ROOT/TrackNNNNN/`` or ``ROOT/{train,validation,test,omitted}/TrackNNNNN/``.

    Each track's ``metadata.yaml`` lists ``stems: {SNN: {audio_rendered, inst_class, is_drum,
    midi_program_name, program_num, plugin_name}}``; stems not rendered or without a file are skipped.
    The split is the parent folder's name, else ``ROOT/splits.json``, else None.
    """
    root = _check_root(root)
    splits = _load_splits(root)
    tracks: list[tuple[Path, str | None]] = []
    for folder in _subdirs(root):
        if (folder / "metadata.yaml").is_file():
            tracks.append((folder, splits.get(folder.name)))
        else:
            tracks += [(t, folder.name) for t in _subdirs(folder) if (t / "metadata.yaml").is_file()]
    if not tracks:
        raise DatasetError(f"{root}: not a Slakh2100 folder (no Track*/metadata.yaml found)")
    return _finish([_slakh_song(folder, s) for folder, s in tracks], root, "slakh", split)


def _slakh_song(folder: Path, split: str | None) -> Song:
    meta_path = folder / "metadata.yaml"
    meta = _mapping(_read_yaml(meta_path), meta_path, "the top level")
    entries = _mapping(meta.get("stems"), meta_path, "'stems'")
    audio_dir = folder / str(meta.get("audio_dir") or "stems")
    stems = {}
    for name, entry in entries.items():
        entry = _mapping(entry, meta_path, f"stem '{name}'")
        if not entry.get("audio_rendered", True):
            continue
        path = next((p for p in (audio_dir / f"{name}.flac", audio_dir / f"{name}.wav") if p.is_file()), None)
        if path is None:
            continue
        inst_class = str(entry.get("inst_class") or "").strip().lower()
        program_name = str(entry.get("midi_program_name") or inst_class or name).strip().lower()
        is_drum = bool(entry.get("is_drum", False))
        role = "drums" if is_drum else _SLAKH_ROLES.get(inst_class, "other")
        family = "drums" if is_drum else (inst_class.replace(" (continued)", "") or "other")
        info = {k: entry[k] for k in ("program_num", "plugin_name", "is_drum", "inst_class") if k in entry}
        stems[str(name)] = Stem(str(name), (path,), role, program_name, family,
                                _unique((program_name, inst_class)), False, info)
    tags = {k: meta[k] for k in ("UUID", "overall_gain") if k in meta}
    return Song(folder.name, stems, split, "slakh", tags, folder)


def load_moisesdb(root: str | os.PathLike, split: str | None = None) -> list[Song]:
    """MoisesDB ``ROOT/<provider>/<uuid>/data.json`` with audio at ``<uuid>/<stemName>/<id>.<ext>``.

    One stem per ``stemName``, the sum of its tracks; ``vocals`` is a vocal stem; tags come from the
    tracks' ``trackType`` and the song's genre. Songs are named by their folder (uuid); the split
    comes from an optional ``ROOT/splits.json``.
    """
    root = _check_root(root)
    splits = _load_splits(root)
    metas = sorted(root.glob("*/data.json")) + sorted(root.glob("*/*/data.json"))
    if not metas:
        raise DatasetError(f"{root}: not a MoisesDB folder (no <provider>/<uuid>/data.json found)")
    songs = [_moises_song(path, splits, root) for path in metas]
    return _finish(songs, root, "moisesdb", split)


def _moises_song(meta_path: Path, splits: dict[str, str], root: Path) -> Song:
    folder = meta_path.parent
    meta = _mapping(_read_json(meta_path), meta_path, "the top level")
    entries = meta.get("stems")
    if not isinstance(entries, list):
        raise DatasetError(f"{meta_path}: 'stems' must be a list")
    genre = str(meta.get("genre") or "").strip().lower()
    stems = {}
    for entry in entries:
        entry = _mapping(entry, meta_path, "a stem entry")
        name, tracks = entry.get("stemName"), entry.get("tracks")
        if not isinstance(name, str) or not isinstance(tracks, list) or not tracks:
            raise DatasetError(f"{meta_path}: each stem needs a 'stemName' and a non-empty 'tracks' list")
        files, types = [], []
        for track in tracks:
            track = _mapping(track, meta_path, f"a track of stem '{name}'")
            if "id" not in track:
                raise DatasetError(f"{meta_path}: a track of stem '{name}' has no 'id'")
            path = folder / name / f"{track['id']}.{track.get('extension', 'wav')}"
            if not path.is_file():
                raise DatasetError(f"{meta_path}: track file {path} is missing")
            files.append(path)
            types.append(str(track.get("trackType") or name))
        info = {"tracks": [{k: t.get(k) for k in ("id", "trackType", "has_bleed")} for t in tracks],
                "has_bleed": any(bool(t.get("has_bleed")) for t in tracks)}
        instrument = ", ".join(_unique(types))
        stem = _labelled_stem(name, tuple(files), name, (*types, genre), info, instrument)
        if stem.role == "other":
            stem.role, stem.family, stem.is_vocal = guess_labels(instrument)
        stems[name] = stem
    tags = {k: meta[k] for k in ("song", "artist", "genre") if k in meta}
    if folder.parent != root:
        tags["provider"] = folder.parent.name
    return Song(folder.name, stems, splits.get(folder.name), "moisesdb", tags, folder)


def load_medleydb(root: str | os.PathLike, split: str | None = None) -> list[Song]:
    """MedleyDB ``ROOT/Audio/<Track>/<Track>_STEMS/<Track>_STEM_NN.wav`` (``ROOT`` may be ``Audio``).

    Metadata ``<Track>_METADATA.yaml`` beside the audio or in ``ROOT/Metadata/``: ``stems: {SNN:
    {filename, instrument, component}}`` and ``genre``. Stems are named by their key (``S01``);
    singers / vocals are vocal stems; ``component: bass|melody`` sets the role of the others.
    """
    root = _check_root(root)
    audio_root = root / "Audio" if (root / "Audio").is_dir() else root
    tracks = [d for d in _subdirs(audio_root) if (d / f"{d.name}_STEMS").is_dir()]
    if not tracks:
        raise DatasetError(f"{root}: not a MedleyDB folder (no Audio/<Track>/<Track>_STEMS found)")
    splits = _load_splits(root)
    meta_dirs = [root / "Metadata", audio_root.parent / "Metadata"]
    return _finish([_medley_song(d, meta_dirs, splits) for d in tracks], root, "medleydb", split)


def _medley_song(folder: Path, meta_dirs: list[Path], splits: dict[str, str]) -> Song:
    fname = f"{folder.name}_METADATA.yaml"
    candidates = [folder / fname] + [d / fname for d in meta_dirs]
    meta_path = next((p for p in candidates if p.is_file()), None)
    if meta_path is None:
        raise DatasetError(f"{folder}: no {fname} beside the audio or in a Metadata/ folder")
    meta = _mapping(_read_yaml(meta_path), meta_path, "the top level")
    entries = _mapping(meta.get("stems"), meta_path, "'stems'")
    stem_dir = folder / str(meta.get("stem_dir") or f"{folder.name}_STEMS")
    genre = str(meta.get("genre") or "").strip().lower()
    stems = {}
    for key, entry in sorted(entries.items()):
        entry = _mapping(entry, meta_path, f"stem '{key}'")
        filename = entry.get("filename")
        if not isinstance(filename, str):
            raise DatasetError(f"{meta_path}: stem '{key}' has no 'filename'")
        path = stem_dir / filename
        if not path.is_file():
            raise DatasetError(f"{meta_path}: stem '{key}' names a missing file {path}")
        raw = entry.get("instrument") or ""
        instrument = ", ".join(raw) if isinstance(raw, list) else str(raw)
        instrument = instrument.strip().lower()
        role, family, vocal = guess_labels(instrument or str(key))
        vocal = vocal or any(w in instrument for w in ("singer", "vocal", "voice"))
        component = str(entry.get("component") or "").strip().lower()
        if vocal:
            role, family = "vocals", "vocals"
        elif component == "bass":
            role = "bass"
        elif component == "melody":
            role = "lead"
        info = {"component": component} if component else {}
        stems[str(key)] = Stem(str(key), (path,), role, instrument or "unknown", family,
                               _unique((instrument, genre)), vocal, info)
    tags = {k: meta[k] for k in ("artist", "title", "genre", "has_bleed", "instrumental") if k in meta}
    return Song(folder.name, stems, splits.get(folder.name), "medleydb", tags, folder)


# ---------------------------------------------------------------------------------------- dispatch

_LOADERS = {"folder": load_folder, "musdb": load_musdb, "slakh": load_slakh, "moisesdb": load_moisesdb,
            "medleydb": load_medleydb}


def detect_layout(root: str | os.PathLike) -> str:
    """Name of the layout of ``root`` (one of :data:`LAYOUTS` but ``auto``), or DatasetError."""
    root = _check_root(root)
    subdirs = _subdirs(root)
    audio_root = root / "Audio" if (root / "Audio").is_dir() else root
    if any((d / f"{d.name}_STEMS").is_dir() for d in _subdirs(audio_root)):
        return "medleydb"
    for split_dir in (root / "train", root / "test"):
        if split_dir.is_dir() and any((t / "mixture.wav").is_file() or (t / "vocals.wav").is_file()
                                      for t in _subdirs(split_dir)):
            return "musdb"
    if any((d / "metadata.yaml").is_file() or any((t / "metadata.yaml").is_file() for t in _subdirs(d))
           for d in subdirs):
        return "slakh"
    if any(root.glob("*/data.json")) or any(root.glob("*/*/data.json")):
        return "moisesdb"
    if any(_audio_files(d) or (d / "metadata.json").is_file() for d in subdirs):
        return "folder"
    raise DatasetError(f"{root}: unrecognised dataset layout (expected one of: {', '.join(LAYOUTS[1:])})")


def open_dataset(root: str | os.PathLike, layout: str = "auto", split: str | None = None) -> list[Song]:
    """Songs of the dataset at ``root`` (sorted by name), optionally only those of ``split`` (None or
    ``"all"``: every song).

    ``layout``: ``"auto"`` (detect) or one of ``folder``, ``musdb``, ``slakh``, ``moisesdb``,
    ``medleydb``. Raises DatasetError for a missing root, unknown layout or malformed metadata.
    """
    split = None if split == "all" else split
    if layout not in LAYOUTS:
        raise DatasetError(f"unknown dataset layout '{layout}' (use one of: {', '.join(LAYOUTS)})")
    if layout == "auto":
        layout = detect_layout(root)
    return _LOADERS[layout](root, split)
