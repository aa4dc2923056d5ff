"""Building the synthetic multitrack corpus: plan -> notes -> MIDI -> FluidSynth stems -> song folder.

Song ``i`` of a corpus with seed ``s`` is a pure function of ``(s, i, seconds, soundfont, produce)``:
its random generator is seeded with ``[s, i]`` (its production's with ``[s, i, PRODUCTION_STREAM]``),
so the corpus is identical whatever the number of jobs or the order songs are (re)rendered in. Each
song is written into a temporary folder under ``OUT/.partial/`` and renamed into ``OUT/song_XXXXX``
when complete, so an interrupted run never leaves a half song; a rerun skips songs that are already
complete.

Levels: every stem is scaled to a per-role target of *active* RMS (RMS over the frames where it
plays), then all stems of a song are scaled by one common factor so that the mixture peak is at
most :data:`MIX_PEAK` and no stem exceeds :data:`STEM_PEAK`. The mixture is the sum of the stems.

Production (``produce=True``): the parts are rendered dry and centred (FluidSynth's reverb off, pan CC
at the centre), levelled as above, then :func:`~.production.produce_song` gives each stem its chain
(EQ, compression, amp, chorus, delay, width, the part's pan, a shared reverb room) and the song its bus
dynamics and loudness; the mixture is still the sum of the stems and ``metadata.json`` records every
chain under ``production``.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing as mp
import os
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf
from tqdm import tqdm

from ...audio import save_audio
from ...errors import DatasetError, DiffariffError, InputError
from ...fsutil import write_json_atomic
from . import gm
from .engine import render_midi_engine
from .metadata import FORMAT, VERSION, validate_metadata
from .midi import humanize, write_part_midi
from .parts import part_notes
from .plan import SongPlan, plan_song
from .render import available_soundfonts, find_soundfont
from .tags import register_of, stem_tags

SAMPLE_RATE = 48_000
#: Mixture peak ceiling and single-stem peak ceiling (linear, full scale = 1).
MIX_PEAK = 0.9
STEM_PEAK = 0.99
#: Fade-out applied to the end of every stem (seconds).
FADE_SECONDS = 0.05
#: A stem whose RMS over the song is below this (dBFS) is dropped as silent.
SILENT_DB = -60.0
#: Target active RMS per role (dBFS) before the common song scaling.
ROLE_LEVEL_DB = {"drums": -14.0, "bass": -16.0, "chords": -19.0, "pad": -22.0, "arpeggio": -21.0,
                 "lead": -17.0, "counter-melody": -20.0}
#: Shortest and longest song accepted (seconds).
MIN_SECONDS, MAX_SECONDS = 2.0, 600.0
#: Last entry of the seed of a produced song's production generator, ``[seed, index, PRODUCTION_STREAM]``.
PRODUCTION_STREAM = 1


def song_name(index: int) -> str:
    """Folder name of song ``index``: ``song_00000``."""
    return f"song_{int(index):05d}"


def split_of(seed: int, index: int) -> str:
    """``train`` (~90%), ``valid`` (~5%) or ``test`` (~5%), from a hash of (seed, index)."""
    h = int.from_bytes(hashlib.blake2b(f"{int(seed)}:{int(index)}".encode(), digest_size=8).digest(), "big")
    r = h % 100
    return "train" if r < 90 else ("valid" if r < 95 else "test")


def default_soundfont(index: int) -> Path:
    """The soundfont song ``index`` uses when none is given: the installed GM ones in turn."""
    fonts = available_soundfonts()
    if not fonts:
        return find_soundfont(None)  # raises MissingDependencyError naming the package
    return fonts[int(index) % len(fonts)]


def rms_db(audio: np.ndarray) -> float:
    """RMS level of ``[C, N]`` audio in dBFS (-120 for silence)."""
    rms = float(np.sqrt(np.mean(np.square(audio, dtype=np.float64)))) if audio.size else 0.0
    return 20.0 * np.log10(max(rms, 1e-6))


def active_rms_db(audio: np.ndarray, frame: int = 2048, floor_db: float = 40.0) -> float:
    """RMS (dBFS) over the frames within ``floor_db`` of the loudest frame: the level of a part while
    it plays, independent of how long it rests."""
    mono = np.mean(audio, axis=0, dtype=np.float64)
    n = mono.size // frame
    if n == 0:
        return rms_db(audio)
    energy = np.mean(mono[: n * frame].reshape(n, frame) ** 2, axis=1)
    top = float(energy.max())
    if top <= 0:
        return -120.0
    active = energy[energy >= top * 10 ** (-floor_db / 10)]
    return 10.0 * np.log10(float(active.mean()))


def _fit_length(audio: np.ndarray, n: int) -> np.ndarray:
    if audio.shape[1] >= n:
        return audio[:, :n]
    return np.pad(audio, ((0, 0), (0, n - audio.shape[1])))


def _render_stems(plan: SongPlan, rng: np.random.Generator, seconds: float, soundfont: Path,
                  workdir: Path, dry: bool = False) -> tuple[dict[str, np.ndarray], dict[str, dict]]:
    """Render every part of ``plan`` to ``float32 [2, N]`` (N = seconds x 48 kHz), levelled; plus
    each stem's metadata (without rms_db). ``dry``: without FluidSynth's reverb and with the pan at the
    centre (production places the stems and adds the room)."""
    n = int(round(seconds * SAMPLE_RATE))
    fade = np.linspace(1.0, 0.0, int(FADE_SECONDS * SAMPLE_RATE), dtype=np.float32)
    stems: dict[str, np.ndarray] = {}
    info: dict[str, dict] = {}
    song_beats = seconds * plan.tempo / 60.0
    for part in plan.parts:
        if part.is_drum and part.program in gm.MISSING_KITS.get(soundfont.name, ()):
            part.program = 0  # the soundfont would play its standard kit; say so in the metadata
        notes = part_notes(rng, plan, part)
        played = humanize(rng, notes, plan.tempo, jitter_seconds=0.004 if part.is_drum else 0.008)
        midi = workdir / f"{part.stem}.mid"
        write_part_midi(midi, played, program=part.program, is_drum=part.is_drum, tempo=plan.tempo,
                        meter=plan.meter, pan=0.0 if dry else part.pan, reverb=part.reverb)
        rendered = render_midi_engine(midi, soundfont, SAMPLE_RATE, reverb=not dry, seconds=seconds)
        audio = _fit_length(rendered, n)
        audio[:, n - fade.size:] *= fade
        if rms_db(audio) < SILENT_DB:
            continue
        gain_db = ROLE_LEVEL_DB[part.role] + part.level_db - active_rms_db(audio)
        stems[part.stem] = (audio * np.float32(10 ** (gain_db / 20))).astype(np.float32)
        inside = [x for x in notes if x.start < song_beats]
        if part.is_drum:
            instrument, family = gm.DRUM_KITS.get(part.program, gm.DRUM_KITS[0])[0], "drums"
        else:
            instrument, family = gm.program(part.program).name, gm.program(part.program).family
        info[part.stem] = {
            "file": f"{part.stem}.flac", "role": part.role, "instrument": instrument, "program": part.program,
            "family": family, "is_drum": part.is_drum, "style": part.style,
            "register": register_of(inside, part.is_drum), "tags": stem_tags(plan, part, inside, seconds),
            "num_notes": len(inside), "pan": round(part.pan, 3),
        }
    return stems, info


def render_song(index: int, seed: int, seconds: float, out_dir: str | os.PathLike,
                soundfont: str | os.PathLike | None = None, produce: bool = False) -> Path:
    """Render song ``index`` of the corpus with ``seed`` into ``out_dir/song_XXXXX`` and return it.

    Writes ``<stem>.flac`` (24-bit, 48 kHz stereo, exactly ``seconds`` long), ``mixture.flac`` (the sum
    of the stems) and ``metadata.json``. An existing folder of that name is replaced. ``produce``: mix
    the stems like a producer's session (see the module's docstring).
    """
    _check_args(1, seconds, seed, 1, index)
    sf2 = find_soundfont(soundfont) if soundfont is not None else default_soundfont(index)
    out = Path(out_dir)
    name = song_name(index)
    rng = np.random.default_rng([int(seed), int(index)])
    partial = out / ".partial"
    partial.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f"{name}.", dir=partial))
    tmp.chmod(0o755)  # mkdtemp makes it private; a corpus is meant to be shared
    try:
        plan = plan_song(rng, seconds)
        with tempfile.TemporaryDirectory(prefix="diffariff-midi-") as workdir:
            stems, info = _render_stems(plan, rng, seconds, sf2, Path(workdir), dry=produce)
        if len(stems) < 2:
            raise DiffariffError(f"{name}: fewer than 2 audible stems were rendered (seed {seed})")
        production = None
        if produce:
            mixture, production = _produce(stems, info, plan, seed, index)
        else:
            mix = np.sum(list(stems.values()), axis=0, dtype=np.float64)
            peak_mix = float(np.max(np.abs(mix)))
            peak_stem = max(float(np.max(np.abs(s))) for s in stems.values())
            scale = min(1.0, MIX_PEAK / max(peak_mix, 1e-9), STEM_PEAK / max(peak_stem, 1e-9))
            for stem, audio in stems.items():
                stems[stem] = (audio * np.float32(scale)).astype(np.float32)
            mixture = np.sum(list(stems.values()), axis=0, dtype=np.float64).astype(np.float32)
        for stem, audio in stems.items():
            save_audio(tmp / info[stem]["file"], audio, SAMPLE_RATE, subtype="24")
            info[stem]["rms_db"] = round(rms_db(audio), 2)
        meta = _song_metadata(plan, name, seed, index, seconds, sf2, info)
        if production is not None:
            meta["production"] = production
        final = publish_song(tmp, out / name, mixture, meta)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def publish_song(tmp: Path, final: Path, mixture: np.ndarray, meta: dict) -> Path:
    """Finish a song folder rendered into ``tmp`` (its stems written): write ``mixture.flac`` (float32
    ``[2, N]``, 24-bit) and the validated ``metadata.json``, then move it onto ``final`` in one rename
    (replacing an older folder of that name). Returns ``final``."""
    save_audio(tmp / "mixture.flac", mixture, SAMPLE_RATE, subtype="24")
    validate_metadata(meta, tmp)
    write_json_atomic(tmp / "metadata.json", meta)
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    return final


def _produce(stems: dict[str, np.ndarray], info: dict[str, dict], plan: SongPlan, seed: int,
             index: int) -> tuple[np.ndarray, dict]:
    """Produce the song's stems in place; return the mixture and the production's description."""
    from .production import produce_song  # pedalboard and pyloudnorm load only for produced corpora

    rng = np.random.default_rng([int(seed), int(index), PRODUCTION_STREAM])
    roles = {k: v["role"] for k, v in info.items()}
    families = {k: v["family"] for k, v in info.items()}
    pans = {k: v["pan"] for k, v in info.items()}
    produced, mixture, production = produce_song(stems, roles, rng, SAMPLE_RATE, families, tempo=plan.tempo,
                                                 pans=pans)
    stems.update(produced)
    return mixture, production


def _song_metadata(plan: SongPlan, name: str, seed: int, index: int, seconds: float, sf2: Path,
                   info: dict[str, dict]) -> dict:
    main = next((s for s in plan.sections if s.name == "verse"), plan.sections[0])
    tempo_feel = "slow" if plan.tempo < 80 else ("fast" if plan.tempo > 140 else "mid-tempo")
    sections = [{"name": s.name, "start_bar": s.start_bar, "bars": min(s.bars, plan.song_bars - s.start_bar),
                 "progression": [c.symbol for c in s.chords]}
                for s in plan.sections if s.start_bar < plan.song_bars]
    return {
        "format": FORMAT, "version": VERSION, "name": name, "seed": int(seed), "index": int(index),
        "split": split_of(seed, index), "sample_rate": SAMPLE_RATE, "seconds": float(seconds),
        "num_samples": int(round(seconds * SAMPLE_RATE)), "key": plan.key.name, "mode": plan.key.mode,
        "tempo": float(plan.tempo), "meter": list(plan.meter), "style": plan.style.name,
        "progression": [c.symbol for c in main.chords], "sections": sections, "soundfont": sf2.name,
        "mixture": "mixture.flac",
        "tags": list(plan.style.tags) + [f"{plan.key.name} {plan.key.mode}", f"{plan.meter[0]}/{plan.meter[1]}",
                                         tempo_feel, f"{int(plan.tempo)} bpm"],
        "stems": info,
    }


def song_is_complete(folder: str | os.PathLike, seed: int, index: int, seconds: float,
                     soundfont: str | os.PathLike | None = None, produce: bool = False) -> bool:
    """True when ``folder`` holds a finished song for exactly these arguments: valid metadata naming
    existing files of the right length. A finished song made with other arguments (seed, seconds,
    soundfont, produced or not) is an error (DatasetError), so corpora with different settings never
    mix silently."""
    folder = Path(folder)
    meta_path = folder / "metadata.json"
    if not meta_path.is_file():
        return False
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        validate_metadata(meta, folder)
    except (json.JSONDecodeError, UnicodeDecodeError, DatasetError):
        return False
    font = Path(soundfont).name if soundfont is not None else default_soundfont(index).name
    if (meta["seed"] != int(seed) or meta["index"] != int(index) or abs(meta["seconds"] - seconds) > 1e-9
            or meta["soundfont"] != font):
        raise DatasetError(
            f"{folder} was rendered with seed {meta['seed']}, {meta['seconds']} s, {meta['soundfont']}; asked "
            f"for seed {seed}, {seconds} s, {font} (use another --out)"
        )
    if ("production" in meta) != bool(produce):
        made, asked = ("with", "without") if "production" in meta else ("without", "with")
        raise DatasetError(f"{folder} was rendered {made} production; asked for a corpus {asked} "
                           "(use another --out)")
    files = [meta["mixture"]] + [s["file"] for s in meta["stems"].values()]
    try:
        return all(sf.info(str(folder / f)).frames == meta["num_samples"] for f in files)
    except (sf.LibsndfileError, RuntimeError):
        return False


def _check_args(songs: int, seconds: float, seed: int, jobs: int, start: int) -> None:
    if int(songs) < 1:
        raise InputError(f"--songs must be at least 1, got {songs}")
    if not MIN_SECONDS <= float(seconds) <= MAX_SECONDS:
        raise InputError(f"--seconds must be within {MIN_SECONDS:g}-{MAX_SECONDS:g}, got {seconds}")
    if int(seed) < 0:
        raise InputError(f"--seed must be non-negative, got {seed}")
    if int(jobs) < 1:
        raise InputError(f"--jobs must be at least 1, got {jobs}")
    if int(start) < 0:
        raise InputError(f"--start must be non-negative, got {start}")


def _render_task(task: tuple[int, int, float, str, str | None, bool]) -> str:
    index, seed, seconds, out, soundfont, produce = task
    return str(render_song(index, seed, seconds, out, soundfont, produce))


def build_corpus(out: str | os.PathLike, songs: int, seconds: float, seed: int = 0, jobs: int = 1,
                 soundfont: str | os.PathLike | None = None, progress: bool = True, start: int = 0,
                 produce: bool = False) -> list[Path]:
    """Render songs ``start .. start+songs-1`` into ``out`` (skipping complete ones) with ``jobs``
    processes; return every song folder in index order. The bar shows only on a terminal.
    ``produce``: mix every song like a producer's session (see the module's docstring)."""
    _check_args(songs, seconds, seed, jobs, start)
    sf2 = str(find_soundfont(soundfont)) if soundfont is not None else None
    root = Path(out)
    if root.exists() and not root.is_dir():
        raise InputError(f"--out {root} exists and is not a folder")
    root.mkdir(parents=True, exist_ok=True)
    indices = range(int(start), int(start) + int(songs))
    todo = [i for i in indices if not song_is_complete(root / song_name(i), seed, i, seconds, sf2, produce)]
    tasks = [(i, int(seed), float(seconds), str(root), sf2, bool(produce)) for i in todo]
    bar = tqdm(total=len(indices), initial=len(indices) - len(todo), unit="song", desc="corpus",
               disable=not (progress and sys.stderr.isatty()))
    try:
        if jobs == 1 or len(tasks) <= 1:
            for t in tasks:
                _render_task(t)
                bar.update(1)
        else:
            # workers run numpy and the fluidsynth subprocess only (never torch), so forking is safe
            # and spares each worker a fresh interpreter start
            method = "fork" if "fork" in mp.get_all_start_methods() else "spawn"
            with mp.get_context(method).Pool(min(int(jobs), len(tasks))) as pool:
                for _ in pool.imap_unordered(_render_task, tasks):
                    bar.update(1)
    finally:
        bar.close()
    partial = root / ".partial"
    if partial.is_dir() and not any(partial.iterdir()):
        partial.rmdir()
    return [root / song_name(i) for i in indices]


def render_example(out_dir: str | os.PathLike, seconds: float = 10.0, seed: int = 2024) -> Path:
    """Render one example multitrack song (used by ``make demo``) into ``out_dir``; return its folder."""
    return render_song(0, seed, seconds, out_dir, None)
