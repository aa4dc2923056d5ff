"""Writing one part to a standard MIDI file (type 0), with humanised timing and velocities.

Drums go to channel 10 (index 9) with a drum-kit program change; other parts to channel 1 with
their GM program. Pan (CC 10), reverb send (CC 91) and volume (CC 7) are set at time 0.
"""

from __future__ import annotations

import os

import mido
import numpy as np

from .notes import Note

TICKS_PER_BEAT = 480
DRUM_CHANNEL = 9


def humanize(rng: np.random.Generator, notes: list[Note], tempo: float, jitter_seconds: float = 0.006,
             velocity_jitter: float = 5.0) -> list[Note]:
    """Notes with start times moved by N(0, ``jitter_seconds``) (never before 0) and velocities by
    N(0, ``velocity_jitter``), clipped to 1..127; durations are kept."""
    beats_per_second = tempo / 60.0
    out = []
    for n in notes:
        start = max(0.0, n.start + float(rng.normal(0.0, jitter_seconds)) * beats_per_second)
        vel = int(np.clip(round(n.velocity + rng.normal(0.0, velocity_jitter)), 1, 127))
        out.append(Note(start, n.dur, n.pitch, vel))
    return out


def write_part_midi(path: str | os.PathLike, notes: list[Note], *, program: int, is_drum: bool, tempo: float,
                    meter: tuple[int, int], pan: float = 0.0, reverb: int = 40, volume: int = 100) -> None:
    """Write ``notes`` (quarter-beat times) as a type-0 MIDI file at ``tempo`` quarter notes per minute."""
    mid = mido.MidiFile(type=0, ticks_per_beat=TICKS_PER_BEAT)
    track = mido.MidiTrack()
    mid.tracks.append(track)
    ch = DRUM_CHANNEL if is_drum else 0
    track.append(mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(tempo), time=0))
    track.append(mido.MetaMessage("time_signature", numerator=meter[0], denominator=meter[1], time=0))
    track.append(mido.Message("program_change", program=int(program), channel=ch, time=0))
    track.append(mido.Message("control_change", control=7, value=int(volume), channel=ch, time=0))
    track.append(mido.Message("control_change", control=10, value=int(np.clip(64 + pan * 63, 0, 127)),
                              channel=ch, time=0))
    track.append(mido.Message("control_change", control=91, value=int(np.clip(reverb, 0, 127)), channel=ch,
                              time=0))
    events: list[tuple[int, int, int, int]] = []  # (tick, order, pitch, velocity); note-offs first
    for n in notes:
        on = int(round(n.start * TICKS_PER_BEAT))
        off = max(on + 1, int(round((n.start + n.dur) * TICKS_PER_BEAT)))
        events.append((on, 1, int(n.pitch), int(n.velocity)))
        events.append((off, 0, int(n.pitch), 0))
    events.sort()
    now = 0
    for tick, kind, pitch, vel in events:
        msg = "note_on" if kind == 1 else "note_off"
        track.append(mido.Message(msg, note=pitch, velocity=vel, channel=ch, time=tick - now))
        now = tick
    track.append(mido.MetaMessage("end_of_track", time=TICKS_PER_BEAT))
    mid.save(os.fspath(path))
