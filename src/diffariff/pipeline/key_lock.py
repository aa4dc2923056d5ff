"""Key lock: put a generated stem in the key of its context by transposing it in the codec.

The latent model follows the context's rhythm far better than its harmony: a stem can come out with
well-formed notes in another key. The synth codec makes pitch an axis of its controls
(:mod:`diffariff.codec.transpose`), so a stem can be transposed exactly, before a sample is rendered.
For each generated stem the lock compares the pitch-class profile of what its oscillators play with the
context's profile (:func:`context_profile`: the mean of the same 12-bin chroma the latent model sees),
tries every transposition from -5 to +6 semitones (each pitch class once; the smallest shift wins among
equals) and keeps the one whose rolled profile correlates best with the context's, if it beats no
transposition by at least :data:`MIN_GAIN`. A stem or a context without a clear pitch-class profile (drums,
noise: :func:`tonality`) stays as it is.
"""

from __future__ import annotations

import numpy as np

from ..data.context_chroma import context_chroma

#: Transpositions tried, in semitones (each of the 12 pitch-class rotations once).
SHIFTS = tuple(range(-5, 7))
#: Least gain in profile correlation over no transposition for a stem to be transposed.
MIN_GAIN = 0.1
#: Least tonality (:func:`tonality`) of a stem, and of a context, for the lock to act. Correlation does
#: not see how peaked a profile is: a drum stem's nearly flat profile would still "prefer" some shift.
#: On rendered training songs drum stems measure 0.10-0.23, pitched stems mostly 0.4-0.9, mixes 0.23-0.45.
MIN_STEM_TONALITY = 0.25
MIN_CONTEXT_TONALITY = 0.15


def context_profile(chroma) -> np.ndarray | None:
    """A context's chroma ``[12, T]`` or ``[1, 12, T]`` (:func:`~diffariff.data.context_chroma.context_chroma`)
    -> its pitch-class profile float64 ``[12]``, the mean over the non-silent frames; None when every frame
    is silent."""
    chroma = np.asarray(chroma, dtype=np.float64).reshape(12, -1)
    sounding = chroma.max(axis=0) > 0
    if not sounding.any():
        return None
    return chroma[:, sounding].mean(axis=1)


def _correlation(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a - a.mean(), b - b.mean()
    den = float(np.sqrt((a * a).sum() * (b * b).sum()))
    return float((a * b).sum() / den) if den > 1e-12 else 0.0


def tonality(profile: np.ndarray) -> float:
    """How peaked a pitch-class profile ``[12]`` is: its standard deviation over its mean (0: flat, e.g.
    noise or drums; a few loud classes over quiet ones: 0.4 and more)."""
    profile = np.asarray(profile, dtype=np.float64)
    mean = float(profile.mean())
    return float(profile.std() / mean) if mean > 1e-12 else 0.0


def best_transposition(stem_profile: np.ndarray, context: np.ndarray, *, min_gain: float = MIN_GAIN) -> int:
    """Semitones (in :data:`SHIFTS`) that best fit ``stem_profile`` ``[12]`` to the ``context`` profile
    ``[12]``: transposing by k rolls the profile by k (class c sounds as c + k). 0 unless the best shift
    beats 0 by ``min_gain`` in correlation, and 0 for a stem or context of too little :func:`tonality`;
    ties go to the smaller shift."""
    stem_profile = np.asarray(stem_profile, dtype=np.float64)
    if tonality(stem_profile) < MIN_STEM_TONALITY or tonality(context) < MIN_CONTEXT_TONALITY:
        return 0
    scores = {k: _correlation(np.roll(stem_profile, k), context) for k in SHIFTS}
    best = max(SHIFTS, key=lambda k: (round(scores[k], 9), -abs(k)))
    return best if scores[best] - scores[0] >= float(min_gain) else 0


def choose_transpositions(codec, latents, context_audio: np.ndarray | None, chroma=None,
                          profile=None) -> list[int] | None:
    """One transposition per stem of ``latents`` ``[n, D, T]`` for ``context_audio`` ``[C, N]`` at 48 kHz
    (its ``chroma`` when already computed, on the codec's channels), or None when the lock cannot apply
    (a codec without a pitch axis, no context, a silent one). ``profile``: latents -> the stems' pitch-class
    profiles ``[n, 12]`` (a pitch critic's :meth:`~diffariff.codec.pitch_critic.PitchCritic.profile`;
    None: the codec's ``pitch_class_profile``, which runs its decoder)."""
    if context_audio is None or not getattr(codec, "can_transpose", False):
        return None
    if chroma is None:
        chroma = context_chroma(context_audio, int(codec.config.samples_per_frame), int(codec.config.sample_rate),
                                channels=1)
    target = context_profile(chroma.cpu().numpy() if hasattr(chroma, "cpu") else chroma)
    if target is None:
        return None
    stems = (profile or codec.pitch_class_profile)(latents).double().cpu().numpy()  # [n, 12]
    return [best_transposition(p, target) for p in stems]
