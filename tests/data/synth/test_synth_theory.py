"""Music theory, tables and note generators of the synthetic corpus (no audio rendering)."""

from __future__ import annotations

import mido
import numpy as np
import pytest

from diffariff.data.synth import gm
from diffariff.data.synth.corpus import split_of
from diffariff.data.synth.drums import GROOVES, groove_for
from diffariff.data.synth.midi import DRUM_CHANNEL, write_part_midi
from diffariff.data.synth.parts import _comp_pattern, bass_notes, melody_notes, part_notes, part_range
from diffariff.data.synth.plan import PartSpec, plan_song
from diffariff.data.synth.styles import ROLE_PROGRAMS, ROLES, STYLES
from diffariff.data.synth.tags import max_polyphony
from diffariff.data.synth.theory import IDIOMS, MODES, Chord, Key, idiom_chords, voice_chord


def test_scales_and_modes():
    assert Key(0, "major").scale == (0, 2, 4, 5, 7, 9, 11)
    assert Key(9, "minor").scale == (9, 11, 0, 2, 4, 5, 7)
    assert set(Key(2, "dorian").scale) == set(Key(0, "major").scale)  # D dorian = white keys
    assert set(Key(7, "mixolydian").scale) == set(Key(0, "major").scale)
    assert Key(0, "harmonic minor").scale[-1] == 11  # raised seventh
    for mode in MODES:
        assert len(set(Key(5, mode).scale)) == 7


def test_chord_spelling():
    c = Key(0, "major")
    assert [c.degree_chord(d).symbol for d in range(1, 8)] == ["C", "Dm", "Em", "F", "G", "Am", "Bdim"]
    assert [c.degree_chord(d, seventh=True).symbol for d in (2, 5, 1, 7)] == ["Dm7", "G7", "Cmaj7", "Bm7b5"]
    assert [ch.symbol for ch in idiom_chords(IDIOMS["minor_i_VI_III_VII"], Key(9, "minor"))] == ["Am", "F", "C", "G"]
    assert [ch.symbol for ch in idiom_chords(IDIOMS["minor_ii_V_i"], Key(9, "harmonic minor"))][:3] == [
        "Bm7b5", "E7", "Am(maj7)"]
    blues = [ch.symbol for ch in idiom_chords(IDIOMS["blues_12bar"], Key(9, "mixolydian"))]
    assert blues == ["A7", "D7", "A7", "A7", "D7", "D7", "A7", "A7", "E7", "D7", "A7", "E7"]
    assert Chord(2, "min7").pitch_classes == (2, 5, 9, 0)
    assert Chord(7, "dom7").fifth == 2


def test_every_idiom_spells_in_its_modes():
    for idiom in IDIOMS.values():
        for mode in idiom.modes:
            for tonic in range(12):
                key = Key(tonic, mode)
                chords = idiom_chords(idiom, key)
                assert len(chords) == len(idiom.degrees)
                if idiom.qualities is None:  # diatonic: every chord tone in the scale
                    assert all(set(ch.pitch_classes) <= set(key.scale) for ch in chords), idiom.name


def test_voicings_stay_in_range_and_move_little():
    rng = np.random.default_rng(0)
    prev = None
    moves = []
    for ch in idiom_chords(IDIOMS["pop_I_V_vi_IV"], Key(0, "major")) * 3:
        v = voice_chord(ch, prev, 48, 79, 3, rng)
        assert all(48 <= p <= 79 for p in v) and v == sorted(v)
        assert {p % 12 for p in v} == set(ch.pitch_classes)
        if prev is not None:
            moves.append(sum(abs(a - b) for a, b in zip(v, prev)))
        prev = v
    assert max(moves) <= 5  # close voice leading between neighbouring pop chords
    shell = voice_chord(Chord(7, "dom7"), None, 48, 79, 3)
    assert {p % 12 for p in shell} == {7, 11, 5}  # root, third, seventh


def test_gm_table():
    assert len(gm.PROGRAMS) == 128
    assert len({p.name for p in gm.PROGRAMS}) == 128
    assert gm.program(0).name == "Acoustic Grand Piano" and gm.program(0).family == "piano"
    assert gm.program(33).name == "Electric Bass (finger)" and gm.program(33).family == "bass"
    assert gm.program(127).family == "sound effects"
    assert all(len(p.tags) >= 3 for p in gm.PROGRAMS)
    for role, progs in ROLE_PROGRAMS.items():
        assert role in ROLES
        assert all(0 <= p < 128 and w > 0 for p, w in progs)
    with pytest.raises(ValueError):
        gm.program(128)


def test_styles_reference_existing_pieces():
    for st in STYLES.values():
        assert all(n in IDIOMS for n in st.idioms)
        for (num, den), _ in st.meters:
            bb = num * 4 / den
            for g in st.grooves:
                assert groove_for(g, bb).bar_beats == int(bb)
            for comp in st.comps:
                assert all(off < bb for off, _, _ in _comp_pattern(comp, bb, np.random.default_rng(0)))
        assert st.tempo[0] < st.tempo[1]
    for g in GROOVES.values():
        assert all(len(lane) == g.steps_per_beat * g.bar_beats for lane in g.lanes.values()), g.name


