"""Note generators for the pitched roles: bass, chords, pad, arpeggio, lead, counter-melody.

Every generator is ``fn(rng, plan, part) -> list[Note]`` (times in quarter-note beats) and follows
the plan's harmony: bass lines and comping use the chord of the moment, melodies put chord tones on
strong beats and scale tones in between. Only bars where ``part.active_bars`` is True are written.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from . import gm
from .drums import drum_notes, groove_for
from .notes import Note
from .plan import PartSpec, SongPlan
from .theory import Chord, nearest_pitch, scale_pitches, voice_chord

#: Pitch ranges (MIDI) per role before intersecting with the instrument's own range.
ROLE_RANGE = {"bass": (28, 52), "chords": (48, 79), "pad": (45, 81), "arpeggio": (55, 88),
              "lead": (60, 88), "counter-melody": (50, 74)}


def part_range(part: PartSpec) -> tuple[int, int]:
    """The pitch range a part uses: its role's range within its instrument's comfortable range,
    shifted by octaves when they do not overlap enough (a piccolo lead plays higher than a tuba)."""
    rlo, rhi = ROLE_RANGE[part.role]
    ilo, ihi = gm.pitch_range(part.program)
    lo, hi = max(rlo, ilo), min(rhi, ihi)
    if hi - lo < 14:
        span = max(14, min(rhi - rlo, ihi - ilo))
        centre = (ilo + ihi) // 2
        lo, hi = max(ilo, centre - span // 2), min(ihi, centre - span // 2 + span)
    return lo, hi


def _vel(rng: np.random.Generator, base: float, spread: float = 8.0) -> int:
    return int(np.clip(round(base + rng.normal(0, spread)), 20, 127))


# --------------------------------------------------------------------------- bass
_SYNC_PATTERNS = ("x..x..x...x.x...", "x.xx...x..x..x..", "x..x.x..x..x.x..", "x...x.xx..x...x.",
                  "x.x..x.xx.x..x..")


def bass_notes(rng: np.random.Generator, plan: SongPlan, part: PartSpec) -> list[Note]:
    """Bass line in one of the styles root, root8, root_fifth, walking, syncopated, octave, arpeggiated."""
    lo, hi = part_range(part)
    centre = lo + 9
    style = part.style
    pattern = _SYNC_PATTERNS[int(rng.integers(len(_SYNC_PATTERNS)))]
    bb = plan.bar_beats
    out: list[Note] = []
    prev = None
    for bar in range(plan.num_bars):
        if not part.active_bars[bar]:
            continue
        for start, length, chord in plan.chord_segments(bar):
            root = nearest_pitch(chord.root, centre if prev is None else (prev + centre) / 2, lo, hi - 7)
            fifth = nearest_pitch(chord.fifth, root + 7, lo, hi)
            if style == "root":
                step = 2.0 if length >= 4 else length
                for k in np.arange(0, length - 1e-9, step):
                    out.append(Note(start + k, step * 0.95, root, _vel(rng, 96)))
            elif style == "root8":
                for k in np.arange(0, length - 1e-9, 0.5):
                    out.append(Note(start + k, 0.45, root, _vel(rng, 100 if k % 1 == 0 else 84)))
            elif style == "root_fifth":
                half = 1.5 if bb == 3 and plan.meter == (6, 8) else (1.0 if bb == 3 else 2.0)
                for i, k in enumerate(np.arange(0, length - 1e-9, half)):
                    out.append(Note(start + k, half * 0.9, root if i % 2 == 0 else fifth, _vel(rng, 96)))
            elif style == "octave":
                for i, k in enumerate(np.arange(0, length - 1e-9, 0.5)):
                    p = root if i % 2 == 0 else min(root + 12, hi + 12)
                    out.append(Note(start + k, 0.4, p, _vel(rng, 100 if i % 2 == 0 else 90)))
            elif style == "arpeggiated":
                tones = [root + (pc - chord.root) % 12 for pc in chord.pitch_classes] + [root + 12]
                for i, k in enumerate(np.arange(0, length - 1e-9, 0.5)):
                    out.append(Note(start + k, 0.45, tones[i % len(tones)], _vel(rng, 92)))
            elif style == "syncopated":
                choices = [root, root, root, root + 12, fifth]
                if len(chord.intervals) > 3:
                    choices.append(root + chord.intervals[3])
                for step, ch in enumerate(pattern):
                    k = step / 4
                    if ch == "." or k >= length - 1e-9:
                        continue
                    p = root if step == 0 else choices[int(rng.integers(len(choices)))]
                    out.append(Note(start + k, 0.22 if rng.random() < 0.6 else 0.45, p, _vel(rng, 100)))
            elif style == "walking":
                out.extend(_walk(rng, plan, start, length, chord, root, lo, hi))
            else:
                raise ValueError(f"unknown bass style {style}")
            prev = root
    return out


def _walk(rng: np.random.Generator, plan: SongPlan, start: float, length: float, chord: Chord, root: int,
          lo: int, hi: int) -> list[Note]:
    """Walking quarter notes: root first, chord/scale tones after, a chromatic or scale approach into
    the next chord's root on the last beat."""
    beats = int(round(length))
    nxt = plan.chord_at(start + length + 1e-6)
    target = nearest_pitch(nxt.root, root, lo, hi)
    pool = scale_pitches(plan.key.scale, lo, hi)
    chord_pool = scale_pitches(chord.pitch_classes, lo, hi)
    out = [Note(start, 0.9, root, _vel(rng, 100))]
    cur = root
    for b in range(1, beats):
        if b == beats - 1:
            p = target + (1 if rng.random() < 0.5 else -1)
            if not lo <= p <= hi:
                p = target - 1 if target - 1 >= lo else target + 1
        else:
            src = chord_pool if rng.random() < 0.6 else pool
            near = [q for q in src if 0 < abs(q - cur) <= 5] or src
            p = int(near[int(rng.integers(len(near)))])
        out.append(Note(start + b, 0.9, p, _vel(rng, 88)))
        cur = p
    return out


