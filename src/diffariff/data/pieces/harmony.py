"""Key, chord labels and a simple harmonisation for pieces.

* :func:`estimate_key`: Krumhansl-Kessler key profiles against the duration-weighted pitch-class
  histogram (major or minor).
* :func:`label_chords`: one chord symbol per bar (the triad or seventh chord that best covers the
  notes sounding in it, bass note weighted up, diatonic chords preferred), for the metadata's
  progression of any piece.
* :func:`harmonise`: chords for a monophonic tune: the tune's own chord symbols when it has them,
  else per bar (half bar in 4/4, 2/2, 12/8) the diatonic chord that best fits the melody notes
  (strong beats and long notes count more), I/IV/V preferred, the last span on the tonic.
* :func:`accompaniment`: a derived bass part (root, root-fifth patterns per meter) and a derived
  chord part (close voicings with voice leading; block, on-beat or after-beat patterns) from those
  chords. The parts are marked ``derived``.
"""

from __future__ import annotations

import re

import numpy as np

from ..synth.theory import NOTE_NAMES, Chord, Key, nearest_pitch, voice_chord
from .model import Bar, Part, Piece, TimedNote

_MAJOR = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
_MINOR = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])
_LABEL_QUALITIES = ("maj", "min", "dom7", "min7", "dim")
#: Comping patterns of the derived chord part -> its metadata style.
COMP_STYLES = {"block": "block chords", "beats": "on the beat", "afterbeats": "offbeat chords"}
_LETTER = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}


def pitch_class_histogram(notes: list[TimedNote], t0: float = -np.inf, t1: float = np.inf) -> np.ndarray:
    """Seconds each pitch class sounds within [t0, t1) (each note counted at most 2 s)."""
    h = np.zeros(12)
    for n in notes:
        d = min(n.end, t1) - max(n.start, t0)
        if d > 0:
            h[n.pitch % 12] += min(d, 2.0)
    return h


def estimate_key(hist: np.ndarray) -> Key:
    """The major or minor key whose Krumhansl-Kessler profile correlates best with ``hist``."""
    if not np.any(hist > 0):
        return Key(0, "major")
    best, best_r = Key(0, "major"), -np.inf
    for tonic in range(12):
        for mode, prof in (("major", _MAJOR), ("minor", _MINOR)):
            r = float(np.corrcoef(hist, np.roll(prof, tonic))[0, 1])
            if r > best_r:
                best, best_r = Key(tonic, mode), r
    return best


def parse_symbol(symbol: str) -> Chord | None:
    """A :class:`Chord` from a lead-sheet symbol (``Am``, ``G7``, ``Bbmaj7``, ``F#dim``); None if unreadable."""
    m = re.match(r"^\s*([A-Ga-g])([#b\-]?)(.*)$", symbol or "")
    if not m:
        return None
    root = (_LETTER[m.group(1).upper()] + {"#": 1, "b": -1, "-": -1}.get(m.group(2), 0)) % 12
    rest = m.group(3).split("/")[0].strip().lower()
    if rest.startswith(("maj7", "ma7", "m7+", "^")):
        quality = "maj7"
    elif rest.startswith(("m7b5", "ø")):
        quality = "m7b5"
    elif rest.startswith(("dim", "o")):
        quality = "dim7" if "7" in rest else "dim"
    elif rest.startswith(("aug", "+")):
        quality = "aug"
    elif rest.startswith(("m7", "min7", "-7")):
        quality = "min7"
    elif rest.startswith(("m", "min", "-")) and not rest.startswith("maj"):
        quality = "min"
    elif rest.startswith(("7", "9", "13", "11")):
        quality = "dom7"
    elif rest.startswith("sus"):
        quality = "sus4"
    else:
        quality = "maj"
    return Chord(root, quality)


def _best_chord(weights: np.ndarray, bass: int | None, key: Key, candidates: list[Chord],
                prior: dict[Chord, float] | None = None) -> Chord:
    total = float(weights.sum()) or 1.0
    best, best_s = candidates[0], -np.inf
    for c in candidates:
        pcs = set(c.pitch_classes)
        inside = sum(weights[p] for p in pcs)
        score = (inside - 0.6 * (total - inside)) / total
        score -= 0.08 * (len(pcs) - 3)  # a seventh chord must earn its extra tone
        if bass is not None and bass == c.root:
            score += 0.15
        if all(key.in_scale(p) for p in pcs):
            score += 0.1
        if prior:
            score += prior.get(c, 0.0)
        if score > best_s:
            best, best_s = c, score
    return best


def label_chords(piece: Piece, key: Key, t0: float, t1: float) -> list[str]:
    """One chord symbol per bar in [t0, t1), consecutive repeats merged (at least one symbol)."""
    notes = [n for p in piece.parts if not p.is_drum for n in p.notes]
    cands = [Chord(r, q) for r in range(12) for q in _LABEL_QUALITIES]
    starts = [b.second for b in piece.bars] + [piece.end]
    out: list[str] = []
    for i in range(len(starts) - 1):
        a, b = max(starts[i], t0), min(starts[i + 1], t1)
        if b <= a:
            continue
        sounding = [n for n in notes if n.start < b and n.end > a]
        if not sounding:
            continue
        bass = min(sounding, key=lambda n: n.pitch).pitch % 12
        sym = _best_chord(pitch_class_histogram(sounding, a, b), bass, key, cands).symbol
        if not out or out[-1] != sym:
            out.append(sym)
    return out or [key.degree_chord(1).symbol]


