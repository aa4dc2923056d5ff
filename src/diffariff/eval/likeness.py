"""How alike the stems made for different contexts are: the context-sensitivity measure.

A model that learned one template per prompt makes nearly the same stem whatever the context; a model that
responds to its context makes stems that differ as much as the real stems of those contexts do. For every
pair of distinct stems in a batch, the Pearson correlation of their log-mel spectrograms (mono, 64 bands,
20 Hz - 16 kHz, 2048-sample hop at 48 kHz, in dB re the stem's own peak with an 80 dB floor) over
their common length; a stem's value is its mean over the other stems of the batch. Two identical stems give 1;
stems of unrelated music give values near the correlation of their average spectral shapes (0.3-0.5 for
real stems of one corpus). Read a row against the real stems' row: lower or equal is the goal.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

N_MELS = 64
HOP = 2048
N_FFT = 4096
FLOOR_DB = 80.0


def log_mel(stem: np.ndarray, sample_rate: int) -> np.ndarray | None:
    """Log-mel spectrogram ``[N_MELS, frames]`` (dB re the stem's own peak) of a ``[C, N]`` / ``[N]``
    stem, or None for a silent stem."""
    import librosa

    mono = np.asarray(stem, dtype=np.float32)
    mono = mono.mean(axis=0) if mono.ndim == 2 else mono
    power = librosa.feature.melspectrogram(y=mono, sr=sample_rate, n_fft=N_FFT, hop_length=HOP, n_mels=N_MELS,
                                           fmin=20.0, fmax=min(16_000.0, sample_rate / 2))
    if not np.any(power > 0):
        return None
    return librosa.power_to_db(power, ref=np.max, top_db=FLOOR_DB)


def likeness(stems: Sequence[np.ndarray], sample_rate: int) -> np.ndarray:
    """Per stem ``[n]``: mean log-mel correlation with every other stem of ``stems`` (NaN for a silent
    stem, or when no other stem has sound)."""
    specs = [log_mel(s, sample_rate) for s in stems]
    out = np.full(len(specs), np.nan)
    for i, a in enumerate(specs):
        if a is None:
            continue
        values = []
        for j, b in enumerate(specs):
            if j == i or b is None:
                continue
            t = min(a.shape[1], b.shape[1])
            x, y = a[:, :t].ravel(), b[:, :t].ravel()
            if x.std() > 0 and y.std() > 0:
                values.append(float(np.corrcoef(x, y)[0, 1]))
        if values:
            out[i] = float(np.mean(values))
    return out
