"""Music theory for the procedural songs: keys, modes, diatonic chords, progression idioms.

Pitches are MIDI note numbers (60 = middle C); pitch classes are 0..11 (0 = C). Chords are built by
stacking thirds on a degree of the key's mode, so a progression written in scale degrees is always
diatonic (blues dominant sevenths are the one written exception).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

NOTE_NAMES = ("C", "Db", "D", "Eb", "E", "F", "Gb", "G", "Ab", "A", "Bb", "B")

#: Interval sets (semitones above the tonic) of the modes used.
MODES: dict[str, tuple[int, ...]] = {
    "major": (0, 2, 4, 5, 7, 9, 11),
    "minor": (0, 2, 3, 5, 7, 8, 10),
    "dorian": (0, 2, 3, 5, 7, 9, 10),
    "mixolydian": (0, 2, 4, 5, 7, 9, 10),
    "lydian": (0, 2, 4, 6, 7, 9, 11),
    "phrygian": (0, 1, 3, 5, 7, 8, 10),
    "harmonic minor": (0, 2, 3, 5, 7, 8, 11),
}

#: Chord qualities: intervals above the root and the symbol suffix.
QUALITIES: dict[str, tuple[tuple[int, ...], str]] = {
    "maj": ((0, 4, 7), ""),
    "min": ((0, 3, 7), "m"),
    "dim": ((0, 3, 6), "dim"),
    "aug": ((0, 4, 8), "aug"),
    "maj7": ((0, 4, 7, 11), "maj7"),
    "min7": ((0, 3, 7, 10), "m7"),
    "dom7": ((0, 4, 7, 10), "7"),
    "m7b5": ((0, 3, 6, 10), "m7b5"),
    "dim7": ((0, 3, 6, 9), "dim7"),
    "minmaj7": ((0, 3, 7, 11), "m(maj7)"),
    "augmaj7": ((0, 4, 8, 11), "maj7#5"),
    "sus2": ((0, 2, 7), "sus2"),
    "sus4": ((0, 5, 7), "sus4"),
}
_TRIAD_BY_INTERVALS = {(4, 7): "maj", (3, 7): "min", (3, 6): "dim", (4, 8): "aug"}
_SEVENTH_BY_INTERVALS = {
    (4, 7, 11): "maj7", (3, 7, 10): "min7", (4, 7, 10): "dom7", (3, 6, 10): "m7b5", (3, 6, 9): "dim7",
    (3, 7, 11): "minmaj7", (4, 8, 11): "augmaj7",
}


@dataclass(frozen=True)
class Chord:
    """A chord: ``root`` pitch class (0..11) and a quality name from :data:`QUALITIES`."""

    root: int
    quality: str

    @property
    def intervals(self) -> tuple[int, ...]:
        return QUALITIES[self.quality][0]

    @property
    def pitch_classes(self) -> tuple[int, ...]:
        """Chord tones as pitch classes, root first."""
        return tuple((self.root + i) % 12 for i in self.intervals)

    @property
    def symbol(self) -> str:
        """Lead-sheet symbol, e.g. ``Am7``, ``Bb``, ``F#m7b5`` (flats are used for black keys)."""
        return NOTE_NAMES[self.root] + QUALITIES[self.quality][1]

    @property
    def fifth(self) -> int:
        """Pitch class of the chord's fifth (perfect, diminished or augmented; 2nd/4th of sus chords)."""
        return (self.root + self.intervals[2]) % 12


