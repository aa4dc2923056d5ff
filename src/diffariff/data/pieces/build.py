"""Building a corpus of real pieces: inventory -> order -> pieces -> windows -> song folders.

Order: the pieces are grouped by genre (string quartet, choral, keyboard and chamber, folk tune, game
music), shuffled inside each group with the corpus seed, and interleaved group by group, so a small
corpus already spans every genre. Piece ``r`` of that order writes its windows as songs
``PIECE_INDEX_BASE + r * WINDOW_STRIDE + w`` (``song_1000000`` ...): names never collide with the
procedural corpus's, so both can share one folder (``--source all``), and a piece's songs are known
without reading any other piece. ``songs`` counts windows: pieces are rendered in order until their
windows reach it (with ``jobs`` > 1, pieces already in flight then are finished and kept).

Splits follow the piece, not the window: a hash of the piece id gives train (90 %), valid (5 %) or
test (5 %), the same in every corpus and for every seed, so no piece leaks across splits; pieces by a
held-out composer (or collection) all go to ``test`` (``holdout: "composer"`` in their metadata),
for out-of-domain figures.

Resumable like the procedural corpus: each song is written to ``OUT/.partial`` and renamed when
complete; ``OUT/pieces_manifest.json`` records each piece's outcome and the settings, and a rerun
skips pieces whose songs are all complete (and refuses other settings in the same folder). Workers
(``jobs``) are forked processes; each loads the soundfonts it needs once.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing as mp
import os
import sys
import warnings
from pathlib import Path

import numpy as np
import soundfile as sf
from tqdm import tqdm

from ...errors import DatasetError, InputError
from ...fsutil import write_json_atomic
from ..synth.corpus import MAX_SECONDS, MIN_SECONDS, song_name
from ..synth.metadata import validate_metadata
from ..synth.render import check_not_reserved as check_font
from ..synth.render import check_soundfont_file, soundfont_info, training_soundfonts
from .arrange import MAX_TEMPO, MIN_TEMPO, make_window, prepare, window_starts
from .inventory import MIDI_SUFFIXES, PieceRef, ReservedPieceError, all_refs
from .midi_load import load_midi
from .model import Piece
from .music21_load import load_music21, load_score_file
from .song import render_window

PIECE_INDEX_BASE = 1_000_000
WINDOW_STRIDE = 100
GENRE_ORDER = ("string quartet", "choral", "keyboard and chamber", "folk tune", "game music")
MANIFEST = "pieces_manifest.json"


def split_of_piece(piece_id: str) -> str:
    """``train`` (~90 %), ``valid`` (~5 %) or ``test`` (~5 %) from a hash of the piece id alone."""
    r = int.from_bytes(hashlib.blake2b(piece_id.encode(), digest_size=8).digest(), "big") % 100
    return "train" if r < 90 else ("valid" if r < 95 else "test")


def held_out(piece: Piece | PieceRef, holdout: tuple[str, ...]) -> bool:
    """True when the piece's composer or collection contains one of ``holdout`` (case-insensitive)."""
    text = f"{piece.composer}\n{piece.collection}".lower()
    return any(h.strip().lower() and h.strip().lower() in text for h in holdout)


def piece_order(refs: list[PieceRef], seed: int) -> list[PieceRef]:
    """Genre groups shuffled with ``seed`` and interleaved (see the module docstring)."""
    rng = np.random.default_rng([int(seed), 77])
    groups = {g: [r for r in refs if r.genre == g] for g in GENRE_ORDER}
    groups["other"] = [r for r in refs if r.genre not in GENRE_ORDER]
    queues = []
    for g in (*GENRE_ORDER, "other"):
        items = sorted(groups[g], key=lambda r: r.id)
        queues.append([items[i] for i in rng.permutation(len(items))])
    out: list[PieceRef] = []
    while any(queues):
        for q in queues:
            if q:
                out.append(q.pop(0))
    return out


def load_piece(ref: PieceRef) -> Piece:
    """Read a piece from its source (Bach refused)."""
    if ref.source == "music21":
        return load_music21(ref)
    if ref.source == "file" and Path(ref.path).suffix.lower() not in MIDI_SUFFIXES:
        return load_score_file(ref)
    return load_midi(ref)


