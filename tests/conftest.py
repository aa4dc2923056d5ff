"""Shared test fixtures: real audio rendered with FluidSynth from tiny MIDI phrases.

Tests never use mocked audio where real audio fits: :func:`render_notes` renders a short phrase of a
General MIDI program through the same FluidSynth path the corpus uses, cached per session.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

import mido
import numpy as np
import pytest
import torch

from diffariff.data.synth.render import render_midi

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
torch.set_flush_denormal(True)

SR = 48_000


def _phrase_midi(path: Path, program: int, pitches: Sequence[int], drum: bool, beat_seconds: float) -> None:
    tpb = 480
    mid = mido.MidiFile(ticks_per_beat=tpb)
    track = mido.MidiTrack()
    mid.tracks.append(track)
    tempo = int(beat_seconds * 1_000_000)
    track.append(mido.MetaMessage("set_tempo", tempo=tempo, time=0))
    channel = 9 if drum else 0
    if not drum:
        track.append(mido.Message("program_change", program=program, channel=channel, time=0))
    for i, pitch in enumerate(pitches):
        velocity = 70 + (i * 13) % 50
        track.append(mido.Message("note_on", note=int(pitch), velocity=velocity, channel=channel, time=0))
        track.append(mido.Message("note_off", note=int(pitch), velocity=0, channel=channel, time=tpb))
    mid.save(str(path))


@pytest.fixture(scope="session")
def render_notes(tmp_path_factory) -> Callable[..., np.ndarray]:
    """Factory: ``render_notes(program, pitches, drum=False, beat_seconds=0.25, seconds=None)`` ->
    ``float32 [2, N]`` at 48 kHz, one note per beat; ``seconds`` trims/pads to that length."""
    cache: dict[tuple, np.ndarray] = {}
    root = tmp_path_factory.mktemp("render")

    def render(program: int, pitches: Sequence[int], drum: bool = False, beat_seconds: float = 0.25,
               seconds: float | None = None) -> np.ndarray:
        key = (program, tuple(pitches), drum, beat_seconds, seconds)
        if key not in cache:
            midi = root / f"p{len(cache)}.mid"
            _phrase_midi(midi, program, pitches, drum, beat_seconds)
            audio = render_midi(midi, sample_rate=SR)
            if seconds is not None:
                n = int(round(seconds * SR))
                audio = audio[:, :n] if audio.shape[1] >= n else np.pad(audio, ((0, 0), (0, n - audio.shape[1])))
            cache[key] = audio
        return cache[key].copy()

    return render
