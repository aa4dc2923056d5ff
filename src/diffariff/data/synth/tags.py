"""Text tags of a stem, derived from what was actually written: instrument, role, part style,
register, note density, articulation and the song's tempo feel. They become CLAP training prompts,
so each one must be true of the audio.
"""

from __future__ import annotations

import numpy as np

from . import gm
from .drums import GROOVES
from .notes import Note
from .plan import PartSpec, SongPlan

_ROLE_TAGS = {
    "drums": ("drums", "percussion", "beat"),
    "bass": ("bass line", "bass"),
    "chords": ("chords", "comping", "accompaniment"),
    "pad": ("pad", "sustained chords", "background"),
    "arpeggio": ("arpeggio", "broken chords"),
    "lead": ("lead", "melody", "solo line"),
    "counter-melody": ("counter-melody", "secondary melody"),
}
_STYLE_TAGS = {
    "root": ("root notes",), "root8": ("driving eighth notes", "root notes"),
    "root_fifth": ("root and fifth", "two-feel"), "walking": ("walking bass", "quarter notes"),
    "syncopated": ("syncopated", "funky bass"), "octave": ("octave bass", "disco bass"),
    "arpeggiated": ("arpeggiated bass",),
    "sustained": ("sustained", "long notes"), "halves": ("half notes",), "pulse4": ("quarter-note pulse",),
    "pulse8": ("eighth-note pulse", "driving"), "offbeat": ("offbeat chords", "staccato"),
    "charleston": ("jazz comping", "charleston rhythm"), "stabs16": ("funky stabs", "syncopated", "staccato"),
    "bossa": ("bossa nova comping", "syncopated"), "strum": ("strummed",), "shuffle": ("shuffle comping",
                                                                                        "triplet feel"),
    "power": ("power chords", "palm-muted eighths"), "waltz": ("oom-pah-pah", "waltz comping"),
    "compound": ("compound time", "dotted quarters"), "pop_sync": ("syncopated", "pop comping"),
    "up": ("ascending arpeggio",), "down": ("descending arpeggio",), "updown": ("up and down arpeggio",),
    "random": ("random arpeggio",), "melody": ("melodic",), "counterpoint": ("counterpoint",),
}


def register_of(notes: list[Note], is_drum: bool) -> str:
    """``low`` / ``mid`` / ``high`` from the median pitch (drums: ``full``)."""
    if is_drum or not notes:
        return "full"
    med = float(np.median([n.pitch for n in notes]))
    return "low" if med < 52 else ("high" if med >= 72 else "mid")


def max_polyphony(notes: list[Note]) -> int:
    """Largest number of notes sounding at the same time."""
    events = sorted([(n.start, 1) for n in notes] + [(n.start + n.dur, -1) for n in notes])
    best = cur = 0
    for _, d in events:
        cur += d
        best = max(best, cur)
    return best


def stem_tags(plan: SongPlan, part: PartSpec, notes: list[Note], seconds: float) -> list[str]:
    """Tags of one stem (unique, order: instrument, role, style, feel)."""
    tags: list[str] = []
    if part.is_drum:
        tags += list(gm.DRUM_KITS.get(part.program, gm.DRUM_KITS[0])[1])
        tags += list(GROOVES[part.style].tags)
    else:
        prog = gm.program(part.program)
        tags += list(prog.tags)
        tags.append(prog.family)
    tags += list(_ROLE_TAGS[part.role])
    tags += list(_STYLE_TAGS.get(part.style, ()))
    reg = register_of(notes, part.is_drum)
    if reg != "full":
        tags.append(f"{reg} register")
    inside = [n for n in notes if n.start < seconds * plan.tempo / 60.0]
    onsets = len({round(n.start, 3) for n in inside})
    rate = onsets / max(seconds, 1e-6)
    tags.append("sparse" if rate < 1.5 else ("busy" if rate > 5.0 else "moderate density"))
    if inside and not part.is_drum:
        mean_dur = float(np.mean([n.dur for n in inside]))
        if mean_dur <= 0.3:
            tags.append("staccato")
        elif mean_dur >= 1.5:
            tags.append("sustained")
        elif part.role in ("lead", "counter-melody") and mean_dur >= 0.75:
            tags.append("legato")
        if part.role != "bass" and max_polyphony(inside) >= 3:
            tags.append("polyphonic")
    tags.append("slow" if plan.tempo < 80 else ("fast" if plan.tempo > 140 else "mid-tempo"))
    tags.append(plan.style.tags[0])  # the genre; the style's other tags describe the song, not each stem
    seen: set[str] = set()
    return [t for t in tags if not (t in seen or seen.add(t))]
