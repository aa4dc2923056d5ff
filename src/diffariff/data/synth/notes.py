"""The note event every part generator produces (times in quarter-note beats from the song start)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Note:
    """One note: ``start`` and ``dur`` in quarter-note beats, MIDI ``pitch`` 0..127, ``velocity`` 1..127."""

    start: float
    dur: float
    pitch: int
    velocity: int
