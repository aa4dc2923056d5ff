"""Which role each part of a piece plays, and which General MIDI program plays it.

Roles (the corpus's: drums, bass, chords, pad, arpeggio, lead, counter-melody) come from, in order:
the drum channel; a derived part's own role; the part's name (``Violoncello``, ``Bassus``,
``Melody 1``, ``Acc 2``, ``Pad``...); the source's GM program family (MIDI files); and the notes
themselves: polyphony (share of onsets that start two or more notes), register (median pitch) and
note length. Among the remaining single-line parts the lowest one is the bass when it lies low, the
highest one the lead, the others counter-melodies. With no lead yet (a piano's two staves, both
playing chords), the highest part carries the tune and is the lead.

Programs: one drawn per stem (seeded) from the corpus's per-role table
(:data:`..synth.styles.ROLE_PROGRAMS`), restricted to programs whose comfortable range holds at
least 90 % of the part's (transposed) notes; a MIDI file's own program is kept with probability
:data:`KEEP_SOURCE_PROGRAM` when it fits.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from ..synth import gm
from ..synth.styles import ROLE_PROGRAMS
from .model import Part

KEEP_SOURCE_PROGRAM = 0.4
#: Drum kits drawn for drum stems (GM/GS bank-128 programs).
DRUM_KIT_PROGRAMS = tuple(sorted(gm.DRUM_KITS))

#: Name patterns per role, tried in this order (lower-case part names).
NAME_RULES: tuple[tuple[str, str], ...] = (
    ("drums", r"drum|perc|kit\b|slagverk|rythm|rhythm kit"),
    ("pad", r"\bpad\b|choir|aahs|oohs|string ens|strings\b"),
    ("bass", r"contrabass|double bass|\bbass\b|bass guitar|basso|bassus|violone|\btuba\b|\bfoot\b"),
    ("lead", r"melody|\blead\b|solo|soprano|cantus|canto|superius|violin 1|violin i\b|1st violin|"
             r"violino i\b|flute|trumpet|\bsax|vocal|voice"),
    ("counter-melody", r"\balto\b|altus|tenor|quint|sextus|viola\b|violin 2|violin ii|2nd violin|"
                       r"violino ii|horn|clarinet|oboe|bassoon"),
    ("chords", r"piano|\bacc\b|\bacc\s*\d|accomp|guitar|keyboard|harp|chord|comp\b|organ"),
)
#: Names of parts that play the bass line when they are the lowest part (cello in a quartet).
BASS_LIKE = r"cello|violoncel|basso|bassus|\bbass"
#: Stem name per role (chord parts are named after their instrument family, as in the corpus).
ROLE_STEM = {"drums": "drums", "bass": "bass", "pad": "pad", "arpeggio": "arp", "lead": "lead",
             "counter-melody": "counter"}
CHORD_STEM = {
    "piano": "piano", "chromatic percussion": "mallets", "organ": "organ", "guitar": "guitar",
    "strings": "strings", "ensemble": "strings", "brass": "brass", "synth lead": "synth",
    "synth pad": "synth", "reed": "reeds", "bass": "bass", "pipe": "winds", "ethnic": "plucks",
    "percussive": "percussion", "synth effects": "synth", "sound effects": "fx",
}


@dataclass(frozen=True)
class PartStats:
    """What the notes of a part say: ``polyphony`` (share of onsets starting 2+ notes), ``median``
    pitch, ``mean_dur`` (s), ``rate`` (onsets per second while it plays)."""

    polyphony: float
    median: float
    mean_dur: float
    rate: float


def part_stats(part: Part) -> PartStats:
    if not part.notes:
        return PartStats(0.0, 60.0, 0.0, 0.0)
    onsets: dict[float, int] = {}
    for n in part.notes:
        key = round(n.start, 2)
        onsets[key] = onsets.get(key, 0) + 1
    poly = sum(1 for c in onsets.values() if c >= 2) / len(onsets)
    span = max(part.notes[-1].start - part.notes[0].start, 1e-3)
    return PartStats(poly, float(np.median([n.pitch for n in part.notes])),
                     float(np.mean([n.end - n.start for n in part.notes])), len(onsets) / span)


def _role_from_name(name: str) -> str | None:
    low = name.lower()
    for role, pattern in NAME_RULES:
        if re.search(pattern, low):
            return role
    return None


def _role_from_program(program: int | None) -> str | None:
    if program is None:
        return None
    family = gm.program(program).family
    return {"bass": "bass", "synth pad": "pad"}.get(family)


def assign_roles(parts: list[Part], derived_roles: dict[int, str] | None = None) -> list[str]:
    """One role per part (see the module docstring). ``derived_roles``: index -> role for derived parts."""
    derived_roles = derived_roles or {}
    stats = [part_stats(p) for p in parts]
    roles: list[str | None] = []
    for i, (p, st) in enumerate(zip(parts, stats, strict=True)):
        if p.is_drum:
            roles.append("drums")
        elif i in derived_roles:
            roles.append(derived_roles[i])
        else:
            by_name = _role_from_name(p.name)
            by_prog = _role_from_program(p.program)
            polyphonic = st.polyphony >= 0.35
            if polyphonic:
                pad_like = st.mean_dur >= 1.5 or by_name == "pad" or by_prog == "pad"
                roles.append("pad" if pad_like else "chords")
            elif by_name == "drums":
                roles.append(None)  # a pitched part named like percussion: decided by register below
            elif by_name == "pad" or by_prog == "pad":  # a single line is no pad: a long-note line at most
                roles.append("pad" if st.mean_dur >= 2.0 else None)
            else:
                roles.append(by_name if by_name in ("bass", "lead", "counter-melody") else by_prog)
    # single lines without a role yet: the lowest -> bass when it lies low (or is named / placed like
    # a bass), the highest -> lead when it lies high enough, the others counter-melodies
    free = [i for i, r in enumerate(roles) if r is None]
    pitched = [i for i, p in enumerate(parts) if not p.is_drum]
    if free:
        by_pitch = sorted(free, key=lambda i: stats[i].median)
        low = by_pitch[0]
        lowest_of_all = low == min(pitched, key=lambda i: stats[i].median)
        if "bass" not in roles and len(pitched) > 1 and lowest_of_all and (
                stats[low].median < 55 or re.search(BASS_LIKE, parts[low].name.lower())
                or (len(pitched) >= 3 and stats[low].median < 60)):
            roles[low] = "bass"
            by_pitch = by_pitch[1:]
        if by_pitch and "lead" not in roles:
            top = max(by_pitch, key=lambda i: (stats[i].median, stats[i].rate))
            if stats[top].median >= 57 or len(pitched) == 1:
                roles[top] = "lead"
                by_pitch = [i for i in by_pitch if i != top]
        for i in by_pitch:
            roles[i] = "counter-melody"
    # no single line carries the tune (a piano's two staves, say): the highest part does
    if "lead" not in roles and len(pitched) >= 2:
        top = max(pitched, key=lambda i: stats[i].median)
        if stats[top].median >= 60 and roles[top] in ("chords", "counter-melody", None):
            roles[top] = "lead"
    return [r or "counter-melody" for r in roles]


def fits(program: int, pitches: list[int], share: float = 0.9) -> bool:
    """True when at least ``share`` of ``pitches`` lie in the program's comfortable range."""
    if not pitches:
        return True
    lo, hi = gm.pitch_range(program)
    return sum(lo <= p <= hi for p in pitches) >= share * len(pitches)


