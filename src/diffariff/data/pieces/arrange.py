"""From a :class:`.model.Piece` to song windows ready to render.

Per piece (seeded by the corpus seed and the piece id): a tempo factor (within +-10 %, kept inside
the metadata's 20-400 bpm), the roles of its parts, and, for a single-line tune, a derived bass and
chord part. Then windows of ``seconds`` that start on bar lines (a piece shorter than one window is
played through again until it fills one; at most ``max_windows`` windows, spread over the piece).
Per window: a transposition (-3..+3 semitones, drums never), programs, and humanisation: timing
jitter (N(0, 8 ms), drums 4 ms), velocity layers (a dynamic level per two-bar phrase, downbeat
accents, per-note jitter; MIDI sources keep their own velocities with lighter jitter).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace

import numpy as np

from ..synth.theory import Chord, Key
from .harmony import accompaniment, estimate_key, harmonise, label_chords, parse_symbol, pitch_class_histogram
from .model import Bar, Part, Piece, TimedNote
from .roles import assign_roles

TEMPO_JITTER = 0.10
TRANSPOSE = 3
MIN_TEMPO, MAX_TEMPO = 20.0, 400.0


@dataclass
class PreparedPiece:
    """A piece after the per-piece choices: scaled to its new tempo, parts (with derived ones) and roles."""

    piece: Piece
    roles: list[str]
    tempo_factor: float
    looped: bool
    key: Key


@dataclass
class Window:
    """One song: [start, start + seconds) of a prepared piece (times already shifted to 0)."""

    index: int
    start: float
    seconds: float
    parts: list[Part]
    roles: list[str]
    bars: list[float]
    meter: tuple[int, int]
    tempo: float
    key: Key
    progression: list[str]
    transpose: int = 0
    extra: dict = field(default_factory=dict)


def piece_rng(seed: int, piece_id: str, *more: int) -> np.random.Generator:
    """A generator seeded by the corpus seed, the piece id and ``more`` integers."""
    h = int.from_bytes(hashlib.blake2b(piece_id.encode(), digest_size=8).digest(), "big")
    return np.random.default_rng([int(seed), h, *[int(m) for m in more]])


def _scale(piece: Piece, f: float) -> Piece:
    """``piece`` played ``f`` times faster."""
    def sc(n: TimedNote) -> TimedNote:
        return TimedNote(n.start / f, n.end / f, n.pitch, n.velocity)

    parts = [replace(p, notes=[sc(n) for n in p.notes], controls=[(t / f, c, v) for t, c, v in p.controls],
                     bends=[(t / f, v) for t, v in p.bends]) for p in piece.parts]
    return replace(piece, parts=parts, bars=[Bar(b.beat, b.second / f, b.meter) for b in piece.bars],
                   end=piece.end / f, chords=[(t / f, s) for t, s in piece.chords])


def _loop(piece: Piece, seconds: float) -> Piece:
    """``piece`` played through again (and again) until it lasts at least ``seconds``."""
    times = int(np.ceil(seconds / max(piece.end, 1e-3)))
    if times <= 1:
        return piece
    d, beats = piece.end, piece._end_beat()
    parts = []
    for p in piece.parts:
        parts.append(replace(p, notes=[TimedNote(n.start + k * d, n.end + k * d, n.pitch, n.velocity)
                                       for k in range(times) for n in p.notes],
                             controls=[(t + k * d, c, v) for k in range(times) for t, c, v in p.controls],
                             bends=[(t + k * d, v) for k in range(times) for t, v in p.bends]))
    bars = [Bar(b.beat + k * beats, b.second + k * d, b.meter) for k in range(times) for b in piece.bars]
    chords = [(t + k * d, s) for k in range(times) for t, s in piece.chords]
    return replace(piece, parts=parts, bars=bars, end=d * times, chords=chords)


def prepare(piece: Piece, seed: int, seconds: float) -> PreparedPiece:
    """The per-piece choices (tempo factor, loop, derived accompaniment, roles)."""
    rng = piece_rng(seed, piece.id, 0)
    base = piece.tempo_between(0.0, piece.end)
    base = max(base, 1e-3)
    f = float(np.clip(rng.uniform(1.0 - TEMPO_JITTER, 1.0 + TEMPO_JITTER), MIN_TEMPO / base, MAX_TEMPO / base))
    scaled = _scale(piece, f)
    looped = scaled.end < seconds
    scaled = _loop(scaled, seconds)
    pitched = [p for p in scaled.parts if not p.is_drum]
    key = estimate_key(pitch_class_histogram([n for p in pitched for n in p.notes]))
    derived: dict[int, str] = {}
    single_line = len(pitched) == 1 and not any(p.is_drum for p in scaled.parts)
    if single_line and pitched[0].notes:
        melody = pitched[0].notes
        if pitched[0].name.startswith("part "):
            pitched[0].name = "melody"
        chords = harmonise(scaled, melody, key)
        bass, comp = accompaniment(scaled, chords, rng, min(n.pitch for n in melody))
        scaled.parts = scaled.parts + [bass, comp]
        derived = {len(scaled.parts) - 2: "bass", len(scaled.parts) - 1: "chords"}
        scaled.chords = [(s, c.symbol) for s, _, c in chords]
        scaled.harmonised = True
    roles = assign_roles(scaled.parts, derived)
    return PreparedPiece(scaled, roles, f, looped, key)


def window_starts(piece: Piece, seconds: float, max_windows: int, min_parts: int = 2) -> list[float]:
    """Starts (bar lines) of non-overlapping windows lying wholly inside the piece in which at least
    ``min_parts`` parts play (two notes or more each), at most ``max_windows`` of them, spread evenly.
    (A drums-only intro or a silent ending is not a song.)"""
    onsets = [np.array(sorted(n.start for n in p.notes)) for p in piece.parts]

    def playing(t0: float) -> int:
        t1 = t0 + seconds
        return sum(int(np.searchsorted(o, t1) - np.searchsorted(o, t0)) >= 2 for o in onsets)

    need = min(min_parts, len(piece.parts))
    starts: list[float] = []
    nxt = 0.0
    for b in piece.bars:
        if b.second + 1e-6 >= nxt and b.second + seconds <= piece.end + 1e-6 and playing(b.second) >= need:
            starts.append(b.second)
            nxt = b.second + seconds
    if len(starts) > max_windows:
        pick = np.linspace(0, len(starts) - 1, max_windows).round().astype(int)
        starts = [starts[i] for i in pick]
    return starts


def _cut(part: Part, t0: float, t1: float, shift: int) -> Part:
    """The notes (controls, bends) of ``part`` sounding in [t0, t1), moved to start at 0."""
    notes = []
    for n in part.notes:
        if n.start >= t1 or n.end <= t0:
            continue
        if n.start < t0 and n.end - t0 < 0.25:  # only a sliver of a held note would sound
            continue
        pitch = n.pitch if part.is_drum else n.pitch + shift
        if 0 <= pitch <= 127:
            notes.append(TimedNote(max(n.start, t0) - t0, n.end - t0, pitch, n.velocity))

    def carried(events: list, key_len: int) -> list:
        before: dict = {}
        out = []
        for ev in events:
            if ev[0] < t0:
                before[ev[1] if key_len == 3 else 0] = ev
            elif ev[0] < t1:
                out.append((ev[0] - t0, *ev[1:]))
        return [(0.0, *ev[1:]) for ev in before.values()] + out

    return replace(part, notes=notes, controls=carried(part.controls, 3), bends=carried(part.bends, 2))


def _humanise(rng: np.random.Generator, part: Part, bars: list[float], source_velocities: bool) -> Part:
    jitter = 0.004 if part.is_drum else 0.008
    phrase_levels = rng.choice([0.8, 0.9, 1.0, 1.1], size=max(1, len(bars) // 2 + 1))
    notes = []
    for n in part.notes:
        k = max(0, int(np.searchsorted(bars, n.start + 1e-6)) - 1)
        on_bar = bool(bars) and abs(n.start - bars[k]) < 0.02
        vel = float(n.velocity)
        if source_velocities:
            vel += rng.normal(0.0, 4.0)
        else:
            vel = vel * phrase_levels[min(k // 2, len(phrase_levels) - 1)] + (6.0 if on_bar else 0.0)
            vel += rng.normal(0.0, 5.0)
        start = max(0.0, n.start + float(rng.normal(0.0, jitter)))
        end = max(start + 0.02, n.end + float(rng.normal(0.0, jitter / 2)))
        notes.append(TimedNote(start, end, n.pitch, int(np.clip(round(vel), 1, 127))))
    return replace(part, notes=notes)


def make_window(prep: PreparedPiece, w: int, start: float, seconds: float, seed: int) -> Window:
    """Window ``w`` (at ``start``) of a prepared piece: cut, transposed, humanised."""
    rng = piece_rng(seed, prep.piece.id, 1, w)
    piece = prep.piece
    t1 = start + seconds
    pitched = [n.pitch for p in piece.parts if not p.is_drum for n in p.notes if start <= n.start < t1]
    shift = int(rng.integers(-TRANSPOSE, TRANSPOSE + 1))
    if pitched and (min(pitched) + shift < 21 or max(pitched) + shift > 108):
        shift = 0
    bars = [b.second - start for b in piece.bars if start - 1e-6 <= b.second < t1]
    midi = piece.source != "music21"
    parts, roles = [], []
    for part, role in zip(piece.parts, prep.roles, strict=True):
        cut = _cut(part, start, t1, shift)
        if cut.notes:
            parts.append(_humanise(rng, cut, bars, source_velocities=midi and not part.derived))
            roles.append(role)
    pitched_only = replace(piece, parts=[p for p in piece.parts if not p.is_drum])
    hist = pitch_class_histogram([n for p in pitched_only.parts for n in p.notes], start, t1)
    home = estimate_key(hist) if hist.sum() > 0 else prep.key
    if piece.harmonised:
        before = [sym for t, sym in piece.chords if t < start - 1e-6]
        raw = before[-1:] + [sym for t, sym in piece.chords if start - 1e-6 <= t < t1]
    else:
        raw = label_chords(pitched_only, home, start, t1)
    progression: list[str] = []
    for sym in raw:
        moved = _transpose_symbol_text(sym, shift)
        if not progression or progression[-1] != moved:
            progression.append(moved)
    key = Key((home.tonic + shift) % 12, home.mode)
    tempo = piece.tempo_between(start, t1)
    return Window(w, start, seconds, parts, roles, bars, piece.meter_at(start + 1e-6), tempo, key,
                  progression or [key.degree_chord(1).symbol], shift)


def _transpose_symbol_text(symbol: str, shift: int) -> str:
    """``symbol`` moved by ``shift`` semitones (respelled with the corpus's note names)."""
    c = parse_symbol(symbol)
    return symbol if c is None else Chord((c.root + shift) % 12, c.quality).symbol
