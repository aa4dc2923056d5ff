"""Reading the built-in synthetic corpus for CLAP training and evaluation.

Layout: ``ROOT/<song>/metadata.json`` (``{"split": "train"|"valid"|"test", "stems": {name: {"file",
"role", "instrument", "family", "is_drum", "tags", ...}}, ...}``), stems at ``ROOT/<song>/<file>``
and the mixture at ``ROOT/<song>/mixture.flac`` (summed from the stems when missing).
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import numpy as np

from ..audio import load_audio
from ..errors import DatasetError

SPLITS = ("train", "valid", "test")
MIXTURE_FILE = "mixture.flac"


@dataclasses.dataclass
class SongEntry:
    """One corpus song: its folder, its name and its parsed ``metadata.json``."""

    name: str
    folder: Path
    meta: dict

    @property
    def split(self) -> str:
        return str(self.meta.get("split", "train"))

    @property
    def stems(self) -> dict[str, dict]:
        """Stem name -> stem metadata, in sorted name order."""
        stems = self.meta.get("stems") or {}
        return {k: stems[k] for k in sorted(stems)}

    def stem_path(self, name: str) -> Path:
        return self.folder / str(self.stems[name].get("file") or f"{name}.flac")


def scan_songs(root: str | os.PathLike, split: str | None = None) -> list[SongEntry]:
    """Songs under ``root`` (sorted by name), only those of ``split`` when given.

    Raises DatasetError when ``root`` is not a folder, a metadata file is unreadable, or no song
    (of that split) is found.
    """
    base = Path(root)
    if not base.is_dir():
        raise DatasetError(f"corpus folder not found: {base}")
    if split is not None and split not in SPLITS:
        raise DatasetError(f"unknown split '{split}' (use one of {', '.join(SPLITS)})")
    songs = []
    for meta_path in sorted(base.glob("*/metadata.json")):
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise DatasetError(f"{meta_path}: unreadable metadata ({exc})") from None
        if not isinstance(meta, dict) or not isinstance(meta.get("stems"), dict) or not meta["stems"]:
            raise DatasetError(f"{meta_path}: metadata has no 'stems' mapping")
        entry = SongEntry(meta_path.parent.name, meta_path.parent, meta)
        if split is None or entry.split == split:
            songs.append(entry)
    if not songs:
        what = f" of split '{split}'" if split else ""
        raise DatasetError(f"no corpus songs{what} under {base} (expected <song>/metadata.json)")
    return songs


def load_song_audio(song: SongEntry, sample_rate: int, with_mixture: bool = True) -> dict[str, np.ndarray]:
    """Mono float32 ``[N]`` audio at ``sample_rate`` Hz of every stem (by stem name) and, when
    ``with_mixture``, of the mixture under the key ``"mixture"``. Stems are zero-padded to the
    longest one; a missing ``mixture.flac`` is replaced by the sum of the stems."""
    out: dict[str, np.ndarray] = {}
    for name in song.stems:
        audio, _ = load_audio(song.stem_path(name), sample_rate=sample_rate, channels=1, max_seconds=None)
        out[name] = audio[0]
    n = max(a.shape[0] for a in out.values())
    out = {k: np.pad(a, (0, n - a.shape[0])) for k, a in out.items()}
    if with_mixture:
        mix_path = song.folder / MIXTURE_FILE
        if mix_path.is_file():
            mix, _ = load_audio(mix_path, sample_rate=sample_rate, channels=1, max_seconds=None)
            mix = mix[0][:n] if mix.shape[1] >= n else np.pad(mix[0], (0, n - mix.shape[1]))
        else:
            mix = np.sum(np.stack(list(out.values())), axis=0)
        out["mixture"] = mix.astype(np.float32)
    return out
