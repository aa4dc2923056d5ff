"""Signal-level fit of a stem to its context: *in time* (onsets) and *in key* (pitch classes).

APA judges the fit through CLAP embeddings of whole mixes. These two scores read the two things a
producer hears first directly from the waveforms, per (stem, context) pair, with no learned model:

* **rhythm fit** — Pearson correlation, at lag 0, of the onset-strength envelopes of stem and context
  (log-magnitude spectral flux, 10 ms hop, local mean removed, smoothed over ~50 ms so that onsets a
  few milliseconds apart still count as together). A stem that plays on the context's grid scores
  well above 0; a stem at another tempo or phase scores ~0.
* **key fit** — Pearson correlation of the two 12-bin pitch-class profiles (mean STFT magnitude per
  pitch class over 55 Hz – 5 kHz, each class divided by its number of bins so that broadband noise is
  flat). Same key ~ high; unrelated keys ~ 0 or below.

Both are in [-1, 1] and 0 when either signal is silent or flat (no onsets / no pitch-class contrast).
Neither is calibrated on its own: read them against the ``real`` (true stems) and ``random`` (stems of
other pairs) rows of the same evaluation. Audio is ``[C, N]`` or ``[N]`` float at ``sample_rate`` Hz;
channels are averaged.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from scipy.ndimage import uniform_filter1d

#: Onset analysis: window and hop in seconds.
ONSET_WINDOW_SECONDS = 2048 / 48_000
ONSET_HOP_SECONDS = 0.010
#: Onset envelopes are smoothed over this many seconds (timing tolerance) ...
ONSET_SMOOTH_SECONDS = 0.05
#: ... after removing their moving average over this many seconds (loudness trends are not rhythm).
ONSET_DETREND_SECONDS = 0.5
#: Pitch-class analysis: window (seconds; ~5.9 Hz bins at 48 kHz) and the analysed band (Hz).
CHROMA_WINDOW_SECONDS = 8192 / 48_000
CHROMA_BAND_HZ = (55.0, 5000.0)
#: Below this RMS a signal counts as silent (about -100 dBFS).
SILENCE_RMS = 1e-5


def _mono(audio) -> np.ndarray:
    x = np.asarray(audio, dtype=np.float64)
    if x.ndim == 2:
        x = x.mean(axis=0)
    if x.ndim != 1:
        raise ValueError(f"audio must be [C, N] or [N], got shape {np.shape(audio)}")
    return np.nan_to_num(x)


def _magnitudes(x: np.ndarray, window: int, hop: int) -> np.ndarray:
    """|STFT| ``[frames, window // 2 + 1]`` with a Hann window; short input is zero-padded to one window."""
    if x.size < window:
        x = np.pad(x, (0, window - x.size))
    return np.abs(np.fft.rfft(sliding_window_view(x, window)[::hop] * np.hanning(window), axis=1))


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    n = min(a.size, b.size)
    a, b = a[:n] - a[:n].mean(), b[:n] - b[:n].mean()
    den = np.sqrt(float(a @ a) * float(b @ b))
    return float(a @ b / den) if den > 1e-12 else 0.0


def onset_envelope(audio, sample_rate: int) -> np.ndarray:
    """Detrended, smoothed onset strength ``float64 [frames]`` at a 10 ms hop (zeros for silence)."""
    x = _mono(audio)
    hop = max(1, round(ONSET_HOP_SECONDS * sample_rate))
    mag = _magnitudes(x, max(hop * 2, round(ONSET_WINDOW_SECONDS * sample_rate)), hop)
    if np.sqrt(np.mean(x**2)) < SILENCE_RMS or mag.shape[0] < 2:
        return np.zeros(max(mag.shape[0] - 1, 1))
    logmag = np.log1p(mag / (mag.max() * 1e-3))  # level-independent compression
    flux = np.maximum(np.diff(logmag, axis=0), 0.0).mean(axis=1)
    detrend = max(1, round(ONSET_DETREND_SECONDS / ONSET_HOP_SECONDS))
    smooth = max(1, round(ONSET_SMOOTH_SECONDS / ONSET_HOP_SECONDS))
    env = flux - uniform_filter1d(flux, detrend, mode="nearest")
    return uniform_filter1d(env, smooth, mode="nearest")


def pitch_class_profile(audio, sample_rate: int) -> np.ndarray:
    """Mean magnitude per pitch class ``float64 [12]`` (index 0 = A), zeros for silence."""
    x = _mono(audio)
    window = round(CHROMA_WINDOW_SECONDS * sample_rate)
    if np.sqrt(np.mean(x**2)) < SILENCE_RMS:
        return np.zeros(12)
    mag = _magnitudes(x, window, window // 2).mean(axis=0)
    freqs = np.fft.rfftfreq(window, 1.0 / sample_rate)
    band = (freqs >= CHROMA_BAND_HZ[0]) & (freqs <= CHROMA_BAND_HZ[1])
    pcs = np.mod(np.round(12.0 * np.log2(freqs[band] / 440.0)).astype(int), 12)
    total = np.bincount(pcs, weights=mag[band], minlength=12)
    count = np.bincount(pcs, minlength=12)
    return total / np.maximum(count, 1)


def rhythm_fit(stem, context, sample_rate: int) -> float:
    """Correlation of the onset envelopes of ``stem`` and ``context`` (module docstring), in [-1, 1]."""
    return _pearson(onset_envelope(stem, sample_rate), onset_envelope(context, sample_rate))


def key_fit(stem, context, sample_rate: int) -> float:
    """Correlation of the pitch-class profiles of ``stem`` and ``context`` (module docstring), in [-1, 1]."""
    return _pearson(pitch_class_profile(stem, sample_rate), pitch_class_profile(context, sample_rate))


def cqt_chroma_fit(a, b, sample_rate: int) -> float:
    """Correlation of the clip-mean chroma of ``a`` and ``b`` by librosa's constant-Q chroma (C1 to C8,
    A440 tuning, 2048-sample hops): an independent check of :func:`key_fit`'s pitch-class profiles. 0 when
    either is silent. Clips shorter than 3 s (the lowest octave's analysis) are padded with silence."""
    import librosa

    profiles = []
    for x in (_mono(a), _mono(b)):
        if np.sqrt(np.mean(x**2)) < SILENCE_RMS:
            return 0.0
        x = np.pad(x.astype(np.float32), (0, max(0, 3 * sample_rate - x.size)))
        chroma = librosa.feature.chroma_cqt(y=x, sr=sample_rate, hop_length=2048, tuning=0.0,
                                            fmin=librosa.note_to_hz("C1"), n_octaves=7)
        profiles.append(chroma.mean(axis=1))
    return _pearson(*profiles)


@dataclass
class ContextFeatures:
    """What the fits need of each context: onset envelopes and pitch-class profiles (one per pair)."""

    onsets: list[np.ndarray]
    pitch_classes: list[np.ndarray]

    def __len__(self) -> int:
        return len(self.onsets)


def context_features(contexts: Sequence, sample_rate: int) -> ContextFeatures:
    """Analyse each context once (an evaluation scores many rows against the same contexts)."""
    return ContextFeatures([onset_envelope(c, sample_rate) for c in contexts],
                           [pitch_class_profile(c, sample_rate) for c in contexts])


def musical_fit(stems: Sequence, contexts: Sequence | ContextFeatures, sample_rate: int) -> dict[str, np.ndarray]:
    """Per-pair ``{"rhythm": [N], "key": [N]}`` for row-aligned ``stems`` and ``contexts`` (audio, or
    their :func:`context_features`)."""
    feats = contexts if isinstance(contexts, ContextFeatures) else context_features(contexts, sample_rate)
    if len(stems) != len(feats):
        raise ValueError(f"{len(stems)} stems for {len(feats)} contexts")
    rhythm = [_pearson(onset_envelope(s, sample_rate), e) for s, e in zip(stems, feats.onsets)]
    key = [_pearson(pitch_class_profile(s, sample_rate), p) for s, p in zip(stems, feats.pitch_classes)]
    return {"rhythm": np.array(rhythm), "key": np.array(key)}
