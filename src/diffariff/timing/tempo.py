"""Tempo, beats, meter and downbeats of a context, from its audio alone.

Pipeline (:func:`analyze_audio`), on the mono mix resampled to :data:`ANALYSIS_SR` (22.05 kHz) with
hops of :data:`HOP` samples (11.6 ms frames):

1. :func:`~diffariff.timing.beats.onset_features` (:mod:`diffariff.timing.beats`): librosa's onset
   strength (spectral flux of the log-mel spectrogram) over all bands and over the bands below 200 Hz
   (kick and bass), and a chromagram.
2. :func:`~diffariff.timing.beats.candidate_grids`: librosa's dynamic-programming beat tracker run at
   several metrical levels (librosa's tempo estimate times 1, 2, 1/2, 3/2, 2/3, 3, 1/3); a
   least-squares line through each level's tracked beats (beat index -> time, outliers dropped) gives
   one exact period and phase: the regular beat grids a DAW session would use.
3. :func:`~diffariff.timing.meter.choose_bars` (:mod:`diffariff.timing.meter`): on every grid,
   beat-synchronous accent features (onset, low-band onset, chroma change) are scored over candidate
   bar lengths and phases; the bar length, the subdivision of the beat (two or three), the grouping
   inside the bar, the onsets on the notated beats, the metrical-level evidence of
   :mod:`diffariff.timing.octave` and a tempo prior per meter (weights fitted on rendered corpus songs)
   decide the tempo in quarter notes per minute (the one with the most probability over all
   hypotheses), then the meter (4/4, 3/4 or 6/8) and the downbeats.
4. :func:`~diffariff.timing.beats.refine_grid`: without a given tempo, the period (+-3 %) and phase
   (+-30 ms) of the chosen notated beats are fine-tuned to the onsets of the whole audio.

Overrides (``bpm``, ``meter``, ``downbeat_s``) constrain the search instead of replacing its result
blindly: with a given meter and tempo the phase is still found from the audio, unless it is given too.
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np

from ..audio_spool import is_spooled
from ..errors import InputError
from .bars import BarGrid, check_bpm, parse_meter
from .beats import (
    candidate_grids,
    onset_features,
    refine_grid,
    to_mono_analysis,
)
from .meter import choose_bars

__all__ = ["analyze", "analyze_audio"]

#: Shortest audio the analysis accepts (seconds): a few bars at the slowest tempi.
MIN_ANALYSIS_SECONDS = 2.0


def analyze_audio(audio: np.ndarray, sample_rate: int, *, bpm: float | None = None,
                  meter: tuple[int, int] | str | None = None, downbeat_s: float | None = None) -> BarGrid:
    """The :class:`~diffariff.timing.bars.BarGrid` of ``audio`` ``[C, N]`` at ``sample_rate`` Hz (an array or
    a :class:`~diffariff.audio_spool.SpooledAudio`: the analysis holds no whole-length copy at the input rate).

    ``bpm`` (quarter notes per minute), ``meter`` and ``downbeat_s`` (first downbeat, seconds) fix
    those values; the others are detected under that constraint. All three given: no analysis at all.
    InputError for bad overrides or audio shorter than :data:`MIN_ANALYSIS_SECONDS`."""
    arr = audio if is_spooled(audio) else np.asarray(audio)  # a spooled one is read a block at a time
    duration = arr.shape[-1] / float(sample_rate)
    bpm = None if bpm is None else check_bpm(bpm)
    meter = None if meter is None else parse_meter(meter)
    if downbeat_s is not None and not 0.0 <= float(downbeat_s) < duration:
        raise InputError(f"--downbeat {downbeat_s} is not inside the audio (0-{duration:.2f} s)")
    if bpm is not None and meter is not None and downbeat_s is not None:
        return BarGrid.regular(bpm, meter, float(downbeat_s), duration)
    if duration < MIN_ANALYSIS_SECONDS:
        raise InputError(f"the audio is {duration:.2f} s long; tempo analysis needs at least "
                         f"{MIN_ANALYSIS_SECONDS:g} s")
    feats = onset_features(to_mono_analysis(arr, sample_rate))
    if not np.any(feats.onset > 0):
        raise InputError("the audio has no onsets (silence?): give --bpm, --meter and --downbeat")
    if bpm is None:
        grids = candidate_grids(feats)
    else:
        grids = candidate_grids(feats, _beat_hint(bpm, meter), factors=(1.0,))
    choice = choose_bars(feats, grids, bpm=bpm, meter=meter, downbeat_s=downbeat_s)
    tempo, bar, downbeat = choice.bpm, choice.bar_seconds, choice.downbeat_s
    if bpm is None:  # the chosen grid's notated beats, fine-tuned on the onsets of the whole audio
        beat = 60.0 / tempo * 4.0 / choice.meter[1]
        period, anchor = refine_grid(feats, beat, downbeat)
        tempo, bar = tempo * beat / period, bar * period / beat
        downbeat = anchor if downbeat_s is None else downbeat
    first = _first_downbeat(downbeat, bar)
    grid = BarGrid.regular(tempo, choice.meter, first, duration)
    return dataclasses.replace(grid, beat_times=tuple(float(t) for t in choice.grid.beats_s))


def _beat_hint(bpm: float, meter: tuple[int, int] | None) -> float:
    """The beat rate to track for a known quarter-note tempo: the dotted quarter in 6/8-like meters."""
    if meter is not None and meter[1] == 8 and meter[0] % 3 == 0:
        return bpm / 1.5
    return bpm


def _first_downbeat(t: float, bar: float) -> float:
    """The earliest downbeat at or after 0 of a grid through ``t``; one within 80 ms before a later
    bar line snaps to 0 (the music starts on a downbeat a few frames late)."""
    phase = t % bar
    return 0.0 if bar - phase < 0.08 else float(phase)


def analyze(path: str | os.PathLike, **overrides) -> BarGrid:
    """:func:`analyze_audio` of an audio file (read at its own rate)."""
    from ..audio import load_audio

    audio, sr = load_audio(path)
    return analyze_audio(audio, sr, **overrides)
