"""Argument checks shared by the command-line front ends (``generate``, ``eval generation``); light
imports only, so that ``--help`` stays fast."""

from __future__ import annotations

import math
from collections.abc import Sequence

from ..errors import InputError


def guidance_interval(values: Sequence[float] | None) -> tuple[float, float] | None:
    """``--guidance-interval LO HI`` -> ``(lo, hi)`` (noise levels, latent units), or None when not given.

    InputError unless ``0 <= LO < HI`` and both are finite."""
    if values is None:
        return None
    lo, hi = (float(v) for v in values)
    if not (math.isfinite(lo) and math.isfinite(hi) and 0.0 <= lo < hi):
        raise InputError(f"--guidance-interval needs 0 <= LO < HI (noise levels), got {lo:g} {hi:g}")
    return lo, hi
