"""The context-sensitivity measure (:mod:`diffariff.eval.likeness`) on rendered notes: one stem copied is
fully alike, different parts less, silence is left out; cross-checked against a plain numpy STFT."""

from __future__ import annotations

import numpy as np

from diffariff.eval.likeness import likeness

SR = 48_000


def test_copies_are_alike_and_different_parts_are_not(render_notes):
    piano = render_notes(0, [60, 64, 67, 72, 67, 64, 60, 55], beat_seconds=0.25, seconds=4.0)
    bass = render_notes(33, [36, 43, 41, 38, 36, 31, 33, 36], beat_seconds=0.5, seconds=4.0)
    drums = render_notes(0, [38, 42, 38, 42, 38, 42, 38, 42], drum=True, beat_seconds=0.25, seconds=4.0)
    same = likeness([piano, piano.copy() * 0.3, piano[:, : 3 * SR]], SR)
    assert np.all(same > 0.99)  # level and length do not matter, the sound does
    mixed = likeness([piano, bass, drums], SR)
    assert np.all(mixed < 0.9) and np.all(mixed > -1)
    with_silence = likeness([piano, np.zeros_like(piano), bass], SR)
    assert np.isnan(with_silence[1]) and np.isfinite(with_silence[[0, 2]]).all()
    assert with_silence[0] == with_silence[2]  # symmetric: each stem's only partner is the other


def test_the_same_pairs_stand_out_with_a_plain_stft_spectrogram(render_notes):
    """Independent check of the mel measure: a numpy log-power STFT (no mel, no librosa) finds the same most
    alike pair (two piano phrases) and puts it above every pair with the bass."""
    from diffariff.eval.likeness import log_mel

    stems = [render_notes(0, [60, 64, 67, 72], beat_seconds=0.5, seconds=4.0),
             render_notes(0, [62, 65, 69, 74], beat_seconds=0.5, seconds=4.0),
             render_notes(33, [36, 43, 41, 38], beat_seconds=0.5, seconds=4.0),
             render_notes(0, [38, 42] * 4, drum=True, beat_seconds=0.25, seconds=4.0)]

    def stft_db(x):
        frames = np.lib.stride_tricks.sliding_window_view(x.mean(axis=0), 4096)[::2048] * np.hanning(4096)
        p = np.abs(np.fft.rfft(frames, axis=1)) ** 2
        return np.maximum(10 * np.log10(np.maximum(p, 1e-12) / p.max()), -80).T

    def pairs(specs):
        return {(i, j): np.corrcoef(specs[i][:, :t].ravel(), specs[j][:, :t].ravel())[0, 1]
                for i in range(4) for j in range(i + 1, 4)
                for t in [min(specs[i].shape[1], specs[j].shape[1])]}

    for values in (pairs([stft_db(s) for s in stems]), pairs([log_mel(s, SR) for s in stems])):
        assert max(values, key=values.get) == (0, 1)
        assert values[(0, 1)] > max(values[(0, 2)], values[(1, 2)], values[(2, 3)])
