"""Bar loops and bar regions in audio arrays (float32 ``[..., N]`` at one sample rate).

* :func:`make_loop`: a loop of ``length`` samples from a generated segment that runs ``fade`` samples
  or more past the loop's end: the loop's first ``fade`` samples crossfade (equal power) from that
  continuation into the segment's own start, so the end of the loop flows into its start.
* :func:`tile`: repeat a loop at exact (fractional) bar positions over a span of a longer array.
* :func:`place_region`: a generated region pasted into silence with short raised-cosine fades.
* :func:`loop_seam_report`: the spectral-flux jump at the loop point of a tiled loop against the median
  flux (:func:`~diffariff.timing.seams.measure_seams`), next to the same ratio at the ordinary downbeats
  inside the generated segment (where a musical onset is expected anyway).
"""

from __future__ import annotations

import numpy as np

from ..errors import InputError
from .seams import measure_seams


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


def check_loop_bars(loop_bars) -> int:
    """``loop_bars`` as a whole number of bars >= 1, else InputError."""
    if isinstance(loop_bars, bool) or int(loop_bars) != loop_bars or int(loop_bars) < 1:
        raise InputError(f"--loop-bars must be a whole number of bars >= 1, got {loop_bars}")
    return int(loop_bars)


def tiled_blocks(loop: np.ndarray, total: int, start: int, end: int, period: float, block: int):
    """:func:`tile` as float32 blocks ``[..., <= block]`` of the ``total`` samples: the same samples, with
    no whole-length array."""
    n = loop.shape[-1]
    for k0 in range(0, int(total), int(block)):
        k1 = min(int(total), k0 + int(block))
        out = np.zeros(loop.shape[:-1] + (k1 - k0,), dtype=np.float32)
        j = max(0, int(np.floor((k0 - n - start) / period)) - 1)  # the first repetition that can reach k0
        while True:
            a = int(round(start + j * period))
            if a >= end or a >= k1:
                break
            b = min(end, a + n)
            lo, hi = max(a, k0), min(b, k1)
            if lo < hi:
                out[..., lo - k0:hi - k0] = loop[..., lo - a:hi - a]
            j += 1
        yield out


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


def loop_seam_report(loop: np.ndarray, segment: np.ndarray, downbeats_s: list[float], sample_rate: int) -> dict:
    """Seam of ``loop`` [C, L]: it is tiled three times and the spectral flux at the two loop points is
    compared with the median flux (``seam_flux_ratio``; about 1: no jump; ``seam_jump_db`` the level
    jump there). ``downbeat_flux_ratio`` is the same measure at ``downbeats_s`` (seconds) inside
    ``segment`` [C, M] (the generation before looping), the size of an ordinary bar line; None when
    there is none."""
    L = loop.shape[-1]
    tiled = np.concatenate([loop, loop, loop], axis=-1)
    seam = measure_seams(tiled, [L / sample_rate, 2 * L / sample_rate], sample_rate)
    inner = [t for t in downbeats_s if 0.05 < t < segment.shape[-1] / sample_rate - 0.05]
    ref = measure_seams(segment, inner, sample_rate).flux_ratio if inner else None
    return {"seam_flux_ratio": round(seam.flux_ratio, 3), "seam_jump_db": round(seam.boundary_jump_db, 2),
            "downbeat_flux_ratio": None if ref is None else round(float(ref), 3)}
