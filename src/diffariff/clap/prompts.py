"""Text prompts for CLAP training and zero-shot evaluation, built from corpus metadata.

A stem's metadata (``metadata.json`` of a corpus song, ``stems[name]``) looks like::

    {"role": "bass", "instrument": "Electric Bass (finger)", "program": 33, "family": "bass",
     "is_drum": false, "style": "walking", "register": "low",
     "tags": ["electric bass", "fingered", "warm", "walking bass"]}

:func:`stem_prompt` and :func:`mixture_prompt` draw one prompt from several templates, from a single
word ("bass") to a long description ("warm fingered electric bass, walking bass, low register"), with
random tag dropout, so that both short and long user prompts land near the right audio. Both are
deterministic given the random generator (``random.Random`` or ``numpy.random.Generator``).

:func:`stem_label` / :func:`mixture_label` name what a prompt is *about* (the instrument, or the set
of instruments of a mix): pairs in a batch with equal labels are treated as true matches by the
contrastive loss, so two bass stems with the prompt "bass" are not pushed apart.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

#: Roles a corpus stem can have, and the words a user might say for them.
ROLE_WORDS = {
    "drums": ("drums", "drum kit", "percussion", "beat"),
    "bass": ("bass", "bassline", "bass line"),
    "chords": ("chords", "chord comping", "harmony"),
    "pad": ("pad", "sustained pad", "background pad"),
    "arpeggio": ("arpeggio", "arpeggiated pattern", "arpeggios"),
    "lead": ("lead", "lead melody", "melody"),
    "counter-melody": ("counter-melody", "countermelody", "second melody"),
}

_STEM_SENTENCES = (
    "a recording of {inst}",
    "{inst}",
    "solo {inst}",
    "{adj}{inst} playing a {role}",
    "a {style}{role} played on {inst}",
    "{adj}{inst}, {tags}",
    "{tags}",
    "{register}{inst} {role}",
    "isolated {inst} stem",
)

_MIX_SENTENCES = (
    "{insts}",
    "a mix of {insts}",
    "a {style}song with {insts}",
    "full band: {insts}",
    "an ensemble of {insts}",
    "{style}music with {insts}",
    "a {tempo} bpm {style}track with {insts}",
)


def _randint(rng: Any, n: int) -> int:
    """An integer in [0, n) from ``random.Random`` or ``numpy.random.Generator``."""
    if hasattr(rng, "integers"):
        return int(rng.integers(n))
    return int(rng.randrange(n))


def _random(rng: Any) -> float:
    return float(rng.random())


def _choice(rng: Any, items: Sequence[str]) -> str:
    return items[_randint(rng, len(items))]


def _shuffled(rng: Any, items: Sequence[str]) -> list[str]:
    out = list(items)
    for i in range(len(out) - 1, 0, -1):  # Fisher-Yates with the caller's generator
        j = _randint(rng, i + 1)
        out[i], out[j] = out[j], out[i]
    return out


def instrument_name(stem_meta: Mapping[str, Any]) -> str:
    """The stem's instrument as plain lower-case words, GM qualifiers first and numbers dropped:
    "Electric Bass (finger)" -> "finger electric bass", "Pad 2 (warm)" -> "warm pad"."""
    name = str(stem_meta.get("instrument") or stem_meta.get("family") or stem_meta.get("role") or "instrument")
    name = name.lower()
    m = re.fullmatch(r"\s*(.*?)\s*\((.*)\)\s*", name)
    if m:
        name = f"{m.group(2)} {m.group(1)}"
    name = re.sub(r"[()\[\]]|\b\d+\b", " ", name)
    return re.sub(r"\s+", " ", name).strip() or "instrument"


def family_name(stem_meta: Mapping[str, Any]) -> str:
    """The stem's instrument family ("bass", "piano", "drums", ...), lower case."""
    if stem_meta.get("is_drum"):
        return "drums"
    family = str(stem_meta.get("family") or stem_meta.get("role") or "").lower().strip()
    return family or instrument_name(stem_meta)


def class_prompt(name: str) -> str:
    """The zero-shot classification prompt for a class name: "a recording of {name}"."""
    return f"a recording of {name}"


