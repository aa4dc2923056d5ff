"""A bar grid: tempo, meter and where bar 1 starts, and the conversions between bars, seconds and
samples that bar-aware editing needs.

Conventions (those of a DAW's session):

* ``bpm`` is in **quarter notes per minute** for every meter (a 6/8 bar is three quarter notes long,
  a 3/4 bar three, a 4/4 bar four), as in the corpus metadata and MIDI files.
* The meter is ``beats_per_bar / beat_unit`` (``4/4``, ``3/4``, ``6/8``, ...); a *beat* is one
  ``beat_unit`` note (an eighth in 6/8).
* Bars are numbered from 1 at ``first_downbeat_s`` and ranges are **inclusive**: ``bars 9:12`` are
  the four bars starting at the ninth downbeat. Audio before the first downbeat (a pick-up) belongs to
  no bar.
* A grid is regular: every bar has the same length (one tempo, one meter), which is what a DAW
  session assumes; ``beat_times`` may hold the tracker's own beats for display.
"""

from __future__ import annotations

import dataclasses
import math
import re

from ..errors import InputError

#: Tempi accepted anywhere (quarter-note bpm, exclusive bounds).
MIN_BPM, MAX_BPM = 20.0, 400.0
#: Meters the analysis detects; overrides may name others (beat unit 2, 4, 8 or 16).
DETECTED_METERS = ((4, 4), (3, 4), (6, 8))
BEAT_UNITS = (2, 4, 8, 16)


def check_bpm(bpm: float, what: str = "--bpm") -> float:
    """``bpm`` as a float, or InputError unless MIN_BPM < bpm < MAX_BPM (and finite)."""
    try:
        value = float(bpm)
    except (TypeError, ValueError):
        raise InputError(f"{what} must be a number of quarter notes per minute, got {bpm!r}") from None
    if not (math.isfinite(value) and MIN_BPM < value < MAX_BPM):
        raise InputError(f"{what} must be between {MIN_BPM:g} and {MAX_BPM:g} bpm (exclusive), got {bpm}")
    return value


def parse_meter(meter: str | tuple[int, int] | list[int], what: str = "--meter") -> tuple[int, int]:
    """``"6/8"`` / ``(6, 8)`` -> ``(6, 8)``; InputError for anything else (numerator 1-32, beat unit
    2, 4, 8 or 16)."""
    if isinstance(meter, str):
        m = re.fullmatch(r"\s*(\d{1,2})\s*/\s*(\d{1,2})\s*", meter)
        if m is None:
            raise InputError(f"{what} must look like 4/4, 3/4 or 6/8, got '{meter}'")
        num, unit = int(m.group(1)), int(m.group(2))
    else:
        try:
            num, unit = (int(x) for x in meter)
        except (TypeError, ValueError):
            raise InputError(f"{what} must be (beats, unit), e.g. (4, 4), got {meter!r}") from None
    if not 1 <= num <= 32 or unit not in BEAT_UNITS:
        raise InputError(f"{what} {num}/{unit} is not understood (beats 1-32 over 2, 4, 8 or 16)")
    return num, unit


def parse_bars(text: str | tuple[int, int], what: str = "--bars") -> tuple[int, int]:
    """``"9:12"`` (or ``"9"`` for one bar, or a tuple) -> ``(9, 12)``, 1-based and inclusive;
    InputError for bar 0, A > B or anything not two whole numbers. The end of the audio is checked by
    :meth:`BarGrid.check_bars`."""
    if isinstance(text, str):
        m = re.fullmatch(r"\s*(-?\d+)\s*(?::\s*(-?\d+)\s*)?", text)
        if m is None:
            raise InputError(f"{what} must be A:B (bar numbers from 1, inclusive), e.g. 9:12, got '{text}'")
        a = int(m.group(1))
        b = int(m.group(2)) if m.group(2) is not None else a
    else:
        try:
            a, b = (int(x) for x in text)
        except (TypeError, ValueError):
            raise InputError(f"{what} must be two bar numbers (A, B), got {text!r}") from None
    if a < 1 or b < 1:
        raise InputError(f"{what} {a}:{b}: bars are numbered from 1")
    if a > b:
        raise InputError(f"{what} {a}:{b}: the first bar is after the last")
    return a, b


