"""Seams in audio: is the change at given border times (window borders, a loop point) larger than the
ordinary change from one STFT frame to the next? Audio is ``[C, N]`` or ``[N]`` float at ``sample_rate``
Hz; border times are in seconds. Used by the loops of bar-aware editing and by the evaluation of windowed
generation."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ..errors import InputError

SAMPLE_RATE = 48_000


@dataclasses.dataclass
class SeamReport:
    """Discontinuity at window borders vs elsewhere: spectral flux (L2 distance of consecutive log
    magnitude frames) and level jumps (dB between consecutive frames). ``*_ratio`` = value at the
    borders / median over all frames (about 1: seams are no worse than ordinary frame changes)."""

    boundary_flux: float
    typical_flux: float
    flux_ratio: float
    boundary_jump_db: float
    typical_jump_db: float
    jump_ratio: float


def measure_seams(audio: np.ndarray, boundaries_s: Sequence[float], sample_rate: int = SAMPLE_RATE,
                  n_fft: int = 2048, hop: int = 512) -> SeamReport:
    """Seam measurement for ``audio`` [C, N] (or [N]) at the given border times (seconds): the largest
    spectral flux / level jump among the frame transitions within one hop of each border, averaged
    over borders, against the median transition of the whole clip (see :class:`SeamReport`)."""
    x = np.atleast_2d(np.asarray(audio, dtype=np.float64)).mean(axis=0)
    if x.shape[0] < n_fft + 2 * hop:
        raise InputError("audio too short to measure seams")
    framed = sliding_window_view(x, n_fft)[::hop]  # [frames, n_fft], frames = 1 + (N - n_fft) // hop
    frames = framed.shape[0]
    spec = np.abs(np.fft.rfft(framed * np.hanning(n_fft), axis=1))
    logmag = np.log1p(spec / (spec.mean() + 1e-12))
    flux = np.linalg.norm(np.diff(logmag, axis=0), axis=1)  # transition t -> t+1 at sample (t+1) hop + n/2
    level = 10 * np.log10(np.mean(framed**2, axis=1) + 1e-10)
    jump = np.abs(np.diff(level))
    centres = (np.arange(1, frames) * hop + n_fft / 2) / sample_rate
    bf, bj = [], []
    for b in boundaries_s:
        near = np.abs(centres - b) <= 1.5 * hop / sample_rate
        if near.any():
            bf.append(flux[near].max())
            bj.append(jump[near].max())
    if not bf:
        raise InputError("no seam boundary falls inside the audio")
    tf, tj = float(np.median(flux)), float(np.median(jump))
    bfm, bjm = float(np.mean(bf)), float(np.mean(bj))
    return SeamReport(bfm, tf, bfm / max(tf, 1e-12), bjm, tj, bjm / max(tj, 1e-12))
