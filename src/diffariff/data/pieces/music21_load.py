"""Reading a work of music21's corpus (or any music21 score) into a :class:`.model.Piece`.

Each part (each staff of a piano part) becomes a :class:`.model.Part`. Repeats are expanded when
music21 can; ties are merged; dynamics marks set velocities; chord symbols (ABC ``"Am"``) are kept.
Tempo: the score's tempo marks (metronome marks, or tempo words music21 can read) when it has any;
otherwise a default for the genre and meter (:func:`default_tempo`), and ``tempo_marked`` is False.
Bach is refused before and after parsing (:func:`.inventory.check_not_reserved`).
"""

from __future__ import annotations

import math
import signal
import threading

from .inventory import MUSIC21_LICENCE, VOICE_PER_TUNE, PieceRef, check_not_reserved, composer_of
from .model import Bar, Part, Piece, TimedNote, bar_grid

#: Velocity of each dynamics mark (the mark's level, before humanising).
DYNAMIC_VELOCITY = {"pppp": 24, "ppp": 32, "pp": 42, "p": 54, "mp": 66, "mf": 78, "f": 92, "ff": 104,
                    "fff": 114, "ffff": 122, "sf": 100, "sfz": 104, "fz": 100, "sfp": 60, "fp": 60, "rfz": 96}
DEFAULT_VELOCITY = 78
#: Longest time music21 may spend expanding the repeats of one score (seconds).
EXPAND_SECONDS = 5.0


def default_tempo(genre: str, meter: tuple[int, int]) -> float:
    """Quarter notes per minute for a score without tempo marks: a moderate beat for its meter and genre
    (compound meters count dotted quarters, 2/2 and 4/2 count half notes)."""
    num, den = meter
    if den == 8 and num % 3 == 0:
        beat_bpm, beat_q = (104.0 if genre == "folk tune" else 72.0), 1.5
    elif den == 2:
        beat_bpm, beat_q = (90.0 if genre == "folk tune" else 64.0), 2.0
    elif den == 8:
        beat_bpm, beat_q = 200.0, 0.5
    else:
        beat_bpm, beat_q = {"folk tune": 112.0, "choral": 84.0}.get(genre, 96.0), 1.0
    return beat_bpm * beat_q


def _tempo_map(score, genre: str, meter: tuple[int, int]) -> tuple[list[tuple[float, float]], bool]:
    """[(start quarter, qpm)] and whether it came from the score."""
    from music21 import tempo

    marked = bool(list(score.recurse().getElementsByClass(tempo.TempoIndication)))
    if not marked:
        return [(0.0, default_tempo(genre, meter))], False
    out: list[tuple[float, float]] = []
    for start, _end, mark in score.metronomeMarkBoundaries():
        qpm = mark.getQuarterBPM() if mark is not None else None
        if qpm is None or not math.isfinite(qpm) or qpm <= 0:
            continue
        qpm = float(min(max(qpm, 30.0), 360.0))
        if out and abs(out[-1][0] - float(start)) < 1e-9:
            out[-1] = (float(start), qpm)
        else:
            out.append((float(start), qpm))
    if out and out[0][0] > 0:
        out.insert(0, (0.0, out[0][1]))
    return (out or [(0.0, default_tempo(genre, meter))]), bool(out)


def seconds_at(tempo_map: list[tuple[float, float]], beat: float) -> float:
    """Seconds at quarter-note ``beat`` under a piecewise-constant tempo map [(start beat, qpm)]."""
    t = 0.0
    for i, (start, qpm) in enumerate(tempo_map):
        stop = tempo_map[i + 1][0] if i + 1 < len(tempo_map) else math.inf
        if beat <= start:
            break
        t += (min(beat, stop) - start) * 60.0 / qpm
    return t