def resolve_fonts(soundfonts: str | list[str] | None, allow_reserved: bool = False) -> tuple[list[Path], list[Path]]:
    """(melodic soundfonts, drum soundfonts) from ``all`` / None or a list of paths."""
    if soundfonts is None or soundfonts == "all":
        melodic = [s.path for s in training_soundfonts(("gm",))]
        drums = melodic + [s.path for s in training_soundfonts(("drums-only",))]
    else:
        paths = [Path(p) for p in (soundfonts.split(",") if isinstance(soundfonts, str) else soundfonts) if str(p)]
        for p in paths:
            check_soundfont_file(p)
            if not allow_reserved:
                check_font(p)
        kinds = {p: soundfont_info(p).kind for p in paths}
        melodic = [p for p in paths if kinds[p] in ("gm", "gm-ood")]  # a named bank plays, held out or not
        drums = [p for p in paths if kinds[p] in ("gm", "gm-ood", "drums-only")]
    if not melodic:
        raise InputError("no General MIDI soundfont to render melodic parts with (drum-only banks play drums only)")
    return melodic, drums


def render_piece_songs(piece: Piece, out: str | os.PathLike, *, seed: int, seconds: float, rank: int = 0,
                       max_windows: int = 4, soundfonts: str | list[str] | None = None,
                       holdout: tuple[str, ...] = (), allow_reserved: bool = False, tidy: bool = True) -> list[Path]:
    """Render every window of ``piece`` into ``out``; the song folders written. ``tidy`` removes the
    emptied ``out/.partial`` (the corpus builder does that itself once its workers are done)."""
    if not 1 <= int(max_windows) <= WINDOW_STRIDE:
        raise InputError(f"--windows-per-piece must be within 1-{WINDOW_STRIDE}, got {max_windows}")
    fonts, drum_fonts = resolve_fonts(soundfonts, allow_reserved)
    prep = prepare(piece, seed, seconds)
    starts = window_starts(prep.piece, seconds, max_windows)
    is_held = held_out(piece, holdout)
    split = "test" if is_held else split_of_piece(piece.id)
    paths = []
    for w, start in enumerate(starts):
        win = make_window(prep, w, start, seconds, seed)
        if not MIN_TEMPO <= win.tempo <= MAX_TEMPO:  # a local tempo the metadata cannot hold
            continue
        index = PIECE_INDEX_BASE + int(rank) * WINDOW_STRIDE + w
        path = render_window(prep, win, out, index=index, seed=seed, split=split, fonts=fonts,
                             drum_fonts=drum_fonts, windows=len(starts), holdout="composer" if is_held else None)
        if path is not None:
            paths.append(path)
    partial = Path(out) / ".partial"
    if tidy and partial.is_dir() and not any(partial.iterdir()):
        partial.rmdir()
    return paths


def song_complete(folder: Path, piece_id: str, seed: int, seconds: float) -> bool:
    """True when ``folder`` holds a finished song of piece ``piece_id`` with these settings."""
    try:
        meta = json.loads((folder / "metadata.json").read_text(encoding="utf-8"))
        validate_metadata(meta, folder)
    except (OSError, json.JSONDecodeError, UnicodeDecodeError, DatasetError):
        return False
    if meta.get("source_id") != piece_id or meta["seed"] != seed or abs(meta["seconds"] - seconds) > 1e-9:
        return False
    try:
        files = [meta["mixture"]] + [s["file"] for s in meta["stems"].values()]
        return all(sf.info(str(folder / f)).frames == meta["num_samples"] for f in files)
    except (sf.LibsndfileError, RuntimeError):
        return False


def _task(task: tuple) -> dict:
    rank, ref, out, seed, seconds, max_windows, soundfonts, holdout, allow_reserved = task
    warnings.filterwarnings("ignore")  # music21 warns about every odd notation detail
    result = {"rank": rank, "id": ref.id}
    try:
        piece = load_piece(ref)
        paths = render_piece_songs(piece, out, seed=seed, seconds=seconds, rank=rank, max_windows=max_windows,
                                   soundfonts=soundfonts, holdout=holdout, allow_reserved=allow_reserved,
                                   tidy=False)
    except ReservedPieceError:
        return {**result, "status": "reserved", "songs": []}
    except Exception as exc:  # noqa: BLE001 - a score music21 cannot read (or window) is skipped, not fatal
        text = str(exc).splitlines()[0][:200] if str(exc) else ""
        return {**result, "status": f"failed: {type(exc).__name__}: {text}", "songs": []}
    return {**result, "status": "ok", "songs": [p.name for p in paths]}