@dataclass(frozen=True)
class Key:
    """A key: ``tonic`` pitch class and a ``mode`` name from :data:`MODES`."""

    tonic: int
    mode: str

    @property
    def name(self) -> str:
        return NOTE_NAMES[self.tonic]

    @property
    def scale(self) -> tuple[int, ...]:
        """The 7 pitch classes of the scale, from the tonic."""
        return tuple((self.tonic + i) % 12 for i in MODES[self.mode])

    def degree_chord(self, degree: int, seventh: bool = False) -> Chord:
        """The diatonic triad (or seventh chord) on 1-based scale ``degree`` (1..7)."""
        scale = self.scale
        idx = (degree - 1) % 7
        root = scale[idx]
        tones = [(scale[(idx + k) % 7] - root) % 12 for k in (2, 4, 6)]
        if seventh:
            quality = _SEVENTH_BY_INTERVALS.get(tuple(tones), None)
        else:
            quality = _TRIAD_BY_INTERVALS.get(tuple(tones[:2]), None)
        if quality is None:
            raise ValueError(f"no chord spelling for degree {degree} of {self.name} {self.mode}")
        return Chord(root, quality)

    def in_scale(self, pitch: int) -> bool:
        return pitch % 12 in self.scale


def scale_pitches(pitch_classes: tuple[int, ...] | list[int], lo: int, hi: int) -> list[int]:
    """Every MIDI pitch in ``[lo, hi]`` whose pitch class is in ``pitch_classes``, ascending."""
    pcs = set(int(p) % 12 for p in pitch_classes)
    return [p for p in range(int(lo), int(hi) + 1) if p % 12 in pcs]


def nearest_pitch(pitch_class: int, target: float, lo: int = 0, hi: int = 127) -> int:
    """The MIDI pitch of class ``pitch_class`` nearest ``target`` within ``[lo, hi]``."""
    cands = [p for p in range(int(lo), int(hi) + 1) if p % 12 == pitch_class % 12]
    if not cands:
        raise ValueError(f"no pitch of class {pitch_class} in [{lo}, {hi}]")
    return min(cands, key=lambda p: (abs(p - target), p))


# --------------------------------------------------------------------------- progression idioms
@dataclass(frozen=True)
class Idiom:
    """A progression idiom: scale degrees (1..7, one per harmonic slot), whether chords carry 7ths,
    the modes it suits, and optional fixed qualities (blues)."""

    name: str
    degrees: tuple[int, ...]
    sevenths: bool
    modes: tuple[str, ...]
    qualities: tuple[str, ...] | None = None


IDIOMS: dict[str, Idiom] = {
    "pop_I_V_vi_IV": Idiom("pop_I_V_vi_IV", (1, 5, 6, 4), False, ("major",)),
    "pop_I_vi_IV_V": Idiom("pop_I_vi_IV_V", (1, 6, 4, 5), False, ("major",)),
    "pop_vi_IV_I_V": Idiom("pop_vi_IV_I_V", (6, 4, 1, 5), False, ("major",)),
    "pop_I_IV_vi_V": Idiom("pop_I_IV_vi_V", (1, 4, 6, 5), False, ("major",)),
    "rock_I_IV_V_IV": Idiom("rock_I_IV_V_IV", (1, 4, 5, 4), False, ("major", "mixolydian")),
    "canon": Idiom("canon", (1, 5, 6, 3, 4, 1, 4, 5), False, ("major",)),
    "jazz_ii_V_I": Idiom("jazz_ii_V_I", (2, 5, 1, 1), True, ("major",)),
    "jazz_turnaround": Idiom("jazz_turnaround", (1, 6, 2, 5), True, ("major",)),
    "jazz_iii_vi_ii_V": Idiom("jazz_iii_vi_ii_V", (3, 6, 2, 5), True, ("major",)),
    "minor_ii_V_i": Idiom("minor_ii_V_i", (2, 5, 1, 1), True, ("harmonic minor",)),
    "minor_i_VI_III_VII": Idiom("minor_i_VI_III_VII", (1, 6, 3, 7), False, ("minor",)),
    "minor_i_iv_VII_III": Idiom("minor_i_iv_VII_III", (1, 4, 7, 3), False, ("minor",)),
    "minor_i_VII_VI_VII": Idiom("minor_i_VII_VI_VII", (1, 7, 6, 7), False, ("minor",)),
    "minor_i_iv_v_i": Idiom("minor_i_iv_v_i", (1, 4, 5, 1), False, ("minor",)),
    "minor7_i_iv": Idiom("minor7_i_iv", (1, 4, 1, 4), True, ("minor",)),
    "blues_12bar": Idiom(
        "blues_12bar", (1, 4, 1, 1, 4, 4, 1, 1, 5, 4, 1, 5), True, ("mixolydian",), ("dom7",) * 12
    ),
    "dorian_vamp": Idiom("dorian_vamp", (1, 4), True, ("dorian",)),
    "dorian_i_ii": Idiom("dorian_i_ii", (1, 2, 1, 2), True, ("dorian",)),
    "mixolydian_I_bVII_IV": Idiom("mixolydian_I_bVII_IV", (1, 7, 4, 1), False, ("mixolydian",)),
    "lydian_I_II": Idiom("lydian_I_II", (1, 2), False, ("lydian",)),
    "phrygian_i_bII": Idiom("phrygian_i_bII", (1, 2, 1, 7), False, ("phrygian",)),
    "ambient_I_IV": Idiom("ambient_I_IV", (1, 4, 6, 4), True, ("major", "lydian")),
}


