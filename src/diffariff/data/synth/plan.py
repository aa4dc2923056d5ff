"""The song plan: style, key, tempo, meter, sections with their progressions, and the parts.

Everything is drawn from one ``numpy.random.Generator``, so a plan is a pure function of the seed.
Time is counted in quarter-note beats from the start of the song; ``bar_beats`` is the bar length in
quarter notes (4/4 -> 4, 3/4 -> 3, 6/8 -> 3).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from . import gm
from .drums import groove_for
from .styles import ROLE_PROGRAMS, ROLES, STYLES, Style
from .theory import IDIOMS, MODES, Chord, Key, idiom_chords

#: Stem name per chord-playing family (the stem is named after what it sounds like).
_CHORD_STEM_NAMES = {
    "piano": "piano", "chromatic percussion": "mallets", "organ": "organ", "guitar": "guitar",
    "strings": "strings", "ensemble": "strings", "brass": "brass", "synth lead": "synth",
    "synth pad": "synth", "reed": "reeds", "bass": "bass", "pipe": "winds", "ethnic": "plucks",
    "percussive": "percussion", "synth effects": "synth", "sound effects": "fx",
}
_ROLE_STEM_NAMES = {"drums": "drums", "bass": "bass", "pad": "pad", "arpeggio": "arp", "lead": "lead",
                    "counter-melody": "counter"}


@dataclass(frozen=True)
class Section:
    """A section: ``name`` (intro/verse/chorus/bridge/outro), first bar, length in bars, its chords."""

    name: str
    start_bar: int
    bars: int
    chords: tuple[Chord, ...]
    slot_bars: float  # bars per chord

    def chord_at(self, bar_offset: float) -> Chord:
        """The chord sounding ``bar_offset`` bars after the section start."""
        return self.chords[int(math.floor(bar_offset / self.slot_bars + 1e-9)) % len(self.chords)]


@dataclass
class PartSpec:
    """One part: ``role``, GM ``program`` (drum kit program for drums), its style and stem name, the
    bars it plays in, and its mixing choices (pan -1..1, reverb send 0..127, level offset in dB)."""

    role: str
    program: int
    style: str
    stem: str
    active_bars: list[bool]
    pan: float = 0.0
    reverb: int = 40
    level_db: float = 0.0
    density: float = 0.5  # 0 = sparse, 1 = busy (melodic parts pick rhythm cells with it)
    params: dict = field(default_factory=dict)

    @property
    def is_drum(self) -> bool:
        return self.role == "drums"


@dataclass
class SongPlan:
    """Everything needed to write the parts of one song."""

    style: Style
    key: Key
    tempo: float  # quarter notes per minute
    meter: tuple[int, int]
    bar_beats: float
    num_bars: int  # bars written (covers the song plus a little extra)
    song_bars: int  # bars that fall (at least partly) inside the requested duration
    sections: list[Section]
    parts: list[PartSpec]
    soundfont: str = ""

    @property
    def beat_seconds(self) -> float:
        return 60.0 / self.tempo

    @property
    def bar_seconds(self) -> float:
        return self.bar_beats * self.beat_seconds

    def section_at(self, bar: int) -> Section:
        for s in self.sections:
            if s.start_bar <= bar < s.start_bar + s.bars:
                return s
        return self.sections[-1]

    def chord_at(self, beat: float) -> Chord:
        """The chord sounding at ``beat`` (quarter notes from the song start)."""
        bar = beat / self.bar_beats
        sec = self.section_at(int(math.floor(bar + 1e-9)))
        return sec.chord_at(bar - sec.start_bar)

    def chord_segments(self, bar: int) -> list[tuple[float, float, Chord]]:
        """``(start_beat, length_beats, chord)`` of every chord span inside ``bar``."""
        sec = self.section_at(bar)
        step = min(sec.slot_bars, 1.0) * self.bar_beats
        start = bar * self.bar_beats
        out: list[tuple[float, float, Chord]] = []
        t = start
        while t < start + self.bar_beats - 1e-9:
            ch = self.chord_at(t + 1e-6)
            if out and out[-1][2] == ch:
                s0, d0, _ = out[-1]
                out[-1] = (s0, d0 + step, ch)
            else:
                out.append((t, step, ch))
            t += step
        return out

    def is_section_end(self, bar: int) -> bool:
        """True on the last bar of a section that another section follows."""
        for s in self.sections[:-1]:
            if bar == s.start_bar + s.bars - 1:
                return True
        return False


def _weighted_choice(rng: np.random.Generator, items: list, weights: list[float]):
    w = np.asarray(weights, dtype=np.float64)
    return items[int(rng.choice(len(items), p=w / w.sum()))]


def _form(rng: np.random.Generator, total_bars: int, loop_bars: int) -> list[tuple[str, int]]:
    """Section names and lengths (bars) filling ``total_bars``; lengths follow the chord loop."""
    if total_bars <= max(6, loop_bars):
        return [(str(rng.choice(["verse", "chorus"])), total_bars)]
    out: list[tuple[str, int]] = []
    intro = int(min(loop_bars, 4 if total_bars >= 16 else 2))
    outro = intro if total_bars >= 3 * loop_bars + 2 * intro else 0
    out.append(("intro", intro))
    middle = total_bars - intro - outro
    cycle = ["verse", "chorus", "verse", "chorus", "bridge", "chorus", "chorus"]
    i = 0
    while middle > 0:
        name = cycle[i % len(cycle)]
        length = loop_bars * int(rng.choice([1, 2])) if name != "bridge" else loop_bars
        length = int(max(2, min(length, middle)))
        if middle - length < 2:  # never leave a 1-bar scrap
            length = middle
        out.append((name, length))
        middle -= length
        i += 1
    if outro:
        out.append(("outro", outro))
    return out


def _pick_program(rng: np.random.Generator, role: str, style: Style, used: set[int]) -> int:
    base = dict(ROLE_PROGRAMS[role])
    for p in style.boost.get(role, ()):
        base[p] = base.get(p, 1.0) * 4.0
    progs = [p for p in base if p not in used] or list(base)
    return int(_weighted_choice(rng, progs, [base[p] for p in progs]))


def _choose_roles(rng: np.random.Generator, style: Style) -> list[str]:
    while True:
        roles = [r for r in ROLES if rng.random() < style.role_prob.get(r, 0.0)]
        if rng.random() < 0.2 and "chords" in roles:  # sometimes two comping instruments
            roles.insert(roles.index("chords") + 1, "chords")
        if len(roles) > 7:
            roles = roles[:7]
        if len(roles) >= 3 or (len(roles) == 2 and rng.random() < 0.3):
            return roles


def _arrangement(rng: np.random.Generator, role: str, sections: list[Section], num_bars: int) -> list[bool]:
    """Which bars a part of ``role`` plays: parts enter and leave with the sections."""
    active = [True] * num_bars
    if len(sections) == 1:
        return active
    for s in sections:
        on = True
        if s.name in ("intro", "outro"):
            on = role in ("chords", "pad", "arpeggio") or (role in ("drums", "bass") and rng.random() < 0.5)
        elif s.name == "verse":
            on = role != "counter-melody" or rng.random() < 0.4
        elif s.name == "bridge":
            on = role not in ("lead",) or rng.random() < 0.3
        for b in range(s.start_bar, min(s.start_bar + s.bars, num_bars)):
            active[b] = on
    if sum(active) < max(2, num_bars // 3):  # every part plays a good share of the song
        return [True] * num_bars
    return active


def plan_song(rng: np.random.Generator, seconds: float, style: str | None = None) -> SongPlan:
    """Draw a complete song plan lasting at least ``seconds`` (plus about one bar of tail)."""
    st = STYLES[style] if style is not None else STYLES[str(rng.choice(sorted(STYLES)))]
    meters = [m for m, _ in st.meters]
    meter = tuple(_weighted_choice(rng, meters, [w for _, w in st.meters]))
    bar_beats = meter[0] * 4.0 / meter[1]
    tempo = float(round(rng.uniform(*st.tempo)))
    idiom = IDIOMS[str(rng.choice(list(st.idioms)))]
    mode = str(rng.choice(list(idiom.modes)))
    if mode not in MODES:
        raise ValueError(f"idiom {idiom.name} names unknown mode {mode}")
    key = Key(int(rng.integers(12)), mode)
    slot_options = [1.0]
    if len(idiom.degrees) <= 2 or tempo > 150:
        slot_options.append(2.0)
    if tempo < 100 and meter == (4, 4) and len(idiom.degrees) >= 4:
        slot_options.append(0.5)
    slot_bars = float(rng.choice(slot_options))
    loop_bars = max(1, int(round(len(idiom.degrees) * slot_bars)))
    bar_sec = bar_beats * 60.0 / tempo
    song_bars = int(math.ceil(seconds / bar_sec - 1e-9))
    num_bars = song_bars + 1
    others = [IDIOMS[n] for n in st.idioms if mode in IDIOMS[n].modes and n != idiom.name]
    chorus_idiom = others[int(rng.integers(len(others)))] if others and rng.random() < 0.6 else idiom
    bridge_idiom = others[int(rng.integers(len(others)))] if others else idiom
    sections: list[Section] = []
    bar = 0
    for name, length in _form(rng, num_bars, loop_bars):
        idi = {"chorus": chorus_idiom, "bridge": bridge_idiom}.get(name, idiom)
        sb = slot_bars if len(idi.degrees) * slot_bars >= 1 else 1.0
        sections.append(Section(name, bar, length, tuple(idiom_chords(idi, key)), sb))
        bar += length
    roles = _choose_roles(rng, st)
    parts: list[PartSpec] = []
    used: set[int] = set()
    names: set[str] = set()
    for role in roles:
        if role == "drums":
            program = int(rng.choice(list(st.kits)))
            pstyle = groove_for(str(rng.choice(list(st.grooves))), bar_beats).name
        else:
            program = _pick_program(rng, role, st, used)
            used.add(program)
            pstyle = {
                "bass": lambda: str(rng.choice(list(st.bass_styles))),
                "chords": lambda: str(rng.choice(list(st.comps))),
                "pad": lambda: "sustained",
                "arpeggio": lambda: str(rng.choice(["up", "down", "updown", "random"])),
                "lead": lambda: "melody",
                "counter-melody": lambda: "counterpoint",
            }[role]()
            if role == "chords" and pstyle == "power" and program not in (29, 30, 27, 18):
                pstyle = "pulse8"
        stem = _CHORD_STEM_NAMES[gm.program(program).family] if role == "chords" else _ROLE_STEM_NAMES[role]
        base, n = stem, 2
        while stem in names:
            stem, n = f"{base}_{n}", n + 1
        names.add(stem)
        pan = 0.0 if role in ("drums", "bass") else float(np.clip(rng.normal(0, 0.35), -0.8, 0.8))
        reverb = {"drums": 30, "bass": 10, "pad": 90, "lead": 60}.get(role, 50) + int(rng.integers(-10, 11))
        parts.append(PartSpec(role, program, pstyle, stem, _arrangement(rng, role, sections, num_bars),
                              pan=pan, reverb=int(np.clip(reverb, 0, 127)),
                              level_db=float(rng.normal(0.0, 1.5)), density=float(rng.uniform(0.0, 1.0))))
    return SongPlan(st, key, tempo, meter, bar_beats, num_bars, song_bars, sections, parts)
