"""Reading a standard MIDI file into a :class:`.model.Piece`: one part per channel.

Tracks are merged and split by channel (the program, and so the instrument, belongs to the channel).
A part's name is the name of the track holding most of its notes; its program is the channel's
first program change; channel 10 is drums. Controllers 1 (modulation), 7 (volume), 11 (expression)
and 64 (sustain) and pitch bends are kept, times in seconds through the file's tempo map. Bars come
from the time signatures (4/4 when there is none).
"""

from __future__ import annotations

import bisect
import os
from collections import Counter, defaultdict

import mido

from ...errors import InputError
from .inventory import PieceRef
from .model import Bar, Part, Piece, TimedNote, bar_grid

DRUM_CHANNEL = 9
KEPT_CONTROLLERS = (1, 7, 11, 64)


def _tempo_seconds(tempi: list[tuple[int, int]], tpb: int):
    """A function tick -> seconds for tempo changes [(tick, microseconds per quarter)]."""
    tempi = sorted(tempi) or [(0, 500_000)]
    if tempi[0][0] > 0:
        tempi.insert(0, (0, 500_000))
    starts, acc = [], 0.0
    for i, (tick, us) in enumerate(tempi):
        starts.append(acc)
        if i + 1 < len(tempi):
            acc += (tempi[i + 1][0] - tick) * us / 1e6 / tpb

    ticks = [t for t, _ in tempi]

    def at(tick: float) -> float:
        i = max(0, bisect.bisect_right(ticks, tick) - 1)
        return starts[i] + (tick - tempi[i][0]) * tempi[i][1] / 1e6 / tpb

    return at


def load_midi(ref: PieceRef) -> Piece:
    """Read ``ref.path`` (a type 0 or 1 MIDI file)."""
    path = ref.path
    try:
        mid = mido.MidiFile(os.fspath(path))
    except (OSError, EOFError, ValueError, KeyError) as exc:
        raise InputError(f"not a readable MIDI file: {path} ({exc})") from exc
    if mid.type == 2:
        raise InputError(f"{path}: MIDI type 2 is not supported")
    tpb = mid.ticks_per_beat
    tempi: list[tuple[int, int]] = []
    meters: list[tuple[int, tuple[int, int]]] = []
    open_notes: dict[tuple[int, int], list[tuple[int, int]]] = defaultdict(list)
    notes: dict[int, list[tuple[int, int, int, int]]] = defaultdict(list)
    programs: dict[int, int] = {}
    controls: dict[int, list[tuple[int, int, int]]] = defaultdict(list)
    bends: dict[int, list[tuple[int, int]]] = defaultdict(list)
    track_of: dict[int, Counter] = defaultdict(Counter)
    names: dict[int, str] = {}
    end_tick = 0
    for ti, track in enumerate(mid.tracks):
        tick = 0
        for msg in track:
            tick += msg.time
            end_tick = max(end_tick, tick)
            if msg.type == "set_tempo":
                tempi.append((tick, msg.tempo))
            elif msg.type == "time_signature":
                meters.append((tick, (int(msg.numerator), int(msg.denominator))))
            elif msg.type == "track_name":
                names.setdefault(ti, str(msg.name).strip())
            elif msg.type == "note_on" and msg.velocity > 0:
                open_notes[(msg.channel, msg.note)].append((tick, msg.velocity))
                track_of[msg.channel][ti] += 1
            elif msg.type in ("note_off", "note_on"):
                stack = open_notes.get((msg.channel, msg.note))
                if stack:
                    on, vel = stack.pop(0)
                    notes[msg.channel].append((on, max(tick, on + 1), msg.note, vel))
            elif msg.type == "program_change":
                programs.setdefault(msg.channel, msg.program)
            elif msg.type == "control_change" and msg.control in KEPT_CONTROLLERS:
                controls[msg.channel].append((tick, msg.control, msg.value))
            elif msg.type == "pitchwheel":
                bends[msg.channel].append((tick, msg.pitch))
    for (ch, pitch), stack in open_notes.items():  # notes never released end with the file
        for on, vel in stack:
            notes[ch].append((on, max(end_tick, on + tpb), pitch, vel))
    sec = _tempo_seconds(tempi, tpb)
    parts = []
    for ch in sorted(notes):
        if not notes[ch]:
            continue
        main_track = track_of[ch].most_common(1)[0][0] if track_of[ch] else None
        name = names.get(main_track, "") if main_track is not None else ""
        parts.append(Part(
            name or f"channel {ch + 1}",
            sorted(TimedNote(sec(a), sec(b), p, v) for a, b, p, v in notes[ch]),
            is_drum=ch == DRUM_CHANNEL,
            program=programs.get(ch, 0),
            controls=sorted((sec(t), c, v) for t, c, v in controls[ch]),
            bends=sorted((sec(t), v) for t, v in bends[ch]),
        ))
    last_note = max((n[1] for ns in notes.values() for n in ns), default=0)
    grid = bar_grid([(t / tpb, m) for t, m in sorted(meters)], last_note / tpb)
    bars = [Bar(b, sec(b * tpb), m) for b, m in grid]
    last = bars[-1]
    end = sec((last.beat + last.meter[0] * 4.0 / last.meter[1]) * tpb)
    return Piece(ref.id, ref.source, ref.collection, ref.composer, ref.title, ref.licence, ref.genre, parts,
                 bars, end, tempo_marked=bool(tempi))
