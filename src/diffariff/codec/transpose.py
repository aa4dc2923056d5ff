"""Pitch in the synth codec's control space: pitch-class profiles and exact transposition.

The synth codec's decoder writes the log-levels of an oscillator bank on a fixed grid of
``per_semitone`` steps per semitone from ``midi_lo`` (:mod:`.synth`), row ``r`` sounding MIDI pitch
``midi_lo + r / per_semitone``. Pitch is therefore an axis of the controls: shifting the bank rows by
``k * per_semitone`` transposes everything the oscillators play by ``k`` semitones, with no resampling
and no time-stretch artefacts (the noise bands, i.e. transients, breath and cymbals, are left as they
are), and folding the rows onto the 12 pitch classes gives the stem's pitch-class profile without
rendering a sample. :mod:`diffariff.pipeline.key_lock` uses both to put a generated stem in the key of
its context.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

#: Log level written into rows that a transposition brings in from outside the bank (the decoder's floor).
SILENT_LOG_LEVEL = -18.0


def row_pitch_classes(midi_lo: float, per_semitone: int, rows: int) -> np.ndarray:
    """Pitch class (0 = C .. 11 = B) of each of the bank's ``rows`` oscillators: int64 ``[rows]``; a row
    between two semitones belongs to the nearer one."""
    midi = midi_lo + np.arange(rows, dtype=np.float64) / per_semitone
    return np.mod(np.rint(midi).astype(np.int64), 12)


def bank_profile(bank_log_levels: torch.Tensor, pitch_classes: np.ndarray) -> torch.Tensor:
    """Log levels ``[B, K, T]`` of the oscillator rows -> per-frame pitch-class energies ``[B, 12, T]``
    (power summed over the rows of each class, then each frame divided by its largest class, as
    :func:`diffariff.data.context_chroma.context_chroma` normalises the context's chroma)."""
    power = (2.0 * bank_log_levels.float()).exp()
    index = torch.as_tensor(pitch_classes, device=power.device)
    folded = torch.zeros(power.shape[0], 12, power.shape[-1], device=power.device)
    folded.index_add_(1, index, power)
    return folded / folded.amax(dim=1, keepdim=True).clamp_min(1e-12)


def transpose_rows(bank_log_levels: torch.Tensor, semitones: Sequence[int], per_semitone: int) -> torch.Tensor:
    """Shift each batch item's bank rows ``[B, K, T]`` by ``semitones[b] * per_semitone`` rows (positive:
    up); rows shifted past either end of the bank are dropped, rows shifted in are silent."""
    if len(semitones) != bank_log_levels.shape[0]:
        raise ValueError(f"one transposition per batch item: got {len(semitones)} for {bank_log_levels.shape[0]}")
    out = torch.full_like(bank_log_levels, SILENT_LOG_LEVEL)
    rows = bank_log_levels.shape[1]
    for b, k in enumerate(semitones):
        shift = int(k) * int(per_semitone)
        if shift == 0:
            out[b] = bank_log_levels[b]
        elif 0 < shift < rows:
            out[b, shift:] = bank_log_levels[b, : rows - shift]
        elif -rows < shift < 0:
            out[b, : rows + shift] = bank_log_levels[b, -shift:]
    return out