def idiom_chords(idiom: Idiom, key: Key) -> list[Chord]:
    """The chords of ``idiom`` in ``key`` (one per harmonic slot)."""
    if idiom.qualities is not None:
        return [Chord(key.scale[(d - 1) % 7], q) for d, q in zip(idiom.degrees, idiom.qualities)]
    return [key.degree_chord(d, seventh=idiom.sevenths) for d in idiom.degrees]


def chord_tones(chord: Chord, size: int) -> list[int]:
    """``size`` pitch classes to voice ``chord`` with: all tones, the root doubled for big voicings,
    the fifth dropped first (shell voicing) when a seventh chord gets three voices."""
    pcs = list(chord.pitch_classes)
    if size >= len(pcs):
        return pcs + [pcs[0]] * (size - len(pcs))
    if len(pcs) == 4 and size == 3:
        return [pcs[0], pcs[1], pcs[3]]
    return pcs[:size]


def voice_chord(chord: Chord, previous: list[int] | None, lo: int, hi: int, size: int,
                rng: np.random.Generator | None = None) -> list[int]:
    """A close-position voicing of ``chord`` with ``size`` notes in ``[lo, hi]``, ascending.

    Every inversion (and octave placement) is a candidate; the one closest to ``previous`` (sum of
    absolute movements of sorted voices) wins, which gives voice-leading-ish motion. Without
    ``previous`` the voicing nearest the middle of the range wins (ties broken by ``rng``).
    """
    tones = chord_tones(chord, size)
    cands: list[list[int]] = []
    for rot in range(len(tones)):
        order = tones[rot:] + tones[:rot]
        for base in range(lo, hi + 1):
            if base % 12 != order[0]:
                continue
            voicing = [base]
            for pc in order[1:]:
                nxt = voicing[-1] + 1
                while nxt % 12 != pc:
                    nxt += 1
                voicing.append(nxt)
            if voicing[-1] <= hi:
                cands.append(voicing)
    if not cands:
        raise ValueError(f"cannot voice {chord.symbol} with {size} notes in [{lo}, {hi}]")
    if previous:
        prev = sorted(previous)

        def cost(v: list[int]) -> float:
            n = min(len(v), len(prev))
            return float(sum(abs(a - b) for a, b in zip(v[:n], prev[:n])))
    else:
        mid = (lo + hi) / 2

        def cost(v: list[int]) -> float:
            return abs(float(np.mean(v)) - mid)
    best = min(cost(v) for v in cands)
    ties = [v for v in cands if cost(v) == best]
    return ties[int(rng.integers(len(ties)))] if (rng is not None and len(ties) > 1) else ties[0]
