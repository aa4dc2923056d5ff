"""Prompt generation for CLAP training: deterministic, varied, short and long, always on topic."""

from __future__ import annotations

import random

import numpy as np

from diffariff.clap.prompts import (
    class_prompt,
    family_name,
    instrument_name,
    mixture_label,
    mixture_prompt,
    stem_label,
    stem_prompt,
)

BASS = {
    "file": "bass.flac", "role": "bass", "instrument": "Electric Bass (finger)", "program": 33,
    "family": "bass", "is_drum": False, "style": "walking", "register": "low",
    "tags": ["electric bass", "fingered", "warm", "walking bass"],
}
DRUMS = {"file": "drums.flac", "role": "drums", "instrument": "Standard Kit", "program": 0, "family": "drums",
         "is_drum": True, "style": "rock", "register": "", "tags": ["drum kit", "rock beat"]}
PIANO = {"file": "chords.flac", "role": "chords", "instrument": "Acoustic Grand Piano", "program": 0,
         "family": "piano", "is_drum": False, "style": "block", "register": "mid", "tags": ["piano", "bright"]}
SONG = {"split": "train", "key": "C", "mode": "major", "tempo": 112.0, "style": "funk",
        "stems": {"bass": BASS, "drums": DRUMS, "chords": PIANO}}


def _topic_words(meta: dict) -> set[str]:
    words = {instrument_name(meta), family_name(meta), meta["role"], *meta["tags"]}
    return {w for w in words if w}


def test_stem_prompt_is_deterministic_given_the_rng():
    a = [stem_prompt(BASS, random.Random(7)) for _ in range(3)]
    assert len(set(a)) == 1
    rng1, rng2 = random.Random(3), random.Random(3)
    assert [stem_prompt(BASS, rng1) for _ in range(20)] == [stem_prompt(BASS, rng2) for _ in range(20)]
    g1, g2 = np.random.default_rng(5), np.random.default_rng(5)
    assert [stem_prompt(BASS, g1) for _ in range(20)] == [stem_prompt(BASS, g2) for _ in range(20)]


def test_stem_prompts_are_varied_short_and_long_and_on_topic():
    rng = random.Random(0)
    prompts = [stem_prompt(BASS, rng) for _ in range(300)]
    assert len(set(prompts)) > 30
    lengths = [len(p.split()) for p in prompts]
    assert min(lengths) == 1 and max(lengths) >= 5
    assert "bass" in prompts  # the shortest thing a user types
    topic = _topic_words(BASS)
    for p in prompts:
        assert p == p.strip() and "  " not in p and "{" not in p
        assert any(w in p for w in topic), p


def test_stem_prompt_works_with_minimal_metadata():
    rng = random.Random(1)
    for _ in range(50):
        p = stem_prompt({"instrument": "Flute"}, rng)
        assert "flute" in p and "{" not in p


def test_mixture_prompt_lists_instruments_and_is_deterministic():
    rng1, rng2 = random.Random(9), random.Random(9)
    a = [mixture_prompt(SONG, rng1) for _ in range(100)]
    assert a == [mixture_prompt(SONG, rng2) for _ in range(100)]
    assert len(set(a)) > 20
    topic = set().union(*(_topic_words(m) for m in SONG["stems"].values()))
    for p in a:
        assert any(w in p for w in topic), p
        assert "{" not in p
    assert any("112" in p for p in a)  # the tempo template appears


def test_labels_group_same_instrument_stems():
    other_bass = dict(BASS, tags=["bass"], style="root notes")
    assert stem_label(BASS) == stem_label(other_bass)
    assert stem_label(BASS) != stem_label(PIANO)
    assert mixture_label(SONG) == mixture_label(dict(SONG, stems=dict(reversed(list(SONG["stems"].items())))))
    assert mixture_label(SONG).startswith("mix:") and stem_label(BASS).startswith("stem:")


def test_names_and_class_prompt():
    assert instrument_name(BASS) == "finger electric bass"
    assert instrument_name({"instrument": "Pad 2 (warm)"}) == "warm pad"
    assert instrument_name({"instrument": "Trumpet"}) == "trumpet"
    assert family_name(DRUMS) == "drums"
    assert class_prompt("piano") == "a recording of piano"