# --------------------------------------------------------------------------- chords / pad
def _comp_pattern(name: str, bb: float, rng: np.random.Generator) -> list[tuple[float, float, float]]:
    """(offset, duration, velocity scale) hits of a comping pattern over one bar of ``bb`` beats."""
    three = abs(bb - 3) < 1e-9
    if name == "sustained":
        return [(0.0, bb, 0.85)]
    if name == "halves":
        return [(0.0, 1.5, 0.9), (1.5, 1.5, 0.8)] if three else [(0.0, 1.9, 0.9), (2.0, 1.9, 0.8)]
    if name == "pulse4":
        return [(float(k), 0.85, 0.95 if k == 0 else 0.8) for k in range(int(bb))]
    if name in ("pulse8", "power"):
        return [(k * 0.5, 0.42, 1.0 if k % 2 == 0 else 0.8) for k in range(int(bb * 2))]
    if name == "offbeat":
        return [(k + 0.5, 0.25, 0.95) for k in range(int(bb))]
    if name == "waltz" or (three and name in ("charleston", "pop_sync", "stabs16", "bossa", "shuffle")):
        return [(1.0, 0.8, 0.8), (2.0, 0.8, 0.8)]
    if name == "compound":
        return [(0.0, 1.4, 0.95), (1.5, 1.4, 0.8)] if three else [(k * 1.5, 1.4, 0.9) for k in range(3)]
    if name == "pop_sync":
        return [(0.0, 1.4, 1.0), (1.5, 0.9, 0.85), (2.5, 1.4, 0.9)]
    if name == "charleston":
        hits = [(0.0, 0.7, 1.0), (1.5, 0.45, 0.85)]
        if rng.random() < 0.5:
            hits.append((3.5, 0.45, 0.8))
        return hits
    if name == "stabs16":
        steps = [0, 3, 6, 10, 12, 14] if rng.random() < 0.5 else [2, 6, 7, 10, 14]
        return [(s / 4, 0.2, 0.95) for s in steps]
    if name == "bossa":
        return [(0.0, 0.7, 0.9), (1.5, 0.4, 0.8), (2.5, 0.7, 0.85), (3.5, 0.4, 0.8)]
    if name == "strum" and three:
        return [(0.0, 0.9, 1.0), (1.0, 0.45, 0.8), (1.5, 0.45, 0.75), (2.0, 0.45, 0.85), (2.5, 0.45, 0.75)]
    if name == "strum":
        return [(0.0, 0.9, 1.0), (1.0, 0.45, 0.8), (1.5, 0.9, 0.75), (2.5, 0.45, 0.8), (3.0, 0.45, 0.9),
                (3.5, 0.45, 0.75)]
    if name == "shuffle":
        return [(k + d, 0.3, 0.9 if d == 0 else 0.7) for k in range(4) for d in (0.0, 2 / 3)]
    raise ValueError(f"unknown comping pattern {name}")


