"""Drum grooves on the GM percussion map (channel 10), with fills at section ends and crashes on
section starts.

A groove is a step grid per bar: ``steps_per_beat`` steps per quarter note and one string per drum
(``.`` rest, ``o`` ghost, ``x`` normal, ``X`` accent). Grooves exist for 4/4 (16 or 12 steps), 3/4
and 6/8 bars.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .notes import Note

# GM percussion keys.
KICK, SIDE_STICK, SNARE, CLAP, CLOSED_HH, PEDAL_HH, OPEN_HH = 36, 37, 38, 39, 42, 44, 46
LOW_TOM, MID_TOM, HIGH_TOM, CRASH, RIDE, TAMBOURINE, COWBELL, SHAKER = 45, 47, 50, 49, 51, 54, 56, 70
FLOOR_TOM = 41

_VEL = {"o": 48, "x": 96, "X": 118}


@dataclass(frozen=True)
class Groove:
    """A one-bar drum pattern: ``steps_per_beat`` grid steps per quarter note, ``bar_beats`` quarter
    notes per bar, and per GM drum key a pattern string of length steps_per_beat * bar_beats."""

    name: str
    steps_per_beat: int
    bar_beats: int
    lanes: dict[int, str]
    tags: tuple[str, ...]


GROOVES: dict[str, Groove] = {g.name: g for g in (
    Groove("rock", 4, 4, {KICK: "x.......x.x.....", SNARE: "....X.......X...",
                          CLOSED_HH: "x.x.x.x.x.x.x.x."}, ("rock beat", "straight eighths", "backbeat")),
    Groove("pop", 4, 4, {KICK: "x......x..x.....", SNARE: "....X.......X...", CLOSED_HH: "x.x.x.x.x.x.x.x.",
                         TAMBOURINE: "....x.......x..."}, ("pop beat", "backbeat", "tambourine")),
    Groove("half_time", 4, 4, {KICK: "x.........x.....", SNARE: "........X.......",
                               CLOSED_HH: "x.x.x.x.x.x.x.x."}, ("half-time groove", "laid-back")),
    Groove("funk", 4, 4, {KICK: "x..x..x...x..x..", SNARE: "....X..o.o..X..o",
                          CLOSED_HH: "xoxoxoxoxoxoxoxo"}, ("funk groove", "sixteenth notes", "ghost notes",
                                                          "syncopated")),
    Groove("disco", 4, 4, {KICK: "x...x...x...x...", SNARE: "....X.......X...", CLOSED_HH: "x...x...x...x...",
                           OPEN_HH: "..x...x...x...x."}, ("disco beat", "four on the floor", "open hi-hat")),
    Groove("four_on_floor", 4, 4, {KICK: "X...X...X...X...", CLAP: "....x.......x...",
                                   CLOSED_HH: "x.x.x.x.x.x.x.x.", OPEN_HH: "..x...x...x...x."},
           ("four on the floor", "dance beat", "claps")),
    Groove("hiphop", 4, 4, {KICK: "x......xx.x.....", SNARE: "....X.......X...",
                            CLOSED_HH: "x.x.x.x.x.x.x.x."}, ("hip hop beat", "boom bap", "swung")),
    Groove("bossa", 4, 4, {KICK: "x..xx..xx..xx..x", SIDE_STICK: "x..x..x...x..x..",
                           CLOSED_HH: "oooooooooooooooo"}, ("bossa nova groove", "cross-stick", "latin")),
    Groove("one_drop", 4, 4, {KICK: "........X.......", SIDE_STICK: "........x.......",
                              CLOSED_HH: "x.x.x.x.x.x.x.x."}, ("one drop", "reggae groove", "cross-stick")),
    Groove("ballad", 4, 4, {KICK: "x.......x.......", SIDE_STICK: "....x.......x...",
                            CLOSED_HH: "o.o.o.o.o.o.o.o."}, ("soft groove", "cross-stick", "gentle")),
    Groove("shuffle", 3, 4, {KICK: "x.....x.....", SNARE: "...X.....X..", CLOSED_HH: "x.xx.xx.xx.x"},
           ("shuffle", "triplet feel", "swung")),
    Groove("swing", 3, 4, {RIDE: "x..x.xx..x.x", PEDAL_HH: "...x.....x..", KICK: "o..o..o..o..",
                           SNARE: "........o..."}, ("swing", "ride cymbal", "brushes and ride", "jazz drums")),
    Groove("waltz", 4, 3, {KICK: "x...........", SNARE: "....x...x...", CLOSED_HH: "x.x.x.x.x.x."},
           ("waltz beat", "three-four")),
    Groove("jazz_waltz", 3, 3, {RIDE: "x..x.xx..", PEDAL_HH: "...x..x..", KICK: "o........"},
           ("jazz waltz", "ride cymbal", "swing")),
    Groove("folk68", 4, 3, {KICK: "x.....x.....", SNARE: "......x.....", CLOSED_HH: "x.x.x.x.x.x."},
           ("six-eight groove", "compound meter")),
    Groove("ballad68", 4, 3, {KICK: "x...........", SIDE_STICK: "......x.....", RIDE: "o.o.o.o.o.o."},
           ("six-eight groove", "gentle", "ride cymbal")),
)}

#: A groove for bar lengths the drawn groove does not fit (3/4 and 6/8 fallbacks).
_FALLBACK = {
    3: {"swing": "jazz_waltz", "ballad": "ballad68", "half_time": "ballad68", "shuffle": "jazz_waltz"},
    4: {"folk68": "rock", "ballad68": "ballad", "waltz": "rock", "jazz_waltz": "swing"},
}


def groove_for(name: str, bar_beats: float) -> Groove:
    """The groove ``name`` adapted to bars of ``bar_beats`` quarter notes."""
    g = GROOVES[name]
    if g.bar_beats == int(round(bar_beats)):
        return g
    alt = _FALLBACK.get(int(round(bar_beats)), {}).get(name, "waltz" if int(round(bar_beats)) == 3 else "rock")
    return GROOVES[alt]


def _fill(rng: np.random.Generator, start: float, beats: float, spb: int) -> list[Note]:
    """A snare/tom fill over ``beats`` quarter notes from ``start``: descending sixteenths."""
    toms = [SNARE, HIGH_TOM, MID_TOM, LOW_TOM, FLOOR_TOM]
    n = int(round(beats * spb))
    out = []
    for i in range(n):
        if rng.random() < 0.15 and i not in (0, n - 1):
            continue
        drum = toms[min(len(toms) - 1, i * len(toms) // n)]
        out.append(Note(start + i / spb, 0.9 / spb, drum, int(80 + 30 * i / max(n - 1, 1))))
    return out


def drum_notes(rng: np.random.Generator, groove: Groove, num_bars: int, active: list[bool],
               section_ends: set[int], section_starts: set[int], swing: float) -> list[Note]:
    """Notes (start/duration in quarter beats) of a drum part over ``num_bars`` bars.

    Bars where ``active`` is False are silent; bars in ``section_ends`` end with a fill (the last
    beat, or two on a 50% draw); bars in ``section_starts`` open with a crash. ``swing`` delays every
    odd grid step by that fraction of a step (straight grids only).
    """
    spb, bb = groove.steps_per_beat, groove.bar_beats
    out: list[Note] = []
    fill_len = 1.0 if rng.random() < 0.5 else 2.0
    for bar in range(num_bars):
        if not active[bar]:
            continue
        t0 = bar * bb
        fill_from = bb - fill_len if bar in section_ends else bb + 1
        for drum, lane in groove.lanes.items():
            for step, ch in enumerate(lane):
                if ch == "." or step / spb >= fill_from:
                    continue
                t = t0 + step / spb
                if spb == 4 and step % 2 == 1:
                    t += swing / spb
                vel = _VEL[ch]
                if drum in (CLOSED_HH, RIDE) and step % spb == 0:
                    vel = min(127, vel + 10)
                out.append(Note(t, 0.5 / spb, drum, vel))
        if bar in section_ends:
            out.extend(_fill(rng, t0 + fill_from, fill_len, 4 if spb == 4 else 3))
        if bar in section_starts and bar > 0:
            out.append(Note(float(t0), 1.0, CRASH, 110))
    return out