def _meters(part) -> list[tuple[float, tuple[int, int]]]:
    from music21 import meter

    out = []
    for ts in part.flatten().getElementsByClass(meter.TimeSignature):
        out.append((float(ts.offset), (int(ts.numerator), int(ts.denominator))))
    return out


def _bar_starts(score, end_beat: float) -> list[tuple[float, tuple[int, int]]]:
    """(beat, meter) of every bar: the measures of the first part when it has them, else a grid."""
    from music21 import stream

    first = score.parts[0]
    meters = _meters(first) or [(0.0, (4, 4))]
    measures = list(first.getElementsByClass(stream.Measure))
    if len(measures) < 2:
        return bar_grid(meters, end_beat)
    out, cur = [], meters[0][1]
    for m in measures:
        if m.timeSignature is not None:
            cur = (int(m.timeSignature.numerator), int(m.timeSignature.denominator))
        if out and float(m.offset) <= out[-1][0] + 1e-9:
            continue
        out.append((float(m.offset), cur))
    return out


def _tie_types(el) -> list[str | None]:
    """The tie type ('start', 'continue', 'stop' or None) of each pitch of a note or chord."""
    if hasattr(el, "notes") and len(getattr(el, "notes", ())) == len(el.pitches):
        ties = [n.tie for n in el.notes]
        ties = [t if t is not None else el.tie for t in ties]
    else:
        ties = [el.tie] * len(el.pitches)
    return [t.type if t is not None else None for t in ties]


def _part_notes(part) -> tuple[list[tuple[float, float, int, int]], list[tuple[float, str]]]:
    """(start beat, end beat, pitch, velocity) of every sounding note, tied notes merged, and (beat,
    symbol) chord symbols. (music21's ``stripTies`` does the merge too, but is quadratic: 150 s on one
    Beethoven quartet; this is one pass.)"""
    from music21 import dynamics, harmony, note

    notes: list[tuple[float, float, int, int]] = []
    chords: list[tuple[float, str]] = []
    held: dict[int, list] = {}  # pitch -> [start, end, velocity] of a tie in progress
    velocity = DEFAULT_VELOCITY
    for el in part.flatten().getElementsByClass(["Dynamic", "GeneralNote"]):
        if isinstance(el, dynamics.Dynamic):
            velocity = DYNAMIC_VELOCITY.get(str(el.value), velocity)
            continue
        if isinstance(el, harmony.Harmony):
            if isinstance(el, harmony.ChordSymbol) and el.figure:
                chords.append((float(el.offset), str(el.figure)))
            continue
        if isinstance(el, note.Rest) or not hasattr(el, "pitches"):
            continue
        dur = float(el.duration.quarterLength)
        if dur <= 0:  # grace notes
            continue
        start = float(el.offset)
        vel = velocity
        if el.volume is not None and el.volume.velocity is not None:
            vel = int(el.volume.velocity)
        vel = int(min(max(vel, 1), 127))
        for p, tie in zip(el.pitches, _tie_types(el), strict=True):
            midi = int(round(p.ps))
            if not 0 <= midi <= 127:
                continue
            open_tie = held.get(midi)
            if open_tie is not None and tie in ("continue", "stop") and abs(open_tie[1] - start) < 1e-3:
                open_tie[1] = start + dur
                if tie == "stop":
                    notes.append((open_tie[0], open_tie[1], midi, open_tie[2]))
                    del held[midi]
                continue
            if open_tie is not None:  # a tie that never stopped
                notes.append((open_tie[0], open_tie[1], midi, open_tie[2]))
                del held[midi]
            if tie == "start":
                held[midi] = [start, start + dur, vel]
            else:
                notes.append((start, start + dur, midi, vel))
    notes += [(s, e, m, v) for m, (s, e, v) in held.items()]
    return sorted(notes), chords


class _Timeout(Exception):
    pass


