"""Reconstruction metrics (MR-STFT, log-mel, SI-SDR) and the Opus round trip on rendered audio."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from diffariff.errors import InputError, MissingDependencyError
from diffariff.eval.reconstruction import (
    N_MELS,
    band_level_errors,
    estimate_lag,
    log_mel,
    log_mel_distance,
    mel_filterbank,
    mr_stft_distance,
    opus_roundtrip,
    phase_error_share,
    si_sdr,
)

SR = 48_000


@pytest.fixture(scope="module")
def piano(render_notes) -> np.ndarray:
    """3 s of a rendered piano arpeggio, float32 [2, 144000]."""
    return render_notes(0, [60, 64, 67, 72, 76, 72, 67, 64, 60, 55, 59, 62], seconds=3.0)


def _lagged_correlation(ref: np.ndarray, est: np.ndarray, lag: int) -> float:
    """sum_n ref[n] * est[n + lag] over the channel sums (computed directly, no FFT)."""
    r, e = ref.sum(0).astype(np.float64), est.sum(0).astype(np.float64)
    if lag >= 0:
        return float(np.dot(r[: len(r) - lag], e[lag:]))
    return float(np.dot(r[-lag:], e[: len(e) + lag]))


def test_si_sdr_known_cases(piano):
    rng = np.random.default_rng(0)
    assert si_sdr(piano, piano) > 100.0
    assert si_sdr(piano, 0.3 * piano) > 100.0  # scale invariance
    assert si_sdr(piano, rng.standard_normal(piano.shape)) < -20.0
    # 20 dB SNR of white noise -> SI-SDR close to 20 dB.
    noise = rng.standard_normal(piano.shape)
    noise *= np.linalg.norm(piano, axis=1, keepdims=True) / np.linalg.norm(noise, axis=1, keepdims=True) / 10.0
    assert si_sdr(piano, piano + noise) == pytest.approx(20.0, abs=0.5)


def test_phase_error_share_tells_phase_errors_from_magnitude_errors(piano):
    """A gain error, a zero-phase low-pass and silence are all magnitude (share ~0); the Hilbert
    transform (every partial turned by 90 degrees, magnitudes kept) is almost all phase (share ~1)."""
    from scipy.signal import butter, filtfilt, hilbert

    assert phase_error_share(piano, piano) == 0.0
    assert phase_error_share(piano, 0.5 * piano) == pytest.approx(0.0, abs=1e-9)
    assert phase_error_share(piano, np.zeros_like(piano)) == pytest.approx(0.0, abs=1e-9)
    b, a = butter(4, 1000 / (SR / 2))
    assert phase_error_share(piano, filtfilt(b, a, piano, axis=-1)) < 0.1
    turned = np.imag(hilbert(piano, axis=-1))
    assert phase_error_share(piano, turned) > 0.9
    delayed = np.roll(piano, 7, axis=-1)  # a small delay: the magnitudes hold, the phases turn
    assert phase_error_share(piano, delayed) > 0.9


def test_spectral_distances_zero_for_identical_and_grow_with_noise(piano):
    rng = np.random.default_rng(1)
    assert mr_stft_distance(piano, piano) == 0.0
    assert log_mel_distance(piano, piano) == 0.0
    noise = rng.standard_normal(piano.shape).astype(np.float32)
    mr = [mr_stft_distance(piano, piano + a * noise) for a in (1e-4, 1e-3, 1e-2)]
    lm = [log_mel_distance(piano, piano + a * noise) for a in (1e-4, 1e-3, 1e-2)]
    assert 0.0 < mr[0] < mr[1] < mr[2]
    assert 0.0 < lm[0] < lm[1] < lm[2]
    # torch input gives the same numbers as numpy input.
    assert mr_stft_distance(torch.from_numpy(piano), torch.from_numpy(piano + 1e-3 * noise)) == pytest.approx(mr[1])


def test_band_level_errors_measure_gain_and_tilt(piano):
    assert band_level_errors(piano, piano) == {"level_db": 0.0, "band_db": 0.0}
    quiet = band_level_errors(piano, piano * 10 ** (-6 / 20))  # -6 dB everywhere
    assert quiet["level_db"] == pytest.approx(-6.0, abs=1e-6)
    assert quiet["band_db"] == pytest.approx(6.0, abs=1e-6)
    # a low-pass at 2 kHz keeps the level (the energy is low) but not the balance: a tilt, not a gain
    spectrum = np.fft.rfft(piano, axis=1)
    spectrum[:, np.fft.rfftfreq(piano.shape[1], 1 / SR) > 2000.0] *= 0.01  # -40 dB
    dull = np.fft.irfft(spectrum, n=piano.shape[1], axis=1)
    tilted = band_level_errors(piano, dull)
    assert abs(tilted["level_db"]) < 1.0 and tilted["band_db"] > 5.0
    silent = band_level_errors(piano, np.zeros_like(piano))
    assert np.isfinite(silent["level_db"]) and silent["level_db"] < -100.0


def test_log_mel_shape_and_filterbank(piano):
    spec = log_mel(piano, SR)
    assert spec.shape[:2] == (2, N_MELS)
    assert float(spec.min()) >= -5.0  # power floor 1e-5
    fb = mel_filterbank(SR)
    assert fb.shape == (N_MELS, 1025)
    assert float(fb.max()) <= 1.0 and bool((fb.sum(1) > 0).all())


def test_shape_mismatch_is_input_error(piano):
    with pytest.raises(InputError, match="shapes differ"):
        mr_stft_distance(piano, piano[:, :1000])
    with pytest.raises(InputError, match="NaN"):
        si_sdr(piano, np.full_like(piano, np.nan))


def test_estimate_lag_recovers_a_known_delay(piano):
    delayed = np.pad(piano, ((0, 0), (37, 0)))[:, : piano.shape[1]]
    assert estimate_lag(piano, delayed, 480) == 37
    assert estimate_lag(delayed, piano, 480) == -37


def test_opus_roundtrip_is_aligned_and_better_at_higher_bitrate(piano):
    out24 = opus_roundtrip(piano, SR, 24)
    out12 = opus_roundtrip(piano, SR, 12)
    assert out24.shape == piano.shape and out24.dtype == np.float32
    corr = {lag: _lagged_correlation(piano, out24, lag) for lag in range(-8, 9)}
    assert abs(max(corr, key=corr.get)) <= 1
    assert mr_stft_distance(piano, out24) < mr_stft_distance(piano, out12)
    assert log_mel_distance(piano, out24) < log_mel_distance(piano, out12)
    assert si_sdr(piano, out24) > 5.0  # aligned: a time offset would make SI-SDR collapse
    # Same input, same output: the encoder is deterministic.
    np.testing.assert_array_equal(out24, opus_roundtrip(piano, SR, 24))


def test_opus_roundtrip_mono(piano):
    mono = piano[:1, : SR]
    out = opus_roundtrip(mono, SR, 24)
    assert out.shape == mono.shape


def test_opus_errors(piano):
    with pytest.raises(MissingDependencyError, match="not found"):
        opus_roundtrip(piano, SR, 24, ffmpeg="no-such-ffmpeg-binary")
    with pytest.raises(InputError, match="bitrate"):
        opus_roundtrip(piano, SR, 0.1)
