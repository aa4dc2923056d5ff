"""Tempo, beats, meter and downbeats of a context, from its audio alone.

Pipeline (:func:`analyze_audio`), on the mono mix resampled to :data:`ANALYSIS_SR` (22.05 kHz) with
hops of :data:`HOP` samples (11.6 ms frames):

1. :func:`onset_features`: librosa's onset strength (spectral flux of the log-mel spectrogram) over
   all bands and over the bands below 200 Hz (kick and bass), and a chromagram.
2. :func:`track_beats`: librosa's tempo estimate and dynamic-programming beat tracker give the beat
   level; a least-squares line through the tracked beats (beat index -> time, outliers dropped) gives
   one exact period and phase: the regular beat grid a DAW session would use.
3. :func:`~diffariff.timing.meter.choose_bars` (:mod:`diffariff.timing.meter`): beat-synchronous
   accent features (onset, low-band onset, chroma change) are scored over candidate bar lengths and
   phases; the bar length, the subdivision of the beat (two or three) and the grouping inside the bar
   decide the meter (4/4, 3/4 or 6/8) and the tempo in quarter notes per minute.

Overrides (``bpm``, ``meter``, ``downbeat_s``) constrain the search instead of replacing its result
blindly: with a given meter and tempo the phase is still found from the audio, unless it is given too.
"""

from __future__ import annotations

import dataclasses
import os
import warnings

import numpy as np

from ..errors import InputError
from .bars import BarGrid, check_bpm, parse_meter

ANALYSIS_SR = 22_050
HOP = 256
#: Mel bands of the onset features and the upper edge of the low band (Hz).
N_MELS = 96
LOW_HZ = 200.0
#: Shortest audio the analysis accepts (seconds): a few bars at the slowest tempi.
MIN_ANALYSIS_SECONDS = 2.0


@dataclasses.dataclass
class OnsetFeatures:
    """Frame-rate features of a mix: ``onset`` and ``low_onset`` [T] (onset strength, all bands and
    below 200 Hz), ``chroma`` [12, T] (energy-normalised), at ``fps`` frames per second; ``duration_s``
    the length of the audio."""

    onset: np.ndarray
    low_onset: np.ndarray
    chroma: np.ndarray
    fps: float
    duration_s: float

    def times(self) -> np.ndarray:
        return np.arange(len(self.onset)) / self.fps


@dataclasses.dataclass
class BeatGrid:
    """A regular beat grid fitted to tracked beats: ``period_s`` and ``phase_s`` (a beat at phase +
    k x period), the librosa tempo estimate ``librosa_bpm`` and the tracked ``beats_s``."""

    period_s: float
    phase_s: float
    librosa_bpm: float
    beats_s: np.ndarray


def to_mono_analysis(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """``[C, N]`` / ``[N]`` audio -> float32 mono [M] at :data:`ANALYSIS_SR` (soxr)."""
    from ..audio import resample

    arr = np.asarray(audio, dtype=np.float32)
    mono = arr.mean(axis=0) if arr.ndim == 2 else arr
    return resample(mono[None], int(sample_rate), ANALYSIS_SR)[0]


def onset_features(y: np.ndarray) -> OnsetFeatures:
    """Onset strength (all bands, low band) and chroma of mono ``y`` [M] at :data:`ANALYSIS_SR`."""
    import librosa

    mel = librosa.feature.melspectrogram(y=y, sr=ANALYSIS_SR, n_fft=2048, hop_length=HOP, n_mels=N_MELS)
    mel_db = librosa.power_to_db(mel, ref=np.max)
    onset = librosa.onset.onset_strength(S=mel_db, sr=ANALYSIS_SR, hop_length=HOP, center=False)
    freqs = librosa.mel_frequencies(n_mels=N_MELS, fmax=ANALYSIS_SR / 2)
    low = max(2, int(np.sum(freqs < LOW_HZ)))
    low_onset = librosa.onset.onset_strength(S=mel_db[:low], sr=ANALYSIS_SR, hop_length=HOP, center=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tuning estimation warns on silent stretches
        chroma = librosa.feature.chroma_stft(y=y, sr=ANALYSIS_SR, n_fft=4096, hop_length=HOP, tuning=0.0)
    n = min(len(onset), len(low_onset), chroma.shape[1])
    return OnsetFeatures(onset[:n], low_onset[:n], chroma[:, :n], ANALYSIS_SR / HOP, len(y) / ANALYSIS_SR)


def fit_regular_grid(beats_s: np.ndarray, period_hint: float) -> tuple[float, float]:
    """(period, phase) of the line through ``beats_s`` [K] (seconds), each beat given the index its
    distance from the previous one implies; beats more than a quarter period off the line are dropped
    and the line fitted again."""
    b = np.asarray(beats_s, dtype=np.float64)
    if len(b) < 3:
        return float(period_hint), float(b[0] % period_hint) if len(b) else 0.0
    steps = np.maximum(1, np.round(np.diff(b) / period_hint))
    idx = np.concatenate([[0.0], np.cumsum(steps)])
    keep = np.ones(len(b), dtype=bool)
    period, phase = float(period_hint), float(b[0])
    for _ in range(3):
        period, phase = np.polyfit(idx[keep], b[keep], 1)
        resid = np.abs(b - (phase + period * idx))
        new = resid <= period / 4
        if new.sum() < 3 or np.array_equal(new, keep):
            break
        keep = new
    return float(period), float(phase % period)


def track_beats(feats: OnsetFeatures, bpm_hint: float | None = None) -> BeatGrid:
    """librosa's tempo and beat tracking on ``feats.onset``, then :func:`fit_regular_grid`. ``bpm_hint``
    (beats per minute of the level to track) replaces librosa's tempo estimate."""
    import librosa

    env = feats.onset
    if bpm_hint is None:
        tempo = float(np.atleast_1d(librosa.feature.tempo(onset_envelope=env, sr=ANALYSIS_SR, hop_length=HOP,
                                                          start_bpm=110.0))[0])
    else:
        tempo = float(bpm_hint)
    _, beats = librosa.beat.beat_track(onset_envelope=env, sr=ANALYSIS_SR, hop_length=HOP, bpm=tempo,
                                       tightness=400, trim=False, units="time")
    beats = np.asarray(beats, dtype=np.float64)
    period, phase = fit_regular_grid(beats, 60.0 / tempo) if len(beats) else (60.0 / tempo, 0.0)
    return BeatGrid(period, phase, tempo, beats)


def analyze_audio(audio: np.ndarray, sample_rate: int, *, bpm: float | None = None,
                  meter: tuple[int, int] | str | None = None, downbeat_s: float | None = None) -> BarGrid:
    """The :class:`~diffariff.timing.bars.BarGrid` of ``audio`` ``[C, N]`` at ``sample_rate`` Hz.

    ``bpm`` (quarter notes per minute), ``meter`` and ``downbeat_s`` (first downbeat, seconds) fix
    those values; the others are detected under that constraint. All three given: no analysis at all.
    InputError for bad overrides or audio shorter than :data:`MIN_ANALYSIS_SECONDS`."""
    from .meter import choose_bars

    arr = np.asarray(audio)
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
    hint = None if bpm is None else _beat_hint(bpm, meter)
    beats = track_beats(feats, hint)
    choice = choose_bars(feats, beats, bpm=bpm, meter=meter, downbeat_s=downbeat_s)
    first = _first_downbeat(choice.downbeat_s, choice.bar_seconds)
    grid = BarGrid.regular(choice.bpm, choice.meter, first, duration)
    return dataclasses.replace(grid, beat_times=tuple(float(t) for t in beats.beats_s))


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