def choose_program(rng: np.random.Generator, role: str, pitches: list[int], source_program: int | None,
                   is_drum: bool, used: set[int]) -> int:
    """A GM program for a stem (a drum-kit program for drums)."""
    if is_drum:
        if source_program is not None and source_program in gm.DRUM_KITS and rng.random() < KEEP_SOURCE_PROGRAM:
            return int(source_program)
        return int(rng.choice(DRUM_KIT_PROGRAMS))
    if source_program is not None and rng.random() < KEEP_SOURCE_PROGRAM and fits(source_program, pitches):
        return int(source_program)
    table = ROLE_PROGRAMS["counter-melody" if role == "arpeggio" and "arpeggio" not in ROLE_PROGRAMS else role]
    progs = [p for p, _ in table]
    weights = np.array([w * (0.3 if p in used else 1.0) for p, w in table], dtype=np.float64)
    ok = np.array([fits(p, pitches) for p in progs])
    if ok.any():
        weights = weights * ok
    else:  # nothing fits well: the program(s) covering the most notes
        cover = np.array([sum(gm.pitch_range(p)[0] <= x <= gm.pitch_range(p)[1] for x in pitches) for p in progs])
        weights = weights * (cover == cover.max())
    return int(rng.choice(progs, p=weights / weights.sum()))


def stem_names(roles: list[str], programs: list[int]) -> list[str]:
    """Unique lower-case stem names: chords after their instrument family, others after the role."""
    names: list[str] = []
    for role, prog in zip(roles, programs, strict=True):
        base = CHORD_STEM[gm.program(prog).family] if role == "chords" else ROLE_STEM[role]
        name, k = base, 2
        while name in names or name == "mixture":
            name, k = f"{base}_{k}", k + 1
        names.append(name)
    return names
