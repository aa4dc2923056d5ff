"""Transposition in the synth codec's control space and the key lock built on it: exact row shifts,
pitch-class profiles of the oscillator levels, and, with the shipped codec on rendered notes, a stem
transposed into the key of its context."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from diffariff.bundle import DEFAULT_BUNDLE, MANIFEST, open_bundle
from diffariff.codec import load_codec
from diffariff.codec.transpose import SILENT_LOG_LEVEL, bank_profile, row_pitch_classes, transpose_rows
from diffariff.eval.musical_fit import key_fit, pitch_class_profile
from diffariff.pipeline.key_lock import SHIFTS, best_transposition, choose_transpositions

SR = 48_000
C_MAJOR = [60, 64, 67, 72, 67, 64, 60, 55]


def test_rows_map_to_pitch_classes_of_the_nearest_semitone():
    classes = row_pitch_classes(21.0, 3, 280)  # A0 .. F#8 in thirds of a semitone
    assert classes[0] == 9 and classes[1] == 9 and classes[2] == 10 and classes[3] == 10  # A, A+1/3 -> A; A+2/3 -> A#
    assert classes[(60 - 21) * 3] == 0 and classes[-1] == 6  # C4; F#8


def test_transpose_rows_shifts_each_item_and_fills_with_silence():
    levels = torch.randn(2, 30, 4)
    out = transpose_rows(levels, [2, -1], per_semitone=3)
    torch.testing.assert_close(out[0, 6:], levels[0, :-6])
    assert (out[0, :6] == SILENT_LOG_LEVEL).all()
    torch.testing.assert_close(out[1, :-3], levels[1, 3:])
    assert (out[1, -3:] == SILENT_LOG_LEVEL).all()
    torch.testing.assert_close(transpose_rows(levels, [0, 0], 3), levels)
    with pytest.raises(ValueError, match="one transposition per batch item"):
        transpose_rows(levels, [1], 3)


def test_bank_profile_folds_octaves_and_normalises_each_frame():
    classes = row_pitch_classes(21.0, 3, 280)
    levels = torch.full((1, 280, 2), SILENT_LOG_LEVEL)
    c4, c5, e4 = (60 - 21) * 3, (72 - 21) * 3, (64 - 21) * 3
    levels[0, c4, 0] = levels[0, c5, 0] = 0.0  # frame 0: C in two octaves
    levels[0, e4, 1] = -1.0  # frame 1: a quieter E
    prof = bank_profile(levels, classes)[0]
    assert prof[0, 0] == pytest.approx(1.0) and prof[4, 1] == pytest.approx(1.0)
    assert prof[4, 0] < 1e-6 and prof[0, 1] < 1e-6


def test_best_transposition_finds_the_shift_and_keeps_ambiguous_stems():
    major = np.array([1, 0, 0.5, 0, 0.8, 0.6, 0, 0.9, 0, 0.5, 0, 0.3])  # C major-ish profile
    for k in SHIFTS:
        assert best_transposition(major, np.roll(major, k)) == k
    flat = np.ones(12) + 0.01 * np.arange(12)
    assert best_transposition(flat, major) == 0  # no shift gains enough


@pytest.fixture(scope="module")
def shipped_codec():
    if not (DEFAULT_BUNDLE / MANIFEST).is_file():
        pytest.skip("no default bundle installed")
    codec = load_codec(open_bundle("default").codec)
    if not getattr(codec, "can_transpose", False):
        pytest.skip("the default bundle's codec cannot transpose")
    return codec


def test_shipped_codec_transposes_rendered_notes_into_the_contexts_key(shipped_codec, render_notes):
    piano_c = render_notes(0, C_MAJOR, beat_seconds=0.25, seconds=2.0)
    strings_d = render_notes(48, [p + 2 for p in C_MAJOR], beat_seconds=0.25, seconds=2.0)  # the context, in D
    z = shipped_codec.encode(torch.as_tensor(piano_c.mean(0, keepdims=True))[None])
    profile = shipped_codec.pitch_class_profile(z)[0].numpy()
    assert set(np.argsort(profile)[-3:]) == {0, 4, 7}  # C, E, G: the stem's notes
    shifts = choose_transpositions(shipped_codec, z, strings_d)
    assert shifts == [2]
    moved = shipped_codec.decode(z, seed=0, semitones=shifts, length=piano_c.shape[1])[0].numpy()
    kept = shipped_codec.decode(z, seed=0, length=piano_c.shape[1])[0].numpy()
    assert key_fit(moved, strings_d, SR) > key_fit(kept, strings_d, SR) + 0.3
    # the transposed audio's pitch classes are the original's moved up two semitones
    assert np.corrcoef(pitch_class_profile(moved, SR), np.roll(pitch_class_profile(kept, SR), 2))[0, 1] > 0.8
    assert choose_transpositions(shipped_codec, z, np.zeros_like(strings_d)) is None  # silent context: no lock