def _bass_part(plan, style):
    return PartSpec("bass", 33, style, "bass", [True] * plan.num_bars)


@pytest.mark.parametrize("style", ["root", "root8", "root_fifth", "octave", "arpeggiated", "syncopated"])
def test_bass_notes_belong_to_the_chord(style):
    for i in range(4):
        plan = plan_song(np.random.default_rng([3, i]), 20.0)
        part = _bass_part(plan, style)
        notes = bass_notes(np.random.default_rng(i), plan, part)
        assert notes
        lo, hi = part_range(part)
        for n in notes:
            chord = plan.chord_at(n.start + 1e-6)
            assert n.pitch % 12 in chord.pitch_classes, (style, n, chord.symbol)
            assert lo <= n.pitch <= hi + 12


def test_walking_bass_lands_on_roots():
    plan = plan_song(np.random.default_rng(5), 20.0, style="jazz")
    notes = bass_notes(np.random.default_rng(0), plan, _bass_part(plan, "walking"))
    changes = {s for b in range(plan.num_bars) for s, _, _ in plan.chord_segments(b)}
    on_change = [n for n in notes if round(n.start, 6) in {round(c, 6) for c in changes}]
    assert on_change
    assert all(n.pitch % 12 == plan.chord_at(n.start + 1e-6).root for n in on_change)
    assert all(n.dur < 1.0 for n in notes)  # quarter notes


def test_melody_is_in_key_and_chord_tones_on_strong_beats():
    for i in range(4):
        plan = plan_song(np.random.default_rng([11, i]), 20.0, style="pop")
        part = PartSpec("lead", 73, "melody", "lead", [True] * plan.num_bars, density=0.6)
        notes = melody_notes(np.random.default_rng(i), plan, part)
        assert notes
        assert all(plan.key.in_scale(n.pitch) for n in notes)
        downbeats = [n for n in notes if abs(n.start / plan.bar_beats - round(n.start / plan.bar_beats)) < 1e-9]
        assert downbeats
        assert all(n.pitch % 12 in plan.chord_at(n.start + 1e-6).pitch_classes for n in downbeats)
        assert max_polyphony(notes) == 1  # a melody is monophonic


def test_drum_midi_on_channel_10(tmp_path):
    plan = plan_song(np.random.default_rng(1), 12.0, style="rock")
    part = PartSpec("drums", 0, "rock", "drums", [True] * plan.num_bars)
    notes = part_notes(np.random.default_rng(0), plan, part)
    assert {36, 38, 42} <= {n.pitch for n in notes}
    write_part_midi(tmp_path / "d.mid", notes, program=0, is_drum=True, tempo=plan.tempo, meter=plan.meter)
    msgs = [m for m in mido.MidiFile(tmp_path / "d.mid") if m.type in ("note_on", "note_off", "program_change")]
    assert msgs and all(m.channel == DRUM_CHANNEL for m in msgs)
    assert sum(m.type == "note_on" and m.velocity > 0 for m in msgs) == len(notes)
    bass = PartSpec("bass", 33, "root", "bass", [True] * plan.num_bars)
    write_part_midi(tmp_path / "b.mid", part_notes(np.random.default_rng(0), plan, bass), program=33,
                    is_drum=False, tempo=plan.tempo, meter=plan.meter)
    msgs = [m for m in mido.MidiFile(tmp_path / "b.mid") if not m.is_meta]
    assert all(m.channel == 0 for m in msgs)
    assert any(m.type == "program_change" and m.program == 33 for m in msgs)


def test_plans_are_deterministic_and_varied():
    a = plan_song(np.random.default_rng([0, 1]), 30.0)
    b = plan_song(np.random.default_rng([0, 1]), 30.0)
    assert (a.style.name, a.key, a.tempo, [p.program for p in a.parts]) == (
        b.style.name, b.key, b.tempo, [p.program for p in b.parts])
    plans = [plan_song(np.random.default_rng([0, i]), 30.0) for i in range(60)]
    assert len({p.style.name for p in plans}) >= 10
    assert len({q.program for p in plans for q in p.parts if not q.is_drum}) >= 40
    assert all(2 <= len(p.parts) <= 7 for p in plans)
    assert all(len({q.stem for q in p.parts}) == len(p.parts) for p in plans)
    tempos = [p.tempo for p in plans]
    assert min(tempos) < 80 and max(tempos) > 140
    assert {tuple(p.meter) for p in plans} >= {(4, 4), (3, 4), (6, 8)}
    long = plan_song(np.random.default_rng(4), 90.0)
    assert [s.name for s in long.sections][0] == "intro" and len(long.sections) >= 4
    assert sum(s.bars for s in long.sections) == long.num_bars


def test_split_proportions():
    splits = [split_of(0, i) for i in range(4000)]
    assert 0.87 < splits.count("train") / 4000 < 0.93
    assert 0.03 < splits.count("valid") / 4000 < 0.07
    assert 0.03 < splits.count("test") / 4000 < 0.07
    assert splits == [split_of(0, i) for i in range(4000)]
