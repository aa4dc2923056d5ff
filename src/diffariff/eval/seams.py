"""Seams of windowed generation at the window borders of the last generation
(:func:`seam_report_for`); the measure itself is :func:`diffariff.timing.seams.measure_seams`."""

from __future__ import annotations

import numpy as np

from ..errors import InputError
from ..timing.seams import SeamReport, measure_seams

__all__ = ["SeamReport", "measure_seams", "seam_report_for"]


def seam_report_for(acc, audio: np.ndarray) -> SeamReport:
    """:func:`measure_seams` at the window borders of the last windowed generation of ``acc`` (an
    :class:`~diffariff.pipeline.Accompanist`)."""
    bounds = acc.window_boundaries()
    if not bounds:
        raise InputError("the last generation used a single window: there are no seams to measure")
    return measure_seams(audio, bounds)
