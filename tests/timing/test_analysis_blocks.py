"""The tempo analysis in blocks (:mod:`diffariff.timing.beats`): the mono mix, the spectra and the
tempogram are made a block at a time so that a long context needs no whole-length spectrogram or
tempogram; on a rendered 70-s mix the features, the tempo estimate and the grid equal librosa's
whole-signal computation, and a spooled context gives the same grid as the array."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from diffariff.audio import resample
from diffariff.audio_spool import SpooledAudio
from diffariff.timing import beats
from diffariff.timing.tempo import analyze_audio

SR = 48_000


@pytest.fixture(scope="module")
def mix(render_notes):
    """70 s of a rendered piano + bass phrase (float32 [2, N] at 48 kHz; an odd length)."""
    piano = render_notes(0, [60, 64, 67, 72, 67, 64, 60, 55], beat_seconds=0.25, seconds=2.0)
    bass = render_notes(33, [36, 36, 43, 43, 41, 41, 38, 38], beat_seconds=0.25, seconds=2.0)
    phrase = piano + bass
    n = 70 * SR + 1234
    return np.tile(phrase, (1, -(-n // phrase.shape[1])))[:, :n]


def _whole_features(y: np.ndarray):
    """The features as librosa computes them from one whole-length spectrogram."""
    import librosa

    mel = librosa.feature.melspectrogram(y=y, sr=beats.ANALYSIS_SR, n_fft=2048, hop_length=beats.HOP,
                                         n_mels=beats.N_MELS)
    onset = librosa.onset.onset_strength(S=librosa.power_to_db(mel, ref=np.max), sr=beats.ANALYSIS_SR,
                                         hop_length=beats.HOP, center=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        chroma = librosa.feature.chroma_stft(y=y, sr=beats.ANALYSIS_SR, n_fft=4096, hop_length=beats.HOP, tuning=0.0)
    return onset, chroma


def test_block_features_equal_the_whole_signal_computation(mix, monkeypatch):
    y = beats.to_mono_analysis(mix, SR, block=123_457)
    np.testing.assert_array_equal(y, resample(mix.mean(axis=0)[None], SR, beats.ANALYSIS_SR)[0])
    feats = beats.onset_features(y)
    onset, chroma = _whole_features(y)
    n = len(feats.onset)
    assert n == len(onset) and 1 + len(y) // beats.HOP - n <= 1
    np.testing.assert_allclose(feats.onset, onset[:n], rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(feats.chroma, chroma[:, :n], rtol=1e-6, atol=1e-7)

    import librosa

    whole = librosa.feature.tempo(onset_envelope=feats.onset, sr=beats.ANALYSIS_SR, hop_length=beats.HOP,
                                  start_bpm=110.0)[0]
    assert len(feats.onset) > beats.TEMPOGRAM_BLOCK // 2
    monkeypatch.setattr(beats, "TEMPOGRAM_BLOCK", 1000)  # several tempogram blocks (and a short last one)
    assert beats.librosa_tempo(feats) == pytest.approx(whole, rel=1e-9)


def test_a_spooled_context_gives_the_grid_of_the_array(mix):
    with SpooledAudio(2) as spooled:
        for a in range(0, mix.shape[1], 1 << 20):
            spooled.append(mix[:, a:a + (1 << 20)])
        np.testing.assert_array_equal(beats.to_mono_analysis(spooled, SR), beats.to_mono_analysis(mix, SR))
        grid = analyze_audio(spooled, SR)
    want = analyze_audio(mix, SR)
    assert grid == want and abs(grid.bpm - 120.0) < 1.0