def chord_notes(rng: np.random.Generator, plan: SongPlan, part: PartSpec) -> list[Note]:
    """Comping (or, for the pad role, sustained) chords with voice-led voicings."""
    lo, hi = part_range(part)
    size = 4 if part.role == "pad" else (3 if rng.random() < 0.5 else 4)
    out: list[Note] = []
    prev: list[int] | None = None
    power = part.style == "power"
    strum = part.style == "strum" or gm.program(part.program).family == "guitar"
    for bar in range(plan.num_bars):
        if not part.active_bars[bar]:
            continue
        bar_start = bar * plan.bar_beats
        hits = [h for h in _comp_pattern(part.style, plan.bar_beats, rng) if h[0] < plan.bar_beats - 1e-9]
        for off, dur, vs in hits:
            t = bar_start + off
            chord = plan.chord_at(t + 1e-6)
            seg_end = next(s + d for s, d, c in plan.chord_segments(bar) if s <= t + 1e-6 < s + d)
            dur = min(dur, seg_end - t)
            if power:
                root = nearest_pitch(chord.root, 45, max(lo - 12, 36), 57)
                voicing = [root, root + 7, root + 12]
            else:
                voicing = voice_chord(chord, prev, lo, hi, size, rng)
                prev = voicing
            base = 72 if part.role == "pad" else 92
            for i, p in enumerate(voicing):
                roll = 0.02 * i if strum else 0.0  # a strum spreads the notes by ~20 ms per string
                out.append(Note(t + roll * plan.tempo / 60.0, max(dur - roll, 0.1), p, _vel(rng, base * vs, 6)))
    return out


# --------------------------------------------------------------------------- arpeggio
def arpeggio_notes(rng: np.random.Generator, plan: SongPlan, part: PartSpec) -> list[Note]:
    """Broken chords: chord tones over two octaves, up / down / up-down / random, in 8ths or 16ths."""
    lo, hi = part_range(part)
    rate = 0.25 if (plan.tempo < 110 and rng.random() < 0.6) else 0.5
    if plan.meter == (6, 8):
        rate = 0.5
    gate = 0.9 if rng.random() < 0.5 else 0.5
    out: list[Note] = []
    for bar in range(plan.num_bars):
        if not part.active_bars[bar]:
            continue
        for start, length, chord in plan.chord_segments(bar):
            pool = scale_pitches(chord.pitch_classes, lo, min(hi, lo + 24))
            if part.style == "down":
                seq = pool[::-1]
            elif part.style == "updown":
                seq = pool + pool[-2:0:-1]
            else:
                seq = list(pool)
            n = int(round(length / rate))
            for i in range(n):
                p = seq[i % len(seq)] if part.style != "random" else seq[int(rng.integers(len(seq)))]
                out.append(Note(start + i * rate, rate * gate, p, _vel(rng, 88 if i % 2 == 0 else 76)))
    return out


# --------------------------------------------------------------------------- melodies
_CELLS = {
    4: {"sparse": ((4,), (2, 2), (3, 1), (-1, 3), (2, -2), (-2, 2), (1.5, 2.5)),
        "medium": ((1, 1, 2), (2, 1, 1), (1.5, 0.5, 2), (1, 1, 1, 1), (-1, 1, 1, 1), (1, 0.5, 0.5, 2),
                   (0.5, 0.5, 1, 2), (1.5, 1.5, 1)),
        "busy": ((0.5,) * 8, (0.5, 0.5, 1, 0.5, 0.5, 1), (0.25, 0.25, 0.5, 1, 0.5, 0.5, 1),
                 (0.75, 0.75, 0.5, 0.5, 0.5, 1), (-0.5, 0.5, 0.5, 0.5, 1, 1))},
    3: {"sparse": ((3,), (2, 1), (-1, 2), (1.5, 1.5)),
        "medium": ((1, 1, 1), (1.5, 0.5, 1), (1, 0.5, 0.5, 1), (-1, 1, 1), (1, 1, 0.5, 0.5)),
        "busy": ((0.5,) * 6, (0.5, 0.5, 1, 0.5, 0.5), (0.25, 0.25, 0.5, 1, 1), (1, 0.5, 0.5, 0.5, 0.5))},
}


def _cell_bank(density: float) -> str:
    return "sparse" if density < 0.3 else ("busy" if density > 0.75 else "medium")


def _phrase_rhythm(rng: np.random.Generator, bb: float, density: float) -> list[tuple[float, float]]:
    cells = _CELLS[int(round(bb))][_cell_bank(density)]
    cell = cells[int(rng.integers(len(cells)))]
    out, t = [], 0.0
    for d in cell:
        if d > 0:
            out.append((t, float(d)))
        t += abs(d)
    return out


