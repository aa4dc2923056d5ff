"""Dropouts of long stems: the stem's level per generation window (and per second) against the context's.

Windowed generation can leave a window near-silent while the context plays on (issue 37: 70-72 s of a
3-min orchestral context, -42 dBFS for 10 s from the 5-step model). :func:`window_levels` gives, per
window of the last generation, the stem's RMS level minus the context's (dB; about -3 for a stem that
sits under its mix, far below for a hole), and :func:`dropout_runs` finds the runs of ``hop``-second
blocks where the stem is ``gap_db`` or more below the context's level while the context is audible.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

SAMPLE_RATE = 48_000
FLOOR_DB = -120.0


def _db(x: np.ndarray) -> float:
    rms = float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) if x.size else 0.0
    return 20.0 * np.log10(rms) if rms > 1e-6 else FLOOR_DB


def window_levels(stem: np.ndarray, context: np.ndarray, windows: Sequence[tuple[float, float]]) -> list[dict]:
    """Per window (start, end seconds): ``stem_db`` and ``context_db`` (RMS dBFS of ``[C, N]`` 48 kHz
    audio) and ``relative_db`` = stem - context."""
    rows = []
    for a, b in windows:
        lo, hi = int(round(a * SAMPLE_RATE)), int(round(b * SAMPLE_RATE))
        s, c = _db(stem[..., lo:hi]), _db(context[..., lo:hi])
        rows.append({"start_s": float(a), "end_s": float(b), "stem_db": s, "context_db": c, "relative_db": s - c})
    return rows


def dropout_runs(stem: np.ndarray, context: np.ndarray, *, hop: float = 1.0, gap_db: float = 25.0,
                 context_floor_db: float = -50.0) -> dict:
    """Runs of ``hop``-s blocks where the stem's level is ``gap_db`` or more below its own median level
    relative to the context while the context is above ``context_floor_db`` dBFS. -> {"runs": [(start
    s, end s)], "seconds": total, "longest_s", "median_relative_db", "min_relative_db"}."""
    n = min(stem.shape[-1], context.shape[-1])
    step = int(round(hop * SAMPLE_RATE))
    rel, audible = [], []
    for lo in range(0, n - step + 1, step):
        s, c = _db(stem[..., lo:lo + step]), _db(context[..., lo:lo + step])
        rel.append(s - c)
        audible.append(c > context_floor_db)
    rel_a, aud = np.array(rel), np.array(audible, dtype=bool)
    median = float(np.median(rel_a[aud])) if aud.any() else 0.0
    hole = aud & (rel_a < median - gap_db)
    runs, start = [], None
    for j, h in enumerate(list(hole) + [False]):
        if h and start is None:
            start = j
        elif not h and start is not None:
            runs.append((start * hop, j * hop))
            start = None
    longest = max((b - a for a, b in runs), default=0.0)
    return {"runs": runs, "seconds": float(hole.sum() * hop), "longest_s": float(longest),
            "median_relative_db": median, "min_relative_db": float(rel_a[aud].min()) if aud.any() else 0.0}