@dataclasses.dataclass(frozen=True)
class BarGrid:
    """A regular bar grid (module doc).

    Attributes:
        bpm: tempo in quarter notes per minute.
        beats_per_bar: meter numerator (beats of ``beat_unit`` per bar).
        beat_unit: meter denominator (4: quarter-note beats, 8: eighth-note beats).
        first_downbeat_s: time of bar 1's first beat (seconds from the start of the audio, >= 0).
        beat_times: tracked beats (seconds), informative only; the grid itself is regular.
        duration_s: length of the audio the grid describes (seconds), when known.
    """

    bpm: float
    beats_per_bar: int = 4
    beat_unit: int = 4
    first_downbeat_s: float = 0.0
    beat_times: tuple[float, ...] = ()
    duration_s: float | None = None

    def __post_init__(self) -> None:
        check_bpm(self.bpm, "tempo")
        parse_meter((self.beats_per_bar, self.beat_unit), "meter")
        if not (math.isfinite(self.first_downbeat_s) and self.first_downbeat_s >= 0):
            raise InputError(f"the first downbeat must be at >= 0 s, got {self.first_downbeat_s}")
        if self.duration_s is not None and not self.first_downbeat_s < self.duration_s:
            raise InputError(f"the first downbeat ({self.first_downbeat_s:.3f} s) is not inside the audio "
                             f"({self.duration_s:.3f} s)")

    # ------------------------------------------------------------------------------ construction
    @classmethod
    def regular(cls, bpm: float, meter: tuple[int, int] | str, first_downbeat_s: float = 0.0,
                duration_s: float | None = None) -> BarGrid:
        """A grid with its beats laid out regularly over ``duration_s`` (none without it)."""
        num, unit = parse_meter(meter, "meter")
        g = cls(float(bpm), num, unit, float(first_downbeat_s), (), duration_s)
        if duration_s is None:
            return g
        return dataclasses.replace(g, beat_times=tuple(g.beat_times_until(duration_s, before=True)))

    def with_overrides(self, bpm: float | None = None, meter: tuple[int, int] | str | None = None,
                       downbeat_s: float | None = None) -> BarGrid:
        """This grid with the given fields replaced (validated); the beats are re-laid regularly."""
        num, unit = parse_meter(meter) if meter is not None else (self.beats_per_bar, self.beat_unit)
        first = self.first_downbeat_s if downbeat_s is None else float(downbeat_s)
        if downbeat_s is not None and (not math.isfinite(first) or first < 0):
            raise InputError(f"--downbeat must be a time >= 0 s, got {downbeat_s}")
        tempo = self.bpm if bpm is None else check_bpm(bpm)
        return BarGrid.regular(tempo, (num, unit), first, self.duration_s)

    # ------------------------------------------------------------------------------------ sizes
    @property
    def meter(self) -> tuple[int, int]:
        return (self.beats_per_bar, self.beat_unit)

    @property
    def meter_name(self) -> str:
        return f"{self.beats_per_bar}/{self.beat_unit}"

    @property
    def quarters_per_bar(self) -> float:
        return self.beats_per_bar * 4.0 / self.beat_unit

    @property
    def beat_seconds(self) -> float:
        """Length of one beat (one ``beat_unit`` note), seconds."""
        return 60.0 / self.bpm * 4.0 / self.beat_unit

    @property
    def bar_seconds(self) -> float:
        """Length of one bar, seconds."""
        return self.quarters_per_bar * 60.0 / self.bpm

    def bar_count(self, duration_s: float | None = None) -> int:
        """Whole bars between the first downbeat and the end of ``duration_s`` (default: the grid's)."""
        dur = self._duration(duration_s)
        return max(0, int(math.floor((dur - self.first_downbeat_s) / self.bar_seconds + 1e-4)))  # rounding to samples

    def _duration(self, duration_s: float | None) -> float:
        dur = self.duration_s if duration_s is None else duration_s
        if dur is None:
            raise InputError("the length of the audio is needed to count its bars")
        return float(dur)

    # ------------------------------------------------------------------------------------ times
    def downbeat_times(self, until_s: float) -> list[float]:
        """Downbeats (seconds) from the first one up to (excluding) ``until_s``."""
        n = int(math.ceil((until_s - self.first_downbeat_s) / self.bar_seconds - 1e-9))
        return [self.first_downbeat_s + k * self.bar_seconds for k in range(max(0, n))]

    def beat_times_until(self, until_s: float, *, before: bool = False) -> list[float]:
        """Regular beats (seconds) up to ``until_s``; ``before``: also the pick-up beats before bar 1."""
        k0 = -int(math.floor(self.first_downbeat_s / self.beat_seconds + 1e-9)) if before else 0
        n = int(math.ceil((until_s - self.first_downbeat_s) / self.beat_seconds - 1e-9))
        return [self.first_downbeat_s + k * self.beat_seconds for k in range(k0, max(k0, n))]

    def bar_start_s(self, bar: int) -> float:
        """Start of 1-based ``bar`` (seconds)."""
        return self.first_downbeat_s + (int(bar) - 1) * self.bar_seconds

    def bars_to_seconds(self, first: int, last: int) -> tuple[float, float]:
        """Bars ``first``..``last`` (1-based, inclusive) -> ``(start_s, end_s)``, not clipped."""
        return self.bar_start_s(first), self.bar_start_s(last + 1)

    def bars_to_samples(self, first: int, last: int, sample_rate: int) -> tuple[int, int]:
        """Bars ``first``..``last`` -> ``(start, end)`` sample indices at ``sample_rate`` (rounded to the
        nearest sample; the end is clipped to the audio when its length is known)."""
        a, b = self.bars_to_seconds(first, last)
        start, end = int(round(a * sample_rate)), int(round(b * sample_rate))
        if self.duration_s is not None:
            end = min(end, int(round(self.duration_s * sample_rate)))
        return start, end

    def check_bars(self, first: int, last: int, duration_s: float | None = None, *, whole: bool = False,
                   what: str = "--bars") -> tuple[int, int]:
        """``(first, last)`` after checking them against the audio: InputError (one line) for bar 0, a
        reversed range or a bar that starts at or after the end. The last bar may run past the end (it
        is clipped) unless ``whole``, which asks for every bar to fit."""
        first, last = parse_bars((first, last), what)
        dur = self._duration(duration_s)
        count = self.bar_count(dur)
        tail = f"the audio has {count} whole bar{'s' if count != 1 else ''} of {self.meter_name} at {self.bpm:.1f} bpm"
        end_s = self.bar_start_s(last + 1)
        if self.bar_start_s(last) >= dur - 1e-6 or (whole and end_s > dur + 1e-3):  # 1 ms: rounding to samples
            raise InputError(f"{what} {first}:{last} goes past the end: {tail}")
        return first, last

    def to_dict(self, duration_s: float | None = None, sample_rate: int | None = None) -> dict:
        """Machine-readable summary: tempo, meter, first downbeat (seconds and, with ``sample_rate``,
        samples), bar length and count, downbeats and beats (seconds, rounded to 0.1 ms)."""
        dur = self.duration_s if duration_s is None else duration_s
        out = {"bpm": round(self.bpm, 3), "meter": self.meter_name, "beats_per_bar": self.beats_per_bar,
               "beat_unit": self.beat_unit, "first_downbeat_s": round(self.first_downbeat_s, 4),
               "bar_seconds": round(self.bar_seconds, 4)}
        if sample_rate is not None:
            out["sample_rate"] = int(sample_rate)
            out["first_downbeat_samples"] = int(round(self.first_downbeat_s * sample_rate))
        if dur is not None:
            out["duration_s"] = round(float(dur), 4)
            out["bars"] = self.bar_count(dur)
            out["downbeats_s"] = [round(t, 4) for t in self.downbeat_times(dur)]
        if self.beat_times:
            out["beats_s"] = [round(float(t), 4) for t in self.beat_times]
        return out