def melody_notes(rng: np.random.Generator, plan: SongPlan, part: PartSpec) -> list[Note]:
    """A lead (or counter-) melody in phrases of 4 bars: rhythm motifs A A' B A per phrase with a
    rest closing every phrase; chord tones on strong beats, stepwise scale motion elsewhere."""
    lo, hi = part_range(part)
    counter = part.role == "counter-melody"
    density = part.density * (0.5 if counter else 1.0)
    scale = scale_pitches(plan.key.scale, lo, hi)
    cur = scale[len(scale) // 2]
    out: list[Note] = []
    motifs = [_phrase_rhythm(rng, plan.bar_beats, density) for _ in range(2)]
    form = (0, 0, 1, 0)
    for bar in range(plan.num_bars):
        if not part.active_bars[bar]:
            continue
        pos = bar % 4
        rhythm = motifs[form[pos]]
        if pos == 3:  # close the phrase: drop the notes of the bar's second half
            rhythm = [(t, d) for t, d in rhythm if t < plan.bar_beats / 2] or rhythm[:1]
        if pos == 1 and rng.random() < 0.3:
            rhythm = _phrase_rhythm(rng, plan.bar_beats, density)
        bar_start = bar * plan.bar_beats
        for t, d in rhythm:
            at = bar_start + t
            chord = plan.chord_at(at + 1e-6)
            strong = abs(t - round(t)) < 1e-9 and (int(round(t)) % 2 == 0 or d >= 1)
            if strong or counter:
                pool = scale_pitches(chord.pitch_classes, lo, hi)
                if counter and len(chord.pitch_classes) > 3 and rng.random() < 0.5:
                    pool = scale_pitches([chord.pitch_classes[1], chord.pitch_classes[3]], lo, hi)
            else:
                pool = scale
            step_limit = 4 if rng.random() < 0.8 else 9
            near = [p for p in pool if abs(p - cur) <= step_limit and p != cur] or pool
            # lean back towards the middle of the range so the line does not drift off an edge
            mid = (lo + hi) / 2
            weights = np.array([1.0 + (0.5 if (p - cur) * (mid - cur) > 0 else 0.0) for p in near])
            cur = int(near[int(rng.choice(len(near), p=weights / weights.sum()))])
            legato = 0.95 if counter else float(rng.choice([0.6, 0.85, 0.95]))
            out.append(Note(at, d * legato, cur, _vel(rng, 84 if counter else 96)))
    return out


GENERATORS: dict[str, Callable[[np.random.Generator, SongPlan, PartSpec], list[Note]]] = {
    "bass": bass_notes,
    "chords": chord_notes,
    "pad": chord_notes,
    "arpeggio": arpeggio_notes,
    "lead": melody_notes,
    "counter-melody": melody_notes,
}


#: Velocity scale per section: choruses loudest, intros and outros softest.
SECTION_ENERGY = {"intro": 0.85, "verse": 0.92, "chorus": 1.0, "bridge": 0.9, "outro": 0.85}


def _swing_eighths(notes: list[Note], swing: float) -> list[Note]:
    """Delay notes on off-beat eighths by ``swing`` x half a beat (1/3 gives a triplet shuffle) and
    shorten the notes before them so nothing overlaps more than it did."""
    out = []
    for n in notes:
        frac = n.start % 1.0
        if abs(frac - 0.5) < 1e-6:
            out.append(Note(n.start + swing * 0.5, max(n.dur - swing * 0.5, 0.05), n.pitch, n.velocity))
        elif frac < 1e-6 and abs(n.dur - 0.5) < 0.06:  # an on-beat eighth lasts longer when swung
            out.append(Note(n.start, n.dur * (1 + swing), n.pitch, n.velocity))
        else:
            out.append(n)
    return out


def part_notes(rng: np.random.Generator, plan: SongPlan, part: PartSpec) -> list[Note]:
    """The notes of ``part`` (any role, drums included), sorted by start time; pitched parts swing
    their eighths in swung styles, and every part plays louder in choruses than in intros."""
    if part.is_drum:
        starts = {s.start_bar for s in plan.sections}
        ends = {b for b in range(plan.num_bars) if plan.is_section_end(b)}
        notes = drum_notes(rng, groove_for(part.style, plan.bar_beats), plan.num_bars, part.active_bars,
                           ends, starts, plan.style.swing)
    else:
        notes = GENERATORS[part.role](rng, plan, part)
        if plan.style.swing >= 0.3:
            notes = _swing_eighths(notes, plan.style.swing)
    if len(plan.sections) > 1:
        notes = [Note(n.start, n.dur, n.pitch, int(np.clip(round(n.velocity * SECTION_ENERGY[
            plan.section_at(int(n.start // plan.bar_beats)).name]), 1, 127))) for n in notes]
    return sorted(notes, key=lambda n: (n.start, n.pitch))
