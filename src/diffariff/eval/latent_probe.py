"""How much of the notes a codec's latents hold, linearly (``diffariff eval codec --latent-probe N``).

A latent model can only play in key if it can find the notes in the latents. This probe measures
that directly, independent of the decoder: a ridge regression from each latent frame (64 channels,
4096 samples) to that frame's **pitch-class profile** (12 bins, the power of the 8192-point semitone
bands of :func:`~diffariff.codec.losses.semitone_frame_energies` folded onto pitch classes, summing
to 1), fitted on ``N`` windows of pitched stems of the training split and scored on as many windows
as the codec evaluation has, drawn from the held-out songs (:func:`pitched_windows`): the mean Pearson
correlation of predicted and true profiles over held-out frames with audible pitched content. The same regression from 128 log-mel bands of the input
audio, pooled to the latent frame rate, is the reference: features of the same rate and similar size
that are known to carry pitch. Drum stems and silent frames are left out.

Units: 48 kHz mono (channel mean); one row per latent frame.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from ..codec.losses import semitone_frame_energies
from ..errors import InputError
from .reconstruction import log_mel

#: Ridge penalty (on standardised features) of the probe.
RIDGE = 1.0
#: A frame counts when its band power is above this fraction of the loudest frame of its window (-40 dB).
AUDIBLE_FRACTION = 1e-4


def pitch_class_frames(audio: np.ndarray, frame_samples: int, sample_rate: int = 48_000) -> np.ndarray:
    """Mono ``[N]`` -> ``float64 [N // frame_samples, 13]``: per frame, the 12 pitch-class powers (index 0 =
    A, as in :func:`~diffariff.eval.musical_fit.pitch_class_profile`) and, last, the total band power."""
    energies = semitone_frame_energies(torch.from_numpy(np.asarray(audio, np.float32))[None], frame_samples,
                                       sample_rate)[0].double().numpy()  # [bands, T]
    classes = (np.arange(energies.shape[0]) + 36 - 69) % 12  # band 0 is C2 (MIDI 36); A4 is MIDI 69
    folded = np.stack([energies[classes == c].sum(axis=0) for c in range(12)], axis=1)
    return np.concatenate([folded, energies.sum(axis=0)[:, None]], axis=1)


def pitched_windows(songs, n: int, seconds: float, seed: int, sample_rate: int = 48_000) -> list[np.ndarray]:
    """``n`` mono windows ``float32 [round(seconds * sample_rate)]`` of pitched (non-drum) stems, audible
    (RMS above -60 dBFS): songs in turn, each song's pitched stems in turn, a seeded start per window."""
    rng = np.random.default_rng(int(seed))
    pitched = [[name for name in sorted(song.stems) if song.stems[name].role != "drums"] for song in songs]
    order = [(song, names[k]) for k in range(max(map(len, pitched), default=0))
             for song, names in zip(songs, pitched) if k < len(names)]  # every song's k-th stem, then k + 1
    out = []
    for song, name in order * 4:  # up to 4 tries per stem
        if len(out) >= n:
            break
        span = song.duration_seconds() - seconds
        if span < 0:
            continue
        x = song.load_stem(name, sample_rate, 1, float(rng.uniform(0.0, span)), seconds)[0]
        if np.sqrt(np.mean(x.astype(np.float64) ** 2)) > 1e-3:
            out.append(x)
    return out


def _features(codec, windows: Sequence[np.ndarray]) -> tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]]:
    """Per mono window: latents ``[T, 64]``, pooled log-mel ``[T, 128]``, pitch classes ``[T, 13]``."""
    spf, sr = codec.config.samples_per_frame, codec.config.sample_rate
    lat, mel, pcs = [], [], []
    for mono in windows:
        with torch.no_grad():
            z = codec.encode(torch.from_numpy(mono[None, None].astype(np.float32)))[0].T.double().numpy()
            lm = log_mel(torch.from_numpy(mono[None].astype(np.float32)), sr)[0].T.double().numpy()  # [frames, 128]
        y = pitch_class_frames(mono, spf, sr)
        t = min(len(z), len(y))
        edges = np.linspace(0, lm.shape[0], t + 1).astype(int)
        pooled = np.stack([lm[edges[i]: max(edges[i + 1], edges[i] + 1)].mean(axis=0) for i in range(t)])
        lat.append(z[:t])
        mel.append(pooled)
        pcs.append(y[:t])
    return lat, mel, pcs


def _ridge_score(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray) -> float:
    """Fit profiles (rows summing to 1) on standardised ``x_train``; mean row-wise Pearson r on the test set."""
    mu, sd = x_train.mean(axis=0), x_train.std(axis=0) + 1e-6
    a = np.c_[(x_train - mu) / sd, np.ones(len(x_train))]
    w = np.linalg.solve(a.T @ a + RIDGE * np.eye(a.shape[1]), a.T @ y_train)
    pred = np.c_[(x_test - mu) / sd, np.ones(len(x_test))] @ w
    p = pred - pred.mean(axis=1, keepdims=True)
    q = y_test - y_test.mean(axis=1, keepdims=True)
    den = np.sqrt((p * p).sum(axis=1) * (q * q).sum(axis=1))
    keep = den > 1e-12
    return float(((p * q).sum(axis=1)[keep] / den[keep]).mean())


def _select(pcs: list[np.ndarray], *features: list[np.ndarray]) -> tuple[np.ndarray, ...]:
    """Stack frames; keep the audible ones (relative to the loudest frame of their own window, so a quiet
    stem counts as much as a loud one); profiles normalised to sum 1."""
    keep = np.concatenate([y[:, 12] > max(AUDIBLE_FRACTION * y[:, 12].max(), 1e-12) for y in pcs])
    y = np.concatenate(pcs)[keep]
    profiles = y[:, :12] / np.maximum(y[:, :12].sum(axis=1, keepdims=True), 1e-12)
    return (profiles, *(np.concatenate(f)[keep] for f in features))


def latent_note_probe(codec, train_songs, test_songs, *, n_train: int, n_test: int, seconds: float,
                      seed: int = 0) -> dict:
    """Held-out correlation of the pitch-class probe from ``codec``'s latents and from log-mel bands (see
    the module docstring): ``{"latents", "log_mel", "train_frames", "test_frames"}``."""
    train = _features(codec, pitched_windows(train_songs, n_train, seconds, seed + 1, codec.config.sample_rate))
    test = _features(codec, pitched_windows(test_songs, n_test, seconds, seed, codec.config.sample_rate))
    if not train[2] or not test[2]:
        raise InputError("--latent-probe: no audible pitched (non-drum) stem windows in the training or held-out songs")
    y_tr, z_tr, m_tr = _select(train[2], train[0], train[1])
    y_te, z_te, m_te = _select(test[2], test[0], test[1])
    return {"latents": _ridge_score(z_tr, y_tr, z_te, y_te), "log_mel": _ridge_score(m_tr, y_tr, m_te, y_te),
            "train_frames": int(len(y_tr)), "test_frames": int(len(y_te)), "n_train": int(n_train),
            "n_test": int(n_test), "ridge": RIDGE}
