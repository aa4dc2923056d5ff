"""Rendering MIDI files to audio with the FluidSynth command-line synthesiser.

FluidSynth is a Debian package (``fluidsynth``); General MIDI soundfonts come from
``fluid-soundfont-gm`` (FluidR3_GM.sf2) and ``timgm6mb-soundfont`` (TimGM6mb.sf2).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from ...audio import load_audio
from ...errors import InputError, MissingDependencyError

#: Where Debian's GM soundfont packages put their files, preferred first.
SOUNDFONT_CANDIDATES = (
    "/usr/share/sounds/sf2/FluidR3_GM.sf2",
    "/usr/share/sounds/sf2/TimGM6mb.sf2",
    "/usr/share/sounds/sf2/default-GM.sf2",
    "/usr/share/soundfonts/default.sf2",
)


def find_fluidsynth() -> str:
    """Path of the ``fluidsynth`` executable, or MissingDependencyError naming the package."""
    exe = shutil.which("fluidsynth")
    if exe is None:
        raise MissingDependencyError(
            "fluidsynth is not installed (Debian: apt-get install fluidsynth fluid-soundfont-gm)"
        )
    return exe


def find_soundfont(preferred: str | os.PathLike | None = None) -> Path:
    """The soundfont to use: ``preferred`` if given (must exist), else the first installed GM one."""
    if preferred is not None:
        p = Path(preferred)
        if not p.is_file():
            raise InputError(f"soundfont not found: {p}")
        with open(p, "rb") as f:
            head = f.read(12)
        if head[:4] != b"RIFF" or head[8:12] != b"sfbk":
            raise InputError(f"not a SoundFont (.sf2/.sf3) file: {p}")
        return p
    for cand in SOUNDFONT_CANDIDATES:
        if Path(cand).is_file():
            return Path(cand)
    raise MissingDependencyError(
        "no General MIDI soundfont found (Debian: apt-get install fluid-soundfont-gm timgm6mb-soundfont)"
    )


def available_soundfonts() -> list[Path]:
    """Every installed GM soundfont from :data:`SOUNDFONT_CANDIDATES` (distinct files)."""
    seen: dict[Path, Path] = {}
    for cand in SOUNDFONT_CANDIDATES:
        p = Path(cand)
        if p.is_file():
            seen.setdefault(p.resolve(), p)
    return list(seen.values())


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

    The tail (release, reverb) is kept; callers trim or pad to the length they need.
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
