"""Rendering one window of a piece into a corpus song folder.

The folder is the procedural corpus's (``<stem>.flac``, ``mixture.flac`` = the sum of the stems,
``metadata.json`` passing :func:`..synth.metadata.validate_metadata`), with the same levelling
(per-role active RMS, then one song-wide scale under the mixture and stem peak ceilings). Each stem
goes through its own soundfont, drawn per stem from the training soundfonts (drums also from the
drum-only banks), with the in-process engine (each soundfont loaded once per process).

Extra metadata beside the corpus's fields: song level ``source``, ``source_id`` (the piece),
``collection``, ``composer``, ``title``, ``licence``, ``piece_window`` / ``piece_windows``,
``window_start_seconds`` (in the re-tempoed piece), ``tempo_factor``, ``transpose``,
``tempo_marked``, ``harmonised``, ``looped``, ``holdout``, ``bars`` (bar-line seconds in the song);
per stem ``source_part``, ``derived``, ``soundfont``, ``source_program``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from ...audio import save_audio
from ..synth import gm
from ..synth.corpus import (
    FADE_SECONDS,
    MIX_PEAK,
    ROLE_LEVEL_DB,
    SAMPLE_RATE,
    SILENT_DB,
    STEM_PEAK,
    active_rms_db,
    publish_song,
    rms_db,
    song_name,
)
from ..synth.engine import DRUM_CHANNEL, Event, get_engine
from ..synth.metadata import FORMAT, VERSION
from ..synth.render import soundfont_info
from .arrange import PreparedPiece, Window, piece_rng
from .model import Part
from .roles import choose_program, stem_names

#: Genre tag of each genre (true of every stem of such a song).
GENRE_TAGS = {"string quartet": "classical", "keyboard and chamber": "classical", "choral": "early music",
              "folk tune": "folk", "game music": "game music"}
ROLE_TAGS = {
    "drums": ("drums", "percussion", "beat"), "bass": ("bass line", "bass"),
    "chords": ("chords", "accompaniment"), "pad": ("pad", "sustained chords", "background"),
    "arpeggio": ("arpeggio", "broken chords"), "lead": ("lead", "melody"),
    "counter-melody": ("counter-melody", "secondary melody"),
}
#: Drum-only banks: soundfont name -> (instrument, tags).
DRUM_ONLY_KITS = {
    "Black_Pearl_4_LV2": ("Black Pearl Kit", ("drum kit", "acoustic drums", "live drums", "four-piece kit")),
    "Red_Zeppelin_4_LV2": ("Red Zeppelin Kit", ("drum kit", "acoustic drums", "live drums", "rock kit")),
}
ROLE_STYLE = {"drums": "groove", "bass": "bass line", "chords": "chordal", "pad": "sustained",
              "arpeggio": "broken chords", "lead": "melodic", "counter-melody": "counterpoint"}


def _tempo_feel(tempo: float) -> str:
    return "slow" if tempo < 80 else ("fast" if tempo > 140 else "mid-tempo")


def _stem_tags(role: str, program: int, is_drum: bool, kit: tuple[str, tuple[str, ...]], part: Part,
               seconds: float, tempo: float, genre: str) -> tuple[list[str], str]:
    """(tags, register) of one stem, from what it plays."""
    notes = part.notes
    tags = list(kit[1]) if is_drum else [*gm.program(program).tags, gm.program(program).family]
    tags += ROLE_TAGS[role]
    if part.style:  # derived parts: how they play ("root and fifth", "offbeat chords"...)
        tags.append(part.style)
    register = "full" if is_drum else ("low" if np.median([n.pitch for n in notes]) < 52 else
                                       "high" if np.median([n.pitch for n in notes]) >= 72 else "mid")
    if register != "full":
        tags.append(f"{register} register")
    rate = len({round(n.start, 3) for n in notes}) / max(seconds, 1e-6)
    tags.append("sparse" if rate < 1.5 else ("busy" if rate > 5.0 else "moderate density"))
    if not is_drum:
        mean_dur = float(np.mean([n.end - n.start for n in notes])) * tempo / 60.0  # in beats
        if mean_dur <= 0.3:
            tags.append("staccato")
        elif mean_dur >= 1.5:
            tags.append("sustained")
        elif role in ("lead", "counter-melody") and mean_dur >= 0.75:
            tags.append("legato")
    tags += [_tempo_feel(tempo)] + ([GENRE_TAGS[genre]] if genre in GENRE_TAGS else [])
    seen: set[str] = set()
    return [t for t in tags if not (t in seen or seen.add(t))], register


def _events(part: Part, program: int, bank: int, pan: float, reverb: int, chorus: int) -> list[Event]:
    ch = DRUM_CHANNEL if part.is_drum else 0
    evs = [Event(0.0, "program", ch, program, bank), Event(0.0, "cc", ch, 7, 100),
           Event(0.0, "cc", ch, 10, int(np.clip(round(64 + 63 * pan), 0, 127))),
           Event(0.0, "cc", ch, 91, reverb), Event(0.0, "cc", ch, 93, chorus)]
    evs += [Event(t, "cc", ch, c, v) for t, c, v in part.controls if c != 7 or v > 0]
    evs += [Event(t, "bend", ch, v) for t, v in part.bends]
    for n in part.notes:
        evs += [Event(n.start, "note_on", ch, n.pitch, n.velocity), Event(n.end, "note_off", ch, n.pitch)]
    return evs


def render_window(prep: PreparedPiece, win: Window, out_dir: str | os.PathLike, *, index: int, seed: int,
                  split: str, fonts: list[Path], drum_fonts: list[Path], windows: int,
                  holdout: str | None = None) -> Path | None:
    """Render ``win`` into ``out_dir/song_XXXXX`` (XXXXX = ``index``); None when fewer than two stems
    are audible. An existing folder of that name is replaced."""
    rng = piece_rng(seed, prep.piece.id, 2, win.index)
    engine = get_engine(SAMPLE_RATE)
    n = int(round(win.seconds * SAMPLE_RATE))
    fade = np.linspace(1.0, 0.0, int(FADE_SECONDS * SAMPLE_RATE), dtype=np.float32)
    used: set[int] = set()
    programs = []
    for part, role in zip(win.parts, win.roles, strict=True):
        programs.append(choose_program(rng, role, [x.pitch for x in part.notes], part.program, part.is_drum, used))
        used.add(programs[-1])
    names = stem_names(win.roles, programs)
    stems: dict[str, np.ndarray] = {}
    info: dict[str, dict] = {}
    for part, role, program, name in zip(win.parts, win.roles, programs, names, strict=True):
        font = Path(rng.choice([str(f) for f in (drum_fonts if part.is_drum else fonts)]))
        sf = soundfont_info(font)
        ch = DRUM_CHANNEL if part.is_drum else 0
        preset = engine.resolve_preset(font, ch, 128 if part.is_drum else 0, program)
        if preset is None:
            continue
        played = preset[1] if sf.kind != "drums-only" else 0
        if part.is_drum:
            kit = DRUM_ONLY_KITS.get(sf.name, ("Drum Kit", ("drum kit", "drums"))) if sf.kind == "drums-only" \
                else gm.DRUM_KITS.get(played, gm.DRUM_KITS[0])
            instrument, family = kit[0], "drums"
        else:
            kit = ("", ())
            instrument, family = gm.program(played).name, gm.program(played).family
        pan = 0.0 if role in ("drums", "bass") else float(np.clip(rng.normal(0, 0.35), -0.8, 0.8))
        reverb = int(np.clip({"drums": 30, "bass": 10, "pad": 90, "lead": 60}.get(role, 50)
                             + rng.integers(-10, 11), 0, 127))
        chorus = int(rng.integers(20, 60)) if role in ("pad", "chords") and rng.random() < 0.3 else 0
        audio = engine.render(_events(part, program, 0, pan, reverb, chorus), font, seconds=win.seconds,
                              reverb=True, chorus=True)
        audio[:, n - fade.size:] *= fade
        if rms_db(audio) < SILENT_DB:
            continue
        gain_db = ROLE_LEVEL_DB[role] + float(rng.normal(0.0, 1.5)) - active_rms_db(audio)
        stems[name] = (audio * np.float32(10 ** (gain_db / 20))).astype(np.float32)
        tags, register = _stem_tags(role, played, part.is_drum, kit, part, win.seconds, win.tempo,
                                    prep.piece.genre)
        info[name] = {
            "file": f"{name}.flac", "role": role, "instrument": instrument, "program": int(played),
            "family": family, "is_drum": part.is_drum, "style": part.style or ROLE_STYLE[role], "register": register,
            "tags": tags, "num_notes": len(part.notes), "pan": round(pan, 3), "source_part": part.name,
            "derived": part.derived, "soundfont": font.name, "source_program": part.program,
        }
    if len(stems) < 2:
        return None
    return _write_song(prep, win, out_dir, index, seed, split, stems, info, windows, holdout)


def _write_song(prep: PreparedPiece, win: Window, out_dir: str | os.PathLike, index: int, seed: int, split: str,
                stems: dict[str, np.ndarray], info: dict[str, dict], windows: int, holdout: str | None) -> Path:
    out = Path(out_dir)
    name = song_name(index)
    partial = out / ".partial"
    partial.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f"{name}.", dir=partial))
    tmp.chmod(0o755)
    try:
        mix = np.sum(list(stems.values()), axis=0, dtype=np.float64)
        peak_stem = max(float(np.max(np.abs(s))) for s in stems.values())
        scale = min(1.0, MIX_PEAK / max(float(np.max(np.abs(mix))), 1e-9), STEM_PEAK / max(peak_stem, 1e-9))
        for stem, audio in stems.items():
            stems[stem] = (audio * np.float32(scale)).astype(np.float32)
            save_audio(tmp / info[stem]["file"], stems[stem], SAMPLE_RATE, subtype="24")
            info[stem]["rms_db"] = round(rms_db(stems[stem]), 2)
        mixture = np.sum(list(stems.values()), axis=0, dtype=np.float64).astype(np.float32)
        meta = song_metadata(prep, win, name, index, seed, split, info, windows, holdout)
        final = publish_song(tmp, out / name, mixture, meta)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def song_metadata(prep: PreparedPiece, win: Window, name: str, index: int, seed: int, split: str,
                  info: dict[str, dict], windows: int, holdout: str | None) -> dict:
    """The metadata.json of one window (see the module docstring for the fields beyond the corpus's)."""
    piece = prep.piece
    tempo = float(round(win.tempo, 2))
    fonts = sorted({s["soundfont"] for s in info.values()})
    genre_tags = [GENRE_TAGS[piece.genre], piece.genre] if piece.genre in GENRE_TAGS else []
    bars = len(win.bars) or 1
    return {
        "format": FORMAT, "version": VERSION, "name": name, "seed": int(seed), "index": int(index),
        "split": split, "sample_rate": SAMPLE_RATE, "seconds": float(win.seconds),
        "num_samples": int(round(win.seconds * SAMPLE_RATE)), "key": win.key.name, "mode": win.key.mode,
        "tempo": tempo, "meter": [int(win.meter[0]), int(win.meter[1])], "style": piece.genre,
        "progression": win.progression,
        "sections": [{"name": "verse", "start_bar": 0, "bars": bars, "progression": win.progression}],
        "soundfont": fonts[0] if len(fonts) == 1 else "mixed", "mixture": "mixture.flac",
        "tags": list(dict.fromkeys([*genre_tags, f"{win.key.name} {win.key.mode}", f"{win.meter[0]}/{win.meter[1]}",
                                    _tempo_feel(tempo), f"{int(tempo)} bpm"])),
        "stems": info,
        "source": piece.source, "source_id": piece.id, "collection": piece.collection,
        "composer": piece.composer, "title": piece.title, "licence": piece.licence,
        "piece_window": int(win.index), "piece_windows": int(windows),
        "window_start_seconds": round(float(win.start), 4), "tempo_factor": round(prep.tempo_factor, 4),
        "transpose": int(win.transpose), "tempo_marked": bool(piece.tempo_marked),
        "harmonised": bool(piece.harmonised), "looped": bool(prep.looped), "holdout": holdout,
        "bars": [round(float(b), 4) for b in win.bars], "soundfonts": fonts,
    }
