"""Rendering MIDI files to audio with the FluidSynth command-line synthesiser, and the registry of
the soundfonts diffariff may train on.

FluidSynth is a Debian package (``fluidsynth``). The General MIDI banks come from Debian packages
(:data:`TRAINING_SOUNDFONTS`). Every soundfont of the ``musescore-general-soundfont*`` packages
(``MuseScore_General*``) is RESERVED for held-out evaluation: :func:`is_reserved` recognises it by
name (of the path given and of the file it resolves to), and no function here ever offers it for
training, even on a machine where it is installed (or where an alternative such as
``default-GM.sf2`` points to it). ``sf_GMbank`` (kind ``gm-ood``) is the project's own out-of-domain
bank: registered, renderable when named (``--soundfont``), but never drawn by default, so the held-out songs
rendered through it keep a timbre the training corpus does not draw. The in-process renderer that loads each
soundfont once is :mod:`.engine`.
"""

from __future__ import annotations

import fnmatch
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...audio import load_audio
from ...errors import InputError, MissingDependencyError

#: Where Debian's GM soundfont packages put their files, preferred first (the default of
#: :func:`find_soundfont`; reserved soundfonts are skipped even if an alternative points to one).
SOUNDFONT_CANDIDATES = (
    "/usr/share/sounds/sf2/FluidR3_GM.sf2",
    "/usr/share/sounds/sf2/TimGM6mb.sf2",
    "/usr/share/sounds/sf2/default-GM.sf2",
    "/usr/share/soundfonts/default.sf2",
)

#: File-name patterns (case-insensitive) of the soundfonts reserved for held-out evaluation.
RESERVED_PATTERNS = ("musescore_general*", "musescore-general*")

#: Kinds of soundfont: a full General MIDI bank (128 programs + drum kits in bank 128), a bank with
#: only a drum kit (preset 0 of bank 0, played on the drum channel), a GS sound-effects supplement
#: (no melodic bank 0: never used on its own), and a full GM bank kept for out-of-domain evaluation
#: (played when named, never drawn by default).
KINDS = ("gm", "drums-only", "gs-sfx", "gm-ood")


@dataclass(frozen=True)
class SoundFont:
    """One registered soundfont: its installed ``path``, short ``name``, ``kind`` (see :data:`KINDS`),
    the Debian ``package`` shipping it and its ``licence``."""

    path: Path
    name: str
    kind: str
    package: str
    licence: str

    @property
    def installed(self) -> bool:
        return self.path.is_file() and not is_reserved(self.path)


_SF2, _SF3 = Path("/usr/share/sounds/sf2"), Path("/usr/share/sounds/sf3")

#: Every soundfont diffariff may train on. Order matters to :func:`available_soundfonts` (the
#: procedural corpus takes song ``i``'s soundfont as entry ``i mod n``): FluidR3_GM first (song 0 and
#: the demo keep their sound), the small TimGM6mb last.
TRAINING_SOUNDFONTS: tuple[SoundFont, ...] = (
    SoundFont(_SF2 / "FluidR3_GM.sf2", "FluidR3_GM", "gm", "fluid-soundfont-gm", "MIT"),
    SoundFont(_SF2 / "sf_GMbank.sf2", "sf_GMbank", "gm-ood", "csound-soundfont", "public-domain"),
    SoundFont(_SF2 / "OPL-3_FM_128M.sf2", "OPL-3_FM_128M", "gm", "opl3-soundfont", "CC-BY-SA-4.0"),
    SoundFont(_SF3 / "FluidR3Mono_GM.sf3", "FluidR3Mono_GM", "gm", "fluidr3mono-gm-soundfont", "MIT"),
    SoundFont(_SF2 / "TimGM6mb.sf2", "TimGM6mb", "gm", "timgm6mb-soundfont", "GPL-2"),
    SoundFont(_SF2 / "Black_Pearl_4_LV2.sf2", "Black_Pearl_4_LV2", "drums-only", "avldrums.lv2-soundfont",
              "CC-BY-SA-3.0"),
    SoundFont(_SF2 / "Red_Zeppelin_4_LV2.sf2", "Red_Zeppelin_4_LV2", "drums-only", "avldrums.lv2-soundfont",
              "CC-BY-SA-3.0"),
    SoundFont(_SF2 / "FluidR3_GS.sf2", "FluidR3_GS", "gs-sfx", "fluid-soundfont-gs", "MIT"),
)


def is_reserved(path: str | os.PathLike) -> bool:
    """True for a soundfont reserved for held-out evaluation (``MuseScore_General*``), judged by the
    name of ``path`` and of the file it resolves to (so a link such as ``default-GM.sf2`` pointing to
    a reserved file is reserved too), and by any folder named after a musescore-general package."""
    p = Path(path)
    try:
        resolved = p.resolve()
    except OSError:
        resolved = p
    names = [p.name.lower(), resolved.name.lower()] + [q.lower() for q in p.parts + resolved.parts]
    return any(fnmatch.fnmatch(n, pat) for n in names for pat in RESERVED_PATTERNS)