def _expand_repeats(score, limit: float = EXPAND_SECONDS):
    """``score.expandRepeats()``, or None when music21 fails or takes longer than ``limit`` seconds
    (it can spend minutes deep-copying some folk-tune files). The limit uses SIGALRM, so it only
    applies in a process's main thread (workers run tasks there)."""
    def expand():
        try:
            return score.expandRepeats()
        except _Timeout:
            raise
        except Exception:  # noqa: BLE001 - music21 raises many kinds on inconsistent repeat marks
            return None

    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "setitimer"):
        return expand()

    def on_alarm(signum, frame):
        raise _Timeout

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, limit)
    try:
        return expand()
    except _Timeout:
        return None
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def piece_from_score(score, ref: PieceRef) -> Piece:
    """A :class:`Piece` from a parsed music21 score (Bach refused by composer)."""
    meta = getattr(score, "metadata", None)
    check_not_reserved(ref.path, getattr(meta, "composer", None) if meta is not None else None)
    expanded = _expand_repeats(score)
    if expanded is not None and len(expanded.parts):
        score = expanded
    parts_raw, chords_raw = [], []
    for i, part in enumerate(score.parts):
        notes, chords = _part_notes(part)
        chords_raw += chords
        name = str(part.partName or "").strip() or f"part {i + 1}"
        if notes:
            parts_raw.append((name, notes))
    end_beat = max((n[1] for _, ns in parts_raw for n in ns), default=0.0)
    bars_beats = _bar_starts(score, end_beat)
    tempo_map, marked = _tempo_map(score, ref.genre, bars_beats[0][1])

    def at(beat: float) -> float:
        return seconds_at(tempo_map, beat)

    parts = [Part(name, sorted(TimedNote(at(s), at(e), p, v) for s, e, p, v in ns)) for name, ns in parts_raw]
    bars = [Bar(b, at(b), m) for b, m in bars_beats if b < end_beat - 1e-6]
    if not bars:
        bars = [Bar(0.0, 0.0, bars_beats[0][1])]
    last = bars[-1]
    end = at(max(end_beat, last.beat + last.meter[0] * 4.0 / last.meter[1]))
    chords = sorted((at(b), s) for b, s in chords_raw)
    return Piece(ref.id, ref.source, ref.collection, ref.composer, ref.title, ref.licence, ref.genre, parts,
                 bars, end, tempo_marked=marked, chords=chords)


def load_music21(ref: PieceRef) -> Piece:
    """Parse one work of music21's corpus (refusing Bach before reading it)."""
    from music21 import corpus, stream

    check_not_reserved(ref.path, ref.composer)
    score = corpus.parse(ref.path, number=ref.number)
    if isinstance(score, stream.Opus):
        if ref.collection in VOICE_PER_TUNE:  # one voice per tune: the voices together are the piece
            whole = stream.Score()
            for tune in score.scores:
                for part in tune.parts:
                    whole.insert(0, part)
            whole.metadata = score.scores[0].metadata
            score = whole
        else:
            score = score.scores[0]
    return piece_from_score(score, ref)


def load_score_file(ref: PieceRef) -> Piece:
    """Parse a score file (MusicXML, ABC, Humdrum...) with music21 (Bach refused by path and composer)."""
    from music21 import converter, stream

    check_not_reserved(ref.path, ref.composer)
    score = converter.parse(ref.path)
    if isinstance(score, stream.Opus):
        score = score.scores[0]
    if not isinstance(score, stream.Score):
        score = stream.Score([score]) if isinstance(score, stream.Part) else score
    return piece_from_score(score, ref)


def ref_for_score(score, title: str = "test score", genre: str = "keyboard and chamber",
                  collection: str = "local") -> PieceRef:
    """A :class:`PieceRef` for a score built in memory (tests, notebooks)."""
    meta = getattr(score, "metadata", None)
    raw = getattr(meta, "composer", None) if meta is not None else None
    return PieceRef("music21", f"{collection}/{title}", None, genre, collection,
                    raw or composer_of(collection, raw), title, MUSIC21_LICENCE)
