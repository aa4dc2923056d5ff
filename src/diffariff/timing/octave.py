"""Evidence on the metrical level of a tempo hypothesis: is the felt beat the real beat, or its half or
double (the octave errors of tempo detection)?

Song-level quantities (:func:`song_rhythm`, computed once per mix) are the unbiased autocorrelation of
the onset envelopes and the rate of onsets per second; a hypothesis with felt beat ``f`` seconds (the
quarter note, the dotted quarter in 6/8) is then described by :func:`octave_features`:

* ``ac_beat``: autocorrelation of the onset envelope (all bands) at lag ``f``; ``ac_double`` and
  ``ac_half`` its value at ``2 f`` and ``f / 2`` minus that at ``f`` (a beat twice as long or half as long
  recurring more strongly), ``low_ac_double`` / ``low_ac_half`` the same for the band below 200 Hz;
* ``density`` / ``low_density``: log2 of the onsets per felt beat (all bands / below 200 Hz): a slow
  ballad read at double tempo has about one note per "beat", a fast groove read at half tempo many;
* ``peaky``: how sharp the onsets above 200 Hz are (:func:`peakiness`: drums high, pads low), and
  ``lt_peaky`` / ``lt_rate``: the hypothesis' log2 tempo (over the prior's centre) times the
  peakiness and times the log onset rate, so that the scorer's tempo prior can depend on the sound
  (slow for soft, sparse mixes).

:func:`backbeat` compares the accents above 200 Hz (snare, side stick, hand claps) on the weak beats of
the hypothesised bar with those on its strong beats.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from .beats import ANALYSIS_SR, HOP, OnsetFeatures

#: Longest autocorrelation lag kept (seconds): twice the slowest felt beat (6/8 at 40 quarters/min).
MAX_LAG_S = 4.6
#: Half-width (frames) of the search for the autocorrelation peak around a lag.
LAG_SLACK = 2


@dataclasses.dataclass
class SongRhythm:
    """Song-level rhythm of a mix: ``ac`` / ``low_ac`` [L] unbiased, normalised (lag 0 = 1)
    autocorrelations of the onset envelopes (all bands / below 200 Hz) at lags of 0..L-1 frames of
    ``fps`` frames per second; ``rate`` / ``low_rate`` onsets per second."""

    ac: np.ndarray
    low_ac: np.ndarray
    rate: float
    low_rate: float
    fps: float
    peaky: float = 0.0


def autocorrelation(env: np.ndarray, max_lag: int) -> np.ndarray:
    """Unbiased autocorrelation [max_lag] of ``env`` [T] minus its mean, normalised to 1 at lag 0
    (librosa.autocorrelate, each lag divided by its number of overlapping frames)."""
    import librosa

    x = np.asarray(env, dtype=np.float64) - float(np.mean(env))
    n = min(int(max_lag), len(x))
    ac = librosa.autocorrelate(x, max_size=n)
    ac = ac / (len(x) - np.arange(n))
    return ac / ac[0] if ac[0] > 1e-12 else np.zeros(n)


def onset_rate(env: np.ndarray, duration_s: float) -> float:
    """Onsets per second that librosa's peak picking finds in the onset envelope ``env`` [T]."""
    import librosa

    peaks = librosa.onset.onset_detect(onset_envelope=env, sr=ANALYSIS_SR, hop_length=HOP)
    return len(peaks) / max(duration_s, 1e-6)


def song_rhythm(feats: OnsetFeatures) -> SongRhythm:
    """The :class:`SongRhythm` of ``feats``."""
    max_lag = int(MAX_LAG_S * feats.fps) + LAG_SLACK + 2
    return SongRhythm(autocorrelation(feats.onset, max_lag), autocorrelation(feats.low_onset, max_lag),
                      onset_rate(feats.onset, feats.duration_s), onset_rate(feats.low_onset, feats.duration_s),
                      feats.fps, peakiness(feats.high_onset))


def peakiness(env: np.ndarray) -> float:
    """log2 of the 95th percentile over the median of an onset envelope [T]: high for sharp drum hits,
    low for pads and legato parts."""
    lo, hi = np.percentile(np.asarray(env, dtype=np.float64), [50, 95])
    return float(np.clip(np.log2((hi + 1e-6) / (lo + 1e-6)), 0.0, 8.0))


def ac_at(ac: np.ndarray, lag_s: float, fps: float) -> float:
    """Largest value of the autocorrelation ``ac`` [L] within :data:`LAG_SLACK` frames of ``lag_s``
    seconds; 0 beyond its last lag."""
    c = int(round(lag_s * fps))
    a, b = max(1, c - LAG_SLACK), min(len(ac), c + LAG_SLACK + 1)
    return float(ac[a:b].max()) if a < b else 0.0


def octave_features(rh: SongRhythm, felt_s: float, lt: float = 0.0) -> dict[str, float]:
    """The octave evidence (module doc) of a felt beat of ``felt_s`` seconds; ``lt`` the log2 of the
    hypothesis' tempo over the prior's centre, for the tempo prior that depends on the sound."""
    out = {"peaky": rh.peaky, "lt_peaky": lt * (rh.peaky - 2.5),
           "lt_rate": lt * float(np.clip(np.log2(rh.rate + 0.25) - 2.0, -3.0, 3.0))}
    for name, ac in (("", rh.ac), ("low_", rh.low_ac)):
        at = ac_at(ac, felt_s, rh.fps)
        if not name:
            out["ac_beat"] = at
        out[name + "ac_double"] = ac_at(ac, 2 * felt_s, rh.fps) - at
        out[name + "ac_half"] = ac_at(ac, felt_s / 2, rh.fps) - at
    out["density"] = float(np.clip(np.log2(rh.rate * felt_s + 0.25), -2.0, 4.0))
    out["low_density"] = float(np.clip(np.log2(rh.low_rate * felt_s + 0.25), -2.0, 4.0))
    return out


def backbeat(feats: OnsetFeatures, downbeat_s: float, meter: tuple[int, int], tempo: float,
             window_s: float = 0.035) -> float:
    """Accent above 200 Hz on the weak beats of the bar minus that on the strong ones, in standard
    deviations of that envelope, over every bar of the grid through ``downbeat_s`` at ``tempo`` quarter
    notes per minute: 4/4 beats 2 and 4 against 1 and 3, 3/4 beats 2 and 3 against 1, 6/8 the second
    dotted quarter against the first."""
    env = feats.high_onset
    quarter = 60.0 / tempo
    if meter == (6, 8):
        step, weak = 1.5 * quarter, (1,)
    elif meter == (3, 4):
        step, weak = quarter, (1, 2)
    else:
        step, weak = quarter, (1, 3)
    per_bar = int(round(meter[0] * 4.0 / meter[1] * quarter / step))
    bar = per_bar * step
    first = downbeat_s - np.floor(downbeat_s / bar) * bar
    times = first + step * np.arange(int((feats.duration_s - first) / step))
    frames = np.round(times * feats.fps).astype(int)
    frames = frames[frames < len(env)]
    if len(frames) < per_bar:
        return 0.0
    half = max(1, int(round(window_s * feats.fps)))
    peak = np.array([env[max(0, f - half):f + half + 1].max() for f in frames]) / (float(np.std(env)) + 1e-9)
    is_weak = np.isin(np.arange(len(frames)) % per_bar, weak)
    return float(peak[is_weak].mean() - peak[~is_weak].mean())