def check_not_reserved(path: str | os.PathLike) -> Path:
    """``path`` as a Path, or InputError when it is reserved for held-out evaluation."""
    if is_reserved(path):
        raise InputError(f"{path} is reserved for held-out evaluation (MuseScore_General*); "
                         "it is never used for training")
    return Path(path)


def soundfont_info(path: str | os.PathLike) -> SoundFont:
    """The registry entry of ``path`` (matched by resolved file), or an ad-hoc ``gm`` entry for an
    unregistered soundfont file."""
    p = Path(path)
    target = p.resolve()
    for sf in TRAINING_SOUNDFONTS:
        if sf.path.resolve() == target or sf.path.name == p.name:
            return SoundFont(p, sf.name, sf.kind, sf.package, sf.licence)
    return SoundFont(p, p.stem, "gm", "unknown", "unknown")


def training_soundfonts(kinds: tuple[str, ...] = ("gm", "drums-only")) -> list[SoundFont]:
    """The installed, non-reserved registry entries of the given kinds (distinct files, registry order)."""
    bad = [k for k in kinds if k not in KINDS]
    if bad:
        raise ValueError(f"unknown soundfont kind(s) {bad}; kinds are {KINDS}")
    seen: set[Path] = set()
    out = []
    for sf in TRAINING_SOUNDFONTS:
        if sf.kind in kinds and sf.installed and sf.path.resolve() not in seen:
            seen.add(sf.path.resolve())
            out.append(sf)
    return out


def available_soundfonts(kind: str = "gm") -> list[Path]:
    """Every installed training soundfont of ``kind`` (default: full GM banks, the ones that can play a
    whole song), reserved ones excluded; ``kind="all"`` adds the drum-only banks."""
    kinds = ("gm", "drums-only") if kind == "all" else (kind,)
    return [sf.path for sf in training_soundfonts(kinds)]


def find_fluidsynth() -> str:
    """Path of the ``fluidsynth`` executable, or MissingDependencyError naming the package."""
    exe = shutil.which("fluidsynth")
    if exe is None:
        raise MissingDependencyError(
            "fluidsynth is not installed (Debian: apt-get install fluidsynth fluid-soundfont-gm)"
        )
    return exe


def check_soundfont_file(path: str | os.PathLike) -> Path:
    """``path`` if it is an existing SoundFont (.sf2/.sf3) file, else InputError."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"soundfont not found: {p}")
    with open(p, "rb") as f:
        head = f.read(12)
    if head[:4] != b"RIFF" or head[8:12] != b"sfbk":
        raise InputError(f"not a SoundFont (.sf2/.sf3) file: {p}")
    return p


def find_soundfont(preferred: str | os.PathLike | None = None) -> Path:
    """The soundfont to use: ``preferred`` if given (must exist), else the first installed GM one that
    is not reserved for evaluation."""
    if preferred is not None:
        return check_soundfont_file(preferred)
    for cand in SOUNDFONT_CANDIDATES:
        if Path(cand).is_file() and not is_reserved(cand):
            return Path(cand)
    raise MissingDependencyError(
        "no General MIDI soundfont found (Debian: apt-get install fluid-soundfont-gm timgm6mb-soundfont)"
    )


def render_midi(
    midi_path: str | os.PathLike,
    soundfont: str | os.PathLike | None = None,
    sample_rate: int = 48_000,
    *,
    gain: float = 0.5,
    reverb: bool = True,
    chorus: bool = False,
) -> np.ndarray:
    """Render a MIDI file to ``float32 [2, N]`` audio at ``sample_rate`` Hz with FluidSynth.

    The tail (release, reverb) is kept; callers trim or pad to the length they need. One FluidSynth
    process per call, so the soundfont is loaded every time; :func:`.engine.render_midi_engine` is the
    drop-in replacement that loads it once per process.
    """
    exe = find_fluidsynth()
    sf2 = find_soundfont(soundfont)
    with tempfile.TemporaryDirectory(prefix="diffariff-render-") as tmpdir:
        out = Path(tmpdir) / "render.wav"
        cmd = [
            exe, "-ni", "-q",
            "-g", f"{gain}",
            "-r", str(int(sample_rate)),
            "-O", "float",
            "-T", "wav",
            "-F", str(out),
            "-R", "1" if reverb else "0",
            "-C", "1" if chorus else "0",
            str(sf2), str(midi_path),
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        # FluidSynth falls back to its default soundfont (and exits 0) when the one given fails to load
        log = f"{proc.stderr}\n{proc.stdout}".lower()
        if "failed to load soundfont" in log or f"'{sf2}' not a soundfont".lower() in log:
            raise InputError(f"fluidsynth could not load the soundfont {sf2}")
        if proc.returncode != 0 or not out.is_file() or out.stat().st_size <= 44:
            msg = (proc.stderr or proc.stdout or "no output").strip().splitlines()
            raise InputError(f"fluidsynth failed on {midi_path}: {msg[-1] if msg else 'unknown error'}")
        audio, sr = load_audio(out, sample_rate=sample_rate, channels=2, max_seconds=None)
    return audio
