"""The neutral form every source is read into: a :class:`Piece` of :class:`Part` s of :class:`TimedNote` s.

Times are in seconds from the start of the piece (each source's tempo map already applied), so tempo
changes, pickups and repeats need no special handling downstream. Bars keep both their start beat
(quarter notes) and start second, which is all the windowing and the metadata's tempo need.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, order=True)
class TimedNote:
    """One note: ``start`` and ``end`` in seconds, MIDI ``pitch`` 0..127, ``velocity`` 1..127."""

    start: float
    end: float
    pitch: int
    velocity: int


@dataclass
class Part:
    """One part (a future stem). ``program`` is the source's GM program when it has one (MIDI files),
    ``derived`` marks parts diffariff made up (the bass and chords of a harmonised tune).
    ``controls`` are (seconds, controller, value) and ``bends`` (seconds, -8192..8191) from MIDI files;
    ``style`` says how a derived part plays (its metadata style)."""

    name: str
    notes: list[TimedNote]
    is_drum: bool = False
    program: int | None = None
    derived: bool = False
    style: str = ""
    controls: list[tuple[float, int, int]] = field(default_factory=list)
    bends: list[tuple[float, int]] = field(default_factory=list)


@dataclass(frozen=True)
class Bar:
    """A bar: start ``beat`` (quarter notes), start ``second`` and its ``meter`` (beats, unit)."""

    beat: float
    second: float
    meter: tuple[int, int]


@dataclass
class Piece:
    """A whole piece read from a source.

    ``id`` is stable across machines (``music21:haydn/opus74no1/movement1.mxl`` or
    ``openttd-openmsx:the_hobo_redfarn.mid``); it decides the split. ``chords`` are (seconds, symbol)
    from the source's chord symbols or diffariff's harmonisation. ``end`` is where the last bar ends.
    ``tempo_marked`` says whether the tempo came from the source or from a default for the genre.
    """

    id: str
    source: str
    collection: str
    composer: str
    title: str
    licence: str
    genre: str
    parts: list[Part]
    bars: list[Bar]
    end: float
    tempo_marked: bool = True
    chords: list[tuple[float, str]] = field(default_factory=list)
    harmonised: bool = False

    def tempo_between(self, t0: float, t1: float) -> float:
        """Mean tempo (quarter notes per minute) between seconds ``t0`` and ``t1``, from the bars."""
        beats = [b.beat for b in self.bars] + [self._end_beat()]
        secs = [b.second for b in self.bars] + [self.end]

        def beat_at(t: float) -> float:
            for i in range(len(secs) - 1):
                if secs[i] <= t <= secs[i + 1] and secs[i + 1] > secs[i]:
                    return beats[i] + (beats[i + 1] - beats[i]) * (t - secs[i]) / (secs[i + 1] - secs[i])
            return beats[-1] if t > secs[-1] else beats[0]

        if t1 <= t0:
            return 120.0
        return 60.0 * (beat_at(t1) - beat_at(t0)) / (t1 - t0)

    def _end_beat(self) -> float:
        if len(self.bars) < 2:
            last = self.bars[-1] if self.bars else Bar(0.0, 0.0, (4, 4))
            return last.beat + last.meter[0] * 4.0 / last.meter[1]
        a, b = self.bars[-2], self.bars[-1]
        rate = (b.beat - a.beat) / max(b.second - a.second, 1e-9)
        return b.beat + rate * (self.end - b.second)

    def meter_at(self, t: float) -> tuple[int, int]:
        """The meter of the bar sounding at ``t`` seconds."""
        cur = self.bars[0].meter if self.bars else (4, 4)
        for b in self.bars:
            if b.second > t + 1e-9:
                break
            cur = b.meter
        return cur


def bar_grid(meters: list[tuple[float, tuple[int, int]]], end_beat: float) -> list[tuple[float, tuple[int, int]]]:
    """Bar starts (beat, meter) from time-signature changes (beat, meter), up to ``end_beat``. A change
    that falls inside a bar starts a new bar there."""
    if not meters:
        meters = [(0.0, (4, 4))]
    meters = sorted(meters)
    out: list[tuple[float, tuple[int, int]]] = []
    for i, (start, m) in enumerate(meters):
        stop = meters[i + 1][0] if i + 1 < len(meters) else end_beat
        length = m[0] * 4.0 / m[1]
        b = start
        while b < stop - 1e-6:
            out.append((b, m))
            b += length
    return out or [(0.0, meters[0][1])]