def stem_label(stem_meta: Mapping[str, Any]) -> str:
    """What a stem prompt is about (its instrument); equal labels are true matches in a batch."""
    return "stem:" + instrument_name(stem_meta)


def mixture_label(song_meta: Mapping[str, Any]) -> str:
    """What a mixture prompt is about (the sorted set of its instruments)."""
    stems = song_meta.get("stems") or {}
    return "mix:" + "|".join(sorted({instrument_name(s) for s in stems.values()}))


def stem_prompt(stem_meta: Mapping[str, Any], rng: Any, tag_dropout: float = 0.35, max_tags: int = 5) -> str:
    """One random text prompt describing a single stem (deterministic given ``rng``).

    Args:
        stem_meta: the stem's metadata dict (see the module docstring); only ``instrument`` or
            ``family`` or ``role`` is needed, the other keys enrich the prompt.
        rng: ``random.Random`` or ``numpy.random.Generator``.
        tag_dropout: probability of leaving out each tag in tag lists.
        max_tags: at most this many tags in one prompt (a random number from 1 to it).
    """
    inst = instrument_name(stem_meta)
    role_key = str(stem_meta.get("role") or "").lower()
    role = _choice(rng, ROLE_WORDS.get(role_key, (role_key or "part",)))
    tags = [str(t).lower() for t in (stem_meta.get("tags") or []) if str(t).strip()]
    kept = [t for t in _shuffled(rng, tags) if _random(rng) >= tag_dropout]
    kept = kept[: 1 + _randint(rng, max_tags)]  # long tag lists are cut to a random length
    style = str(stem_meta.get("style") or "").lower().strip()
    register = str(stem_meta.get("register") or "").lower().strip()
    kind = _random(rng)
    if kind < 0.25:  # one or two words: what a user types first
        short = [inst, family_name(stem_meta), role_key or inst] + tags[:1]
        return _choice(rng, [s for s in short if s])
    if kind < 0.45:  # a tag list led by the instrument
        head = _choice(rng, [inst, family_name(stem_meta)] + tags[:1])
        return ", ".join([head] + [t for t in kept if t != head])
    template = _choice(rng, _STEM_SENTENCES)
    adj = (kept[0] + " ") if kept and _random(rng) < 0.5 and "{tags}" not in template else ""
    text = template.format(
        inst=inst,
        role=role,
        adj=adj,
        style=(style + " ") if style and _random(rng) < 0.7 else "",
        register=(register + " ") if register and _random(rng) < 0.7 else "",
        tags=", ".join(kept) if kept else inst,
    )
    return re.sub(r"\s+", " ", text).strip()


def mixture_prompt(song_meta: Mapping[str, Any], rng: Any, drop: float = 0.2) -> str:
    """One random text prompt describing a song's full mixture (deterministic given ``rng``).

    Lists the instruments (or their families / roles) of the song's stems in random order, each
    left out with probability ``drop`` (at least one is kept), inside one of several templates.
    """
    stems = list((song_meta.get("stems") or {}).values())
    if not stems:
        return "a piece of music"
    words = []
    for s in stems:
        if _random(rng) < 0.6:
            words.append(instrument_name(s))
        else:
            words.append(_choice(rng, [family_name(s), str(s.get("role") or family_name(s)).lower()]))
    words = list(dict.fromkeys(_shuffled(rng, words)))
    kept = [w for w in words if _random(rng) >= drop] or words[:1]
    insts = kept[0] if len(kept) == 1 else ", ".join(kept[:-1]) + " and " + kept[-1]
    if _random(rng) < 0.3:
        insts = ", ".join(kept)
    style = str(song_meta.get("style") or "").lower().strip()
    tempo = song_meta.get("tempo")
    templates = [t for t in _MIX_SENTENCES if tempo is not None or "{tempo}" not in t]
    text = _choice(rng, templates).format(
        insts=insts,
        style=(style + " ") if style and _random(rng) < 0.7 else "",
        tempo=int(round(float(tempo))) if tempo is not None else "",
    )
    return re.sub(r"\s+", " ", text).strip()
