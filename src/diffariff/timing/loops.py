"""Bar loops and bar regions in audio arrays (float32 ``[..., N]`` at one sample rate).

* :func:`make_loop`: a loop of ``length`` samples from a generated segment that runs ``fade`` samples
  or more past the loop's end: the loop's first ``fade`` samples crossfade (equal power) from that
  continuation into the segment's own start, so the end of the loop flows into its start.
* :func:`tile`: repeat a loop at exact (fractional) bar positions over a span of a longer array.
* :func:`place_region`: a generated region pasted into silence with short raised-cosine fades.
* :func:`loop_seam_report`: the spectral-flux jump at the loop point of a tiled loop against the median
  flux (:func:`seam_measure`, the measure of :func:`diffariff.eval.seams.measure_seams`), next to the same ratio at the ordinary downbeats
  inside the generated segment (where a musical onset is expected anyway).
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ..errors import InputError


def _ramp(n: int) -> np.ndarray:
    """Raised-cosine ramp 0 -> 1 over ``n`` samples (float64 [n])."""
    return 0.5 - 0.5 * np.cos(np.pi * (np.arange(n) + 0.5) / max(n, 1))


def make_loop(segment: np.ndarray, length: int, fade: int) -> np.ndarray:
    """``segment`` [..., M] (M >= length + fade) -> loop [..., length]: ``segment[..., :length]`` whose
    first ``fade`` samples crossfade from ``segment[..., length:length + fade]`` (the continuation past
    the loop's end) into ``segment[..., :fade]`` with equal-power ramps."""
    if length < 1 or fade < 0 or segment.shape[-1] < length + fade:
        raise InputError(f"a loop of {length} samples with a {fade}-sample crossfade needs {length + fade} "
                         f"samples, got {segment.shape[-1]}")
    out = np.array(segment[..., :length], dtype=np.float64)
    if fade:
        r = _ramp(fade)
        w_in, w_out = np.sin(0.5 * np.pi * r), np.cos(0.5 * np.pi * r)
        out[..., :fade] = segment[..., :fade] * w_in + segment[..., length:length + fade] * w_out
    return out.astype(np.float32)


def tile(loop: np.ndarray, total: int, start: int, end: int, period: float) -> np.ndarray:
    """Silence [..., total] with ``loop`` [..., L] repeated from sample ``start`` every ``period``
    samples (fractional: each repetition starts at the rounded exact position) up to ``end``; the last
    repetition is cut at ``end``, and a repetition overwrites the overlap of the one before."""
    out = np.zeros(loop.shape[:-1] + (int(total),), dtype=np.float32)
    k = 0
    while True:
        a = int(round(start + k * period))
        if a >= end:
            break
        b = min(end, a + loop.shape[-1])
        out[..., a:b] = loop[..., : b - a]
        k += 1
    return out


def place_region(region: np.ndarray, total: int, start: int, fade: int) -> np.ndarray:
    """Silence [..., total] with ``region`` [..., R] at ``start``, faded in and out over ``fade``
    samples (raised cosine, inside the region) so that its edges do not click."""
    out = np.zeros(region.shape[:-1] + (int(total),), dtype=np.float32)
    r = np.array(region, dtype=np.float64)
    n = r.shape[-1]
    f = min(int(fade), n // 2)
    if f > 0:
        ramp = _ramp(f)
        r[..., :f] *= ramp
        r[..., n - f:] *= ramp[::-1]
    out[..., start:start + n] = r[..., : max(0, min(n, total - start))]
    return out


def seam_measure(audio: np.ndarray, boundaries_s: list[float], sample_rate: int, n_fft: int = 2048,
                 hop: int = 512) -> tuple[float, float]:
    """(flux ratio, level jump in dB) at the border times ``boundaries_s`` (seconds) of ``audio`` [C, N]
    or [N] at ``sample_rate`` Hz: the largest spectral flux (L2 distance of consecutive log-magnitude
    frames) among the frame transitions within 1.5 hops of each border, averaged over the borders, over
    the median flux of the clip (about 1: no jump), and the mean largest frame-to-frame level change
    (dB) there. The same measure as the evaluation's seam metric, kept here so the analysis layer does
    not import the evaluation. InputError for audio shorter than a few frames or no border inside."""
    x = np.atleast_2d(np.asarray(audio, dtype=np.float64)).mean(axis=0)
    if x.shape[0] < n_fft + 2 * hop:
        raise InputError("audio too short to measure seams")
    framed = sliding_window_view(x, n_fft)[::hop]
    spec = np.abs(np.fft.rfft(framed * np.hanning(n_fft), axis=1))
    logmag = np.log1p(spec / (spec.mean() + 1e-12))
    flux = np.linalg.norm(np.diff(logmag, axis=0), axis=1)  # transition t -> t+1 at sample (t+1) hop + n/2
    jump = np.abs(np.diff(10 * np.log10(np.mean(framed**2, axis=1) + 1e-10)))
    centres = (np.arange(1, framed.shape[0]) * hop + n_fft / 2) / sample_rate
    bf, bj = [], []
    for b in boundaries_s:
        near = np.abs(centres - b) <= 1.5 * hop / sample_rate
        if near.any():
            bf.append(flux[near].max())
            bj.append(jump[near].max())
    if not bf:
        raise InputError("no seam boundary falls inside the audio")
    return float(np.mean(bf)) / max(float(np.median(flux)), 1e-12), float(np.mean(bj))


def loop_seam_report(loop: np.ndarray, segment: np.ndarray, downbeats_s: list[float], sample_rate: int) -> dict:
    """Seam of ``loop`` [C, L]: it is tiled three times and the spectral flux at the two loop points is
    compared with the median flux (``seam_flux_ratio``; about 1: no jump; ``seam_jump_db`` the level
    jump there). ``downbeat_flux_ratio`` is the same measure at ``downbeats_s`` (seconds) inside
    ``segment`` [C, M] (the generation before looping), the size of an ordinary bar line; None when
    there is none."""
    L = loop.shape[-1]
    tiled = np.concatenate([loop, loop, loop], axis=-1)
    seam_ratio, seam_jump = seam_measure(tiled, [L / sample_rate, 2 * L / sample_rate], sample_rate)
    inner = [t for t in downbeats_s if 0.05 < t < segment.shape[-1] / sample_rate - 0.05]
    ref = seam_measure(segment, inner, sample_rate)[0] if inner else None
    return {"seam_flux_ratio": round(seam_ratio, 3), "seam_jump_db": round(seam_jump, 2),
            "downbeat_flux_ratio": None if ref is None else round(float(ref), 3)}