def build_pieces_corpus(out: str | os.PathLike, songs: int, seconds: float, seed: int = 0, jobs: int = 1,
                        soundfonts: str | list[str] | None = None, progress: bool = True, max_windows: int = 4,
                        holdout: tuple[str, ...] = (), refs: list[PieceRef] | None = None,
                        allow_reserved: bool = False) -> list[Path]:
    """Render pieces in order until ``songs`` windows exist in ``out``; return those song folders."""
    if int(songs) < 1 or int(jobs) < 1 or int(seed) < 0:
        raise InputError("--songs and --jobs must be at least 1 and --seed non-negative")
    if not MIN_SECONDS <= float(seconds) <= MAX_SECONDS:
        raise InputError(f"--seconds must be within {MIN_SECONDS:g}-{MAX_SECONDS:g}, got {seconds}")
    resolve_fonts(soundfonts, allow_reserved)  # fail early on a bad --soundfonts
    root = Path(out)
    if root.exists() and not root.is_dir():
        raise InputError(f"--out {root} exists and is not a folder")
    root.mkdir(parents=True, exist_ok=True)
    fonts_key = soundfonts if isinstance(soundfonts, str) or soundfonts is None else ",".join(map(str, soundfonts))
    settings = {"seed": int(seed), "seconds": float(seconds), "max_windows": int(max_windows),
                "soundfonts": fonts_key or "all", "holdout": sorted(holdout)}
    manifest = _read_manifest(root, settings)
    order = piece_order(refs if refs is not None else all_refs(), seed)
    done: dict[int, dict] = {int(k): v for k, v in manifest["pieces"].items()}

    def finished(rank: int, ref: PieceRef) -> bool:
        entry = done.get(rank)
        if entry is None or entry["id"] != ref.id:
            return False
        return all(song_complete(root / s, ref.id, int(seed), float(seconds)) for s in entry["songs"])

    count, rank, results = 0, 0, []
    bar = tqdm(total=int(songs), unit="song", desc="pieces", disable=not (progress and sys.stderr.isatty()))
    method = "fork" if "fork" in mp.get_all_start_methods() else "spawn"
    pool = mp.get_context(method).Pool(int(jobs)) if jobs > 1 else None
    pending: list = []
    try:
        while count < songs and (rank < len(order) or pending):
            while rank < len(order) and len(pending) < int(jobs) and count < songs:
                ref = order[rank]
                if finished(rank, ref):
                    results.append(done[rank])
                    count += len(done[rank]["songs"])
                    bar.update(len(done[rank]["songs"]))
                else:
                    task = (rank, ref, str(root), int(seed), float(seconds), int(max_windows), soundfonts,
                            tuple(holdout), allow_reserved)
                    pending.append(pool.apply_async(_task, (task,)) if pool else _Done(_task(task)))
                rank += 1
            if pending:
                res = pending.pop(0).get()
                done[res["rank"]] = res
                manifest["pieces"][str(res["rank"])] = res
                write_json_atomic(root / MANIFEST, manifest)
                results.append(res)
                count += len(res["songs"])
                bar.update(len(res["songs"]))
        for p in pending:  # pieces already in flight are finished and kept
            res = p.get()
            manifest["pieces"][str(res["rank"])] = res
        write_json_atomic(root / MANIFEST, manifest)
    finally:
        bar.close()
        if pool is not None:
            pool.close()
            pool.join()
    partial = root / ".partial"
    if partial.is_dir() and not any(partial.iterdir()):
        partial.rmdir()
    results.sort(key=lambda r: r["rank"])
    return [root / s for r in results for s in r["songs"]]


class _Done:
    """A finished result with the ``get()`` of an AsyncResult (the jobs == 1 path)."""

    def __init__(self, value: dict) -> None:
        self.value = value

    def get(self) -> dict:
        return self.value


def _read_manifest(root: Path, settings: dict) -> dict:
    path = root / MANIFEST
    if not path.is_file():
        return {"format": "diffariff-pieces-manifest", "settings": settings, "pieces": {}}
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise DatasetError(f"{path} is unreadable ({exc}); remove it to rebuild the manifest") from exc
    if manifest.get("settings") != settings:
        raise DatasetError(f"{root} was rendered with {manifest.get('settings')}; asked for {settings} "
                           "(use another --out)")
    return manifest


def song_index(rank: int, window: int) -> str:
    """Folder name of window ``window`` of the piece ranked ``rank``."""
    return song_name(PIECE_INDEX_BASE + int(rank) * WINDOW_STRIDE + int(window))