def chord_spans(piece: Piece) -> list[tuple[float, float, tuple[int, int]]]:
    """(start, end, meter) of every harmonic span: a bar, or half a bar in 4/4, 2/2, 4/2 and 12/8."""
    starts = [b.second for b in piece.bars] + [piece.end]
    out = []
    for bar, a, b in zip(piece.bars, starts[:-1], starts[1:], strict=True):
        if b <= a:
            continue
        if bar.meter in ((4, 4), (2, 2), (4, 2), (12, 8)):
            mid = (a + b) / 2
            out += [(a, mid, bar.meter), (mid, b, bar.meter)]
        else:
            out.append((a, b, bar.meter))
    return out


def harmonise(piece: Piece, melody: list[TimedNote], key: Key) -> list[tuple[float, float, Chord]]:
    """Chords (start, end, chord) for a tune: its chord symbols when it has at least one per four
    bars, else the best diatonic chord per span (see the module docstring)."""
    spans = chord_spans(piece)
    given = [(t, parse_symbol(s)) for t, s in piece.chords]
    given = [(t, c) for t, c in given if c is not None]
    if given and len(given) * 4 >= len(piece.bars):
        out = []
        for i, (t, c) in enumerate(given):
            end = given[i + 1][0] if i + 1 < len(given) else piece.end
            if end > t:
                out.append((t, end, c))
        return out
    degrees = (1, 4, 5, 6, 2, 3) if key.mode == "major" else (1, 4, 5, 6, 3, 7)
    cands = [key.degree_chord(d) for d in degrees]
    if key.mode != "major":  # the harmonic-minor dominant
        cands[2] = Chord((key.tonic + 7) % 12, "maj")
    prior = {cands[0]: 0.12, cands[1]: 0.08, cands[2]: 0.1}
    out: list[tuple[float, float, Chord]] = []
    for i, (a, b, meter) in enumerate(spans):
        w = np.zeros(12)
        beat = (b - a) / max(1, meter[0] if meter[1] != 8 or meter[0] % 3 else meter[0] // 3)
        for n in melody:
            d = min(n.end, b) - max(n.start, a)
            if d <= 0:
                continue
            strong = 1.5 if abs(((n.start - a) / beat) - round((n.start - a) / beat)) < 0.05 else 1.0
            w[n.pitch % 12] += d * strong
        if i == len(spans) - 1 and w.sum() > 0:
            chord = cands[0]
        elif w.sum() == 0:
            chord = out[-1][2] if out else cands[0]
        else:
            p = dict(prior)
            if out:
                p[out[-1][2]] = p.get(out[-1][2], 0.0) + 0.05
            chord = _best_chord(w, None, key, cands, p)
        if out and out[-1][2] == chord and abs(out[-1][1] - a) < 1e-9:
            out[-1] = (out[-1][0], b, chord)
        else:
            out.append((a, b, chord))
    return out


def _beats(bar: Bar, a: float, b: float) -> list[float]:
    """Beat onsets (seconds) in [a, b) for the bar's meter (compound meters: dotted quarters)."""
    num, den = bar.meter
    n = num // 3 if (den == 8 and num % 3 == 0) else num
    span = b - a
    return [a + span * k / max(n, 1) for k in range(max(n, 1))]


def accompaniment(piece: Piece, chords: list[tuple[float, float, Chord]], rng: np.random.Generator,
                  melody_low: int) -> list[Part]:
    """A derived bass part and a derived chord part following ``chords``."""
    starts = [b.second for b in piece.bars] + [piece.end]
    bass_notes: list[TimedNote] = []
    chord_notes: list[TimedNote] = []
    comp = str(rng.choice(["block", "beats", "afterbeats"]))
    top = max(55, min(72, melody_low - 1))
    prev: list[int] | None = None
    for bi, bar in enumerate(piece.bars):
        a, b = starts[bi], starts[bi + 1]
        if b <= a:
            continue
        beats = _beats(bar, a, b)
        inside = [(s, e, c) for s, e, c in chords if s < b - 1e-6 and e > a + 1e-6]
        for s, e, c in inside:
            s, e = max(s, a), min(e, b)
            span_beats = [t for t in beats if s - 1e-6 <= t < e - 1e-6] or [s]
            root = nearest_pitch(c.root, 40, 28, 52)
            fifth = nearest_pitch(c.fifth, root + 5, root - 7, root + 9)
            if len(span_beats) >= 2:  # root on the first beat, the fifth from the middle beat
                split = span_beats[len(span_beats) // 2]
                bass_notes += [TimedNote(s, s + 0.92 * (split - s), root, 74),
                               TimedNote(split, split + 0.92 * (e - split), fifth, 70)]
            else:
                bass_notes.append(TimedNote(s, s + 0.92 * (e - s), root, 74))
            voicing = voice_chord(c, prev, top - 15, top, 3)
            prev = voicing
            if comp == "block":
                hits = [(s, e)]
            elif comp == "beats":
                hits = [(t, min(e, t + (b - a) / max(len(beats), 1))) for t in span_beats]
            else:
                hits = [(t, min(e, t + 0.5 * (b - a) / max(len(beats), 1))) for t in span_beats
                        if abs(t - a) > 1e-6] or [(s, e)]
            for h0, h1 in hits:
                chord_notes += [TimedNote(h0, h0 + 0.95 * (h1 - h0), p, 62) for p in voicing]
    return [Part("derived bass", sorted(bass_notes), derived=True, style="root and fifth"),
            Part("derived chords", sorted(chord_notes), derived=True, style=COMP_STYLES[comp])]


def key_name(key: Key) -> tuple[str, str]:
    """(tonic name, mode) as the metadata spells them."""
    return NOTE_NAMES[key.tonic], key.mode
