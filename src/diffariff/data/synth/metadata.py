"""The ``metadata.json`` of a corpus song: its schema and a validator with precise messages.

A song folder holds ``<stem>.flac`` per part, ``mixture.flac`` (the exact sum of the stems) and
``metadata.json``::

    {"format": "diffariff-song", "version": 1, "name": "song_00000", "seed": 0, "index": 0,
     "split": "train", "sample_rate": 48000, "seconds": 8.0, "num_samples": 384000,
     "key": "A", "mode": "minor", "tempo": 112.0, "meter": [4, 4], "style": "funk",
     "progression": ["Am7", "D7"], "sections": [{"name": "verse", "start_bar": 0, "bars": 8,
     "progression": [...]}], "soundfont": "FluidR3_GM.sf2", "mixture": "mixture.flac",
     "tags": [...], "stems": {"bass": {"file": "bass.flac", "role": "bass", "instrument": "...",
     "program": 33, "family": "bass", "is_drum": false, "style": "walking", "register": "low",
     "tags": [...], "rms_db": -18.2, "num_notes": 120}}}

``tempo`` is in quarter notes per minute; ``program`` is the 0-based GM program (the drum-kit
program for drums).
"""

from __future__ import annotations

from pathlib import Path

from ...errors import DatasetError
from .gm import FAMILIES
from .styles import ROLES
from .theory import MODES, NOTE_NAMES

FORMAT = "diffariff-song"
VERSION = 1
SPLITS = ("train", "valid", "test")
SECTION_NAMES = ("intro", "verse", "chorus", "bridge", "outro")
REGISTERS = ("low", "mid", "high", "full")

#: Required top-level fields and their JSON types.
SONG_FIELDS: dict[str, type | tuple[type, ...]] = {
    "format": str, "version": int, "name": str, "seed": int, "index": int, "split": str,
    "sample_rate": int, "seconds": (int, float), "num_samples": int, "key": str, "mode": str,
    "tempo": (int, float), "meter": list, "style": str, "progression": list, "sections": list,
    "soundfont": str, "mixture": str, "tags": list, "stems": dict,
}
#: Required fields of every stem entry and their JSON types.
STEM_FIELDS: dict[str, type | tuple[type, ...]] = {
    "file": str, "role": str, "instrument": str, "program": int, "family": str, "is_drum": bool,
    "style": str, "register": str, "tags": list, "rms_db": (int, float), "num_notes": int,
}


def _check_fields(obj: dict, fields: dict, where: str) -> None:
    for name, typ in fields.items():
        if name not in obj:
            raise DatasetError(f"{where}: missing field '{name}'")
        val = obj[name]
        if isinstance(val, bool) and typ is not bool:  # JSON true/false are not numbers here
            raise DatasetError(f"{where}: field '{name}' must be {_type_name(typ)}, got a boolean")
        if not isinstance(val, typ):
            raise DatasetError(f"{where}: field '{name}' must be {_type_name(typ)}, got {type(val).__name__}")


def _type_name(typ: type | tuple[type, ...]) -> str:
    return " or ".join(t.__name__ for t in typ) if isinstance(typ, tuple) else typ.__name__


def validate_metadata(meta: object, folder: str | Path | None = None) -> None:
    """Raise :class:`DatasetError` naming the first problem of a song's metadata dict.

    With ``folder`` the files it names (mixture and stems) must exist there.
    """
    where = f"{folder}/metadata.json" if folder is not None else "metadata"
    if not isinstance(meta, dict):
        raise DatasetError(f"{where}: expected a JSON object, got {type(meta).__name__}")
    _check_fields(meta, SONG_FIELDS, where)
    if meta["format"] != FORMAT:
        raise DatasetError(f"{where}: format is '{meta['format']}', expected '{FORMAT}'")
    if meta["version"] != VERSION:
        raise DatasetError(f"{where}: unsupported version {meta['version']} (this build reads {VERSION})")
    if meta["split"] not in SPLITS:
        raise DatasetError(f"{where}: split '{meta['split']}' is not one of {', '.join(SPLITS)}")
    if meta["sample_rate"] <= 0 or meta["seconds"] <= 0:
        raise DatasetError(f"{where}: sample_rate and seconds must be positive")
    if meta["num_samples"] != int(round(meta["seconds"] * meta["sample_rate"])):
        raise DatasetError(f"{where}: num_samples {meta['num_samples']} != seconds x sample_rate")
    if meta["key"] not in NOTE_NAMES:
        raise DatasetError(f"{where}: key '{meta['key']}' is not one of {', '.join(NOTE_NAMES)}")
    if meta["mode"] not in MODES:
        raise DatasetError(f"{where}: unknown mode '{meta['mode']}'")
    if not 20 <= meta["tempo"] <= 400:
        raise DatasetError(f"{where}: tempo {meta['tempo']} is outside 20-400 bpm")
    m = meta["meter"]
    if len(m) != 2 or not all(isinstance(x, int) and x > 0 for x in m):
        raise DatasetError(f"{where}: meter must be [beats, unit], got {m}")
    if not meta["progression"] or not all(isinstance(c, str) for c in meta["progression"]):
        raise DatasetError(f"{where}: progression must be a non-empty list of chord symbols")
    for i, s in enumerate(meta["sections"]):
        if not isinstance(s, dict) or s.get("name") not in SECTION_NAMES:
            raise DatasetError(f"{where}: section {i} must have a name among {', '.join(SECTION_NAMES)}")
        if not isinstance(s.get("start_bar"), int) or not isinstance(s.get("bars"), int) or s["bars"] < 1:
            raise DatasetError(f"{where}: section {i} needs integer start_bar and bars >= 1")
    if not meta["sections"]:
        raise DatasetError(f"{where}: no sections")
    if len(meta["stems"]) < 2:
        raise DatasetError(f"{where}: a song needs at least 2 stems, has {len(meta['stems'])}")
    files = {meta["mixture"]}
    for name, stem in meta["stems"].items():
        sw = f"{where}: stem '{name}'"
        if not isinstance(stem, dict):
            raise DatasetError(f"{sw} must be an object")
        _check_fields(stem, STEM_FIELDS, sw)
        if name != name.lower() or name == "mixture" or Path(stem["file"]).stem != name:
            raise DatasetError(f"{sw}: name must be lower-case, not 'mixture', and match its file name")
        if stem["role"] not in ROLES:
            raise DatasetError(f"{sw}: role '{stem['role']}' is not one of {', '.join(ROLES)}")
        if stem["family"] not in FAMILIES + ("drums",):
            raise DatasetError(f"{sw}: unknown family '{stem['family']}'")
        if stem["is_drum"] != (stem["role"] == "drums") or stem["is_drum"] != (stem["family"] == "drums"):
            raise DatasetError(f"{sw}: is_drum, role and family disagree")
        if not 0 <= stem["program"] <= 127:
            raise DatasetError(f"{sw}: program {stem['program']} is outside 0..127")
        if stem["register"] not in REGISTERS:
            raise DatasetError(f"{sw}: register '{stem['register']}' is not one of {', '.join(REGISTERS)}")
        if not stem["tags"] or not all(isinstance(t, str) and t for t in stem["tags"]):
            raise DatasetError(f"{sw}: tags must be a non-empty list of strings")
        files.add(stem["file"])
    if folder is not None:
        for f in sorted(files):
            if not (Path(folder) / f).is_file():
                raise DatasetError(f"{where}: names {f}, which does not exist")
