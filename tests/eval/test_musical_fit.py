"""Rhythm and key fit of a stem to its context, on rendered General MIDI audio: a part on the
context's grid and in its key scores above one off the grid or in another key; silence scores 0."""

from __future__ import annotations

import numpy as np
import pytest

from diffariff.eval.musical_fit import (
    context_features,
    key_fit,
    musical_fit,
    onset_envelope,
    pitch_class_profile,
    rhythm_fit,
)

SR = 48_000
C_MAJOR = [60, 64, 67, 72, 67, 64, 60, 64, 67, 72, 67, 64, 60, 64, 67, 72]
F_SHARP_MAJOR = [p + 6 for p in C_MAJOR]
BASS_C = [36, 43, 36, 43, 36, 43, 36, 43]


@pytest.fixture(scope="module")
def parts(render_notes):
    """4-s parts: piano in C on a 0.25-s grid (the context), bass in C on a 0.5-s grid (fits), the same
    bass delayed by half the piano's grid step (off the grid), bass at another tempo (0.37-s grid),
    bass and piano transposed to F#."""
    piano = render_notes(0, C_MAJOR, beat_seconds=0.25, seconds=4.0)
    bass = render_notes(33, BASS_C, beat_seconds=0.5, seconds=4.0)
    bass_fs = render_notes(33, [p + 6 for p in BASS_C], beat_seconds=0.5, seconds=4.0)
    shift = int(0.125 * SR)  # half of the piano's grid step: every bass onset falls between two piano onsets
    off_grid = np.pad(bass, ((0, 0), (shift, 0)))[:, : bass.shape[1]]
    slow = render_notes(33, BASS_C, beat_seconds=0.37, seconds=4.0)
    return {"piano": piano, "bass": bass, "bass_fs": bass_fs, "off_grid": off_grid, "slow": slow,
            "piano_fs": render_notes(0, F_SHARP_MAJOR, beat_seconds=0.25, seconds=4.0)}


def test_rhythm_fit_rewards_onsets_on_the_contexts_grid(parts):
    on = rhythm_fit(parts["bass"], parts["piano"], SR)
    assert on > 0.3
    assert on > rhythm_fit(parts["off_grid"], parts["piano"], SR) + 0.2
    assert on > rhythm_fit(parts["slow"], parts["piano"], SR) + 0.2
    assert rhythm_fit(parts["piano"], parts["piano"], SR) == pytest.approx(1.0)
    # level does not matter, timing does
    assert rhythm_fit(0.1 * parts["bass"], parts["piano"], SR) == pytest.approx(on, abs=0.02)


def test_key_fit_rewards_the_contexts_pitch_classes(parts):
    same = key_fit(parts["bass"], parts["piano"], SR)
    other = key_fit(parts["bass_fs"], parts["piano"], SR)
    assert same > 0.3 and same > other + 0.3
    assert key_fit(parts["bass_fs"], parts["piano_fs"], SR) > other + 0.3  # transposing both keeps the fit
    profile = pitch_class_profile(parts["piano"], SR)
    assert profile.shape == (12,) and int(np.argmax(profile)) in {3, 7, 10}  # C, E or G (index 0 = A)


def test_silence_noise_and_shapes(parts):
    silence = np.zeros_like(parts["bass"])
    assert rhythm_fit(silence, parts["piano"], SR) == 0.0 == key_fit(silence, parts["piano"], SR)
    assert not onset_envelope(silence, SR).any() and not pitch_class_profile(silence, SR).any()
    noise = np.random.default_rng(0).normal(0, 0.1, parts["bass"].shape)
    assert abs(rhythm_fit(noise, parts["piano"], SR)) < 0.2 and abs(key_fit(noise, parts["piano"], SR)) < 0.5
    tiny = rhythm_fit(np.ones((2, 5)) * 0.1, parts["piano"], SR)  # shorter than one analysis window
    assert np.isfinite(tiny)
    stems = [parts["bass"], silence, parts["bass_fs"]]
    ctx = [parts["piano"]] * 3
    fit = musical_fit(stems, ctx, SR)
    assert set(fit) == {"rhythm", "key"} and fit["rhythm"].shape == (3,)
    again = musical_fit(stems, context_features(ctx, SR), SR)  # precomputed context features: same numbers
    assert np.array_equal(fit["rhythm"], again["rhythm"]) and np.array_equal(fit["key"], again["key"])
    with pytest.raises(ValueError):
        musical_fit(stems[:2], ctx, SR)
