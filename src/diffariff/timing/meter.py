"""Meter and downbeats from beat-synchronous accents: which bar length, which phase, which meter.

Given regular beat grids (:class:`~diffariff.timing.beats.BeatGrid`, period ``p``, tracked at several
metrical levels), every beat ``i`` of a grid gets three accent features, each z-scored over the beats:

* ``onset``: the largest onset strength within 35 ms of the beat (all bands);
* ``low``: the same below 200 Hz (kick drum, bass notes);
* ``chroma``: how much the harmony changes there, ``1 - cos`` between the mean chroma of the one or
  two beats after the beat and of those before it (averaged over both window lengths).

A hypothesis is a bar of ``k`` tracked beats (``k`` in 2, 3, 4, 6, 8) starting on beats ``i = phase
mod k``, with a reading of what the tracked beat is (:data:`HYPOTHESES`): e.g. ``k = 2`` is 4/4 with
half notes tracked or 6/8 with dotted quarters tracked, ``k = 6`` is 3/4 or 6/8 with eighths tracked.
Its features (:data:`FEATURES`) are the contrast of the accents on the downbeats against all other
beats, whether odd and even bars differ (the "bar" would then be two bars), the evidence for the
reading (the beat divided in two or in three; a 3+3 or a 2+2+2 grouping of six eighths; kick in the
middle of the bar), how well the grid and the notated beats (quarters, eighths in 6/8) and the points
between them land on onsets, and the tempo in quarter notes per minute (log2 of tempo /
:data:`PRIOR_BPM`, its square, per meter), and the metrical-level evidence of
:mod:`diffariff.timing.octave` (onset autocorrelation at the felt beat, its half and its double; onsets
per felt beat; snare-band backbeat; how sharp the onsets are, alone and times the log tempo, so that
the tempo prior can depend on the sound) with the harmony change at mid-bar. A small network
(:data:`SCORER`, fitted on rendered corpus songs by :mod:`diffariff.timing.fit`) scores them;
hypotheses of every grid with a tempo inside :data:`TEMPO_RANGE` compete. The tempo is the one whose
hypotheses hold the most probability under a softmax of the scores (:func:`_most_probable_tempo`),
and its best hypothesis gives the meter, the tempo (``60 x quarters per tracked beat / p``) and the
first downbeat.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from .beats import BeatGrid, OnsetFeatures
from .octave import SongRhythm, backbeat, octave_features, song_rhythm
from .scorer import load_scorer

#: (beats per bar k, meter, quarter notes per tracked beat): the readings scored.
HYPOTHESES: tuple[tuple[int, tuple[int, int], float], ...] = (
    (2, (4, 4), 2.0), (2, (6, 8), 1.5), (3, (3, 4), 1.0), (3, (6, 8), 1.0), (4, (4, 4), 1.0),
    (6, (3, 4), 0.5), (6, (6, 8), 0.5), (8, (4, 4), 0.5),
)
PRIOR_BPM = 110.0
#: The metrical-level evidence of :mod:`diffariff.timing.octave` and the harmony change at mid-bar.
OCTAVE_FEATURES = ("ac_beat", "ac_double", "ac_half", "low_ac_double", "low_ac_half", "density", "low_density",
                   "backbeat", "chroma_mid", "peaky", "lt_peaky", "lt_rate")
#: Names of the features a hypothesis is scored on (:func:`_features`). Their scorer (a small network,
#: :mod:`diffariff.timing.scorer`) is fitted on rendered corpus songs (:mod:`diffariff.timing.fit`) and
#: stored beside this module; :data:`WEIGHTS` is the linear fallback when no fitted scorer matches.
FEATURES = ("onset", "low", "chroma", "subdivision", "grouping", "sixteenths", "tempo_prior", "repetition",
            "triple", "compound", "level", "grid_on", "beat_on", "beat_off", "lt_44", "lt2_44", "lt_34", "lt2_34",
            "lt_68", "lt2_68", "ternary", "beat_quarter", "low_half") + tuple(
    f"{name}_{m}" for name in ("off", "quarter", "tern", "btern") for m in ("44", "34", "68")) + (
    "alt_onset", "alt_low", "alt_chroma") + OCTAVE_FEATURES
WEIGHTS: dict[str, float] = {"onset": 0.4, "low": 1.3, "chroma": 2.5, "subdivision": 0.9, "grouping": 0.3,
                             "sixteenths": 1.1, "tempo_prior": 1.9, "repetition": 0.5, "level": 0.9}
SCORER = load_scorer(FEATURES, WEIGHTS)
#: Quarter-note tempi (bpm) a detected hypothesis may have; a given ``bpm`` is not restricted.
TEMPO_RANGE = (40.0, 250.0)
WINDOW_S = 0.035
#: Hypotheses whose tempi differ by at most this (relative) share one tempo (:func:`choose_bars`).
TEMPO_CLASS_TOLERANCE = 0.03


@dataclasses.dataclass
class BarChoice:
    """The chosen bar hypothesis: ``bpm`` (quarter notes per minute), ``meter``, a ``downbeat_s`` on the
    grid (seconds), ``bar_seconds``, its ``score``, every scored hypothesis in ``candidates`` (best
    first) and the beat ``grid`` it was found on."""

    grid: BeatGrid
    bpm: float
    meter: tuple[int, int]
    downbeat_s: float
    bar_seconds: float
    score: float
    candidates: list[dict]


def _zscore(x: np.ndarray) -> np.ndarray:
    s = float(np.std(x))
    return (x - float(np.mean(x))) / s if s > 1e-9 else np.zeros_like(x)


def _peak_at(env: np.ndarray, frames: np.ndarray, half: int) -> np.ndarray:
    """Largest value of ``env`` [T] within ``half`` frames of each of ``frames`` [K]."""
    out = np.zeros(len(frames))
    for j, f in enumerate(frames):
        a, b = max(0, f - half), min(len(env), f + half + 1)
        out[j] = float(env[a:b].max()) if a < b else 0.0
    return out


def beat_positions(feats: OnsetFeatures, period: float, phase: float) -> np.ndarray:
    """Times (seconds) of the grid beats ``phase + i x period`` inside the audio (the last one at least
    half a beat before the end)."""
    n = int(np.floor((feats.duration_s - phase - 0.5 * period) / period)) + 1
    return phase + period * np.arange(max(n, 0))


def beat_accents(feats: OnsetFeatures, times: np.ndarray, period: float) -> dict[str, np.ndarray]:
    """The z-scored accents ``onset``, ``low``, ``chroma`` [K] of the beats at ``times`` (module doc)."""
    fps = feats.fps
    frames = np.round(times * fps).astype(int)
    half = max(1, int(round(WINDOW_S * fps)))
    span = max(1, int(round(period * fps)))
    beat_chroma = np.stack([feats.chroma[:, f:f + span].mean(axis=1) if f < feats.chroma.shape[1]
                            else np.zeros(12) for f in frames], axis=0)
    beat_chroma /= np.linalg.norm(beat_chroma, axis=1, keepdims=True) + 1e-9
    change = np.zeros(len(times))
    for w in (1, 2):
        for i in range(len(times)):
            before, after = beat_chroma[max(0, i - w):i], beat_chroma[i:i + w]
            if len(before) and len(after):
                a, b = before.mean(axis=0), after.mean(axis=0)
                change[i] += 1.0 - float(a @ b) / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-9)
    return {"onset": _zscore(_peak_at(feats.onset, frames, half)),
            "low": _zscore(_peak_at(feats.low_onset, frames, half)), "chroma": _zscore(change)}


def _contrast(x: np.ndarray, k: int, phase: int) -> float:
    on = np.arange(len(x)) % k == phase
    if on.sum() == 0 or (~on).sum() == 0:
        return 0.0
    return float(x[on].mean() - x[~on].mean())


def subdivision(feats: OnsetFeatures, times: np.ndarray, period: float) -> float:
    """Evidence that the beat divides in three rather than two: mean onset strength at 1/3 and 2/3 of
    the beat minus that at 1/2, in units of the onset envelope's standard deviation."""
    env = feats.onset
    sd = float(np.std(env)) + 1e-9
    half = max(1, int(round(0.02 * feats.fps)))

    def at(frac: float) -> float:
        fr = np.round((times + frac * period) * feats.fps).astype(int)
        fr = fr[fr < len(env)]
        return float(_peak_at(env, fr, half).mean()) if len(fr) else 0.0

    return (0.5 * (at(1 / 3) + at(2 / 3)) - at(0.5)) / sd


def eighth_profile(feats: OnsetFeatures, downbeat: float, bar: float, eighths: int) -> np.ndarray:
    """Mean accent (onset + low-band onset, each in units of its standard deviation) at each of the
    ``eighths`` equal divisions of the bar, over every bar of the grid through ``downbeat`` [eighths]."""
    step = bar / eighths
    first = downbeat - np.floor(downbeat / bar) * bar
    times = first + step * np.arange(int((feats.duration_s - first) / step))
    frames = np.round(times * feats.fps).astype(int)
    frames = frames[frames < len(feats.onset)]
    half = max(1, int(round(WINDOW_S * feats.fps)))
    acc = sum(_peak_at(env, frames, half) / (float(np.std(env)) + 1e-9) for env in (feats.onset, feats.low_onset))
    pos = np.arange(len(frames)) % eighths
    return np.array([float(acc[pos == j].mean()) if np.any(pos == j) else 0.0 for j in range(eighths)])


def grouping(profile: np.ndarray) -> float:
    """Evidence for 3+3 (6/8) over 2+2+2 (3/4) in a six-eighth bar profile: the accent of the fourth
    eighth minus the mean of the third and fifth."""
    return float(profile[3] - 0.5 * (profile[2] + profile[4]))


def half_beat(feats: OnsetFeatures, times: np.ndarray, period: float) -> float:
    """Onset strength half-way between the tracked beats, in standard deviations above the envelope's
    mean: how much the tracked beat is divided in two (eighths under quarters, sixteenths under eighths)."""
    env = feats.onset
    fr = np.round((times + 0.5 * period) * feats.fps).astype(int)
    fr = fr[fr < len(env)]
    if not len(fr):
        return 0.0
    half = max(1, int(round(0.02 * feats.fps)))
    return (float(_peak_at(env, fr, half).mean()) - float(env.mean())) / (float(np.std(env)) + 1e-9)


def repetition(feats: OnsetFeatures, times: np.ndarray, period: float, lags=(2, 3, 4, 6, 8)) -> dict[int, float]:
    """How much the rhythm of a beat recurs ``lag`` beats later: the mean correlation between the onset
    patterns (all bands and low band at 12 points inside the beat) of beats ``i`` and ``i + lag``."""
    pts = (times[:, None] + period * np.arange(12)[None, :] / 12.0) * feats.fps
    fr = np.clip(np.round(pts).astype(int), 0, len(feats.onset) - 1)
    v = np.concatenate([feats.onset[fr], feats.low_onset[fr]], axis=1)
    v = v - v.mean(axis=1, keepdims=True)
    v /= np.linalg.norm(v, axis=1, keepdims=True) + 1e-9
    return {lag: float(np.mean(np.sum(v[:-lag] * v[lag:], axis=1))) if len(v) > lag else 0.0 for lag in lags}


def salience(feats: OnsetFeatures, times: np.ndarray) -> float:
    """Mean onset strength (all bands) within 20 ms of ``times`` (seconds), in standard deviations of
    the envelope above its mean."""
    env = feats.onset
    fr = np.round(times * feats.fps).astype(int)
    fr = fr[(fr >= 0) & (fr < len(env))]
    if not len(fr):
        return 0.0
    half = max(1, int(round(0.02 * feats.fps)))
    return (float(_peak_at(env, fr, half).mean()) - float(env.mean())) / (float(np.std(env)) + 1e-9)


@dataclasses.dataclass
class _GridStats:
    """Per-grid quantities shared by its hypotheses (module doc)."""

    grid: BeatGrid
    times: np.ndarray
    acc: dict[str, np.ndarray]
    sub: float
    halfb: float
    rep: dict[int, float]
    rep_mean: float
    on: float


def _grid_stats(feats: OnsetFeatures, grid: BeatGrid) -> _GridStats:
    p = grid.period_s
    times = beat_positions(feats, p, grid.phase_s)
    if len(times) < 4:
        times = grid.phase_s + p * np.arange(4)
    rep = repetition(feats, times, p)
    return _GridStats(grid, times, beat_accents(feats, times, p), subdivision(feats, times, p),
                      half_beat(feats, times, p), rep, float(np.mean(list(rep.values()))), salience(feats, times))


def choose_bars(feats: OnsetFeatures, grids: BeatGrid | list[BeatGrid], *, bpm: float | None = None,
                meter: tuple[int, int] | None = None, downbeat_s: float | None = None) -> BarChoice:
    """Score the hypotheses (module doc) on every beat grid of ``grids`` and return the best. ``bpm`` /
    ``meter`` / ``downbeat_s`` restrict the search to matching hypotheses (a tempo within 6 %; the phase
    whose downbeat is nearest the given one); with a meter outside :data:`HYPOTHESES` its own bar
    length is used."""
    grids = [grids] if isinstance(grids, BeatGrid) else list(grids)
    hyps = list(HYPOTHESES)
    if meter is not None:
        hyps = [h for h in hyps if h[1] == meter] or _generic(meter)
    cands = []
    stats = [_grid_stats(feats, g) for g in grids]
    rhythm = song_rhythm(feats)
    for gi, st in enumerate(stats):
        p, times = st.grid.period_s, st.times
        for k, m, qpb in hyps:
            tempo = 60.0 * qpb / p
            if bpm is not None and abs(tempo / bpm - 1) > 0.06:
                continue
            if bpm is None and not TEMPO_RANGE[0] <= tempo <= TEMPO_RANGE[1]:
                continue
            phases = range(min(k, len(times)))
            if downbeat_s is not None:
                phases = [int(np.argmin(np.abs(times[:k] - times[0] - (downbeat_s - times[0]) % (k * p))))]
            bar = k * p
            for ph in phases:
                x = _features(st, k, ph, m, qpb, tempo, feats, rhythm,
                              lambda t=float(times[ph]), b=bar: eighth_profile(feats, t, b, 6))
                cands.append({"k": k, "meter": m, "phase": ph, "bpm": tempo, "features": x,
                              "downbeat_s": float(times[ph]), "grid": gi})
    if not cands:  # a given tempo no reading explains: take it at face value, as quarter-note beats
        m = meter or (4, 4)
        k = max(1, int(round(m[0] * 4 / m[1])))
        return _choice(stats[0], float(bpm), m, k * 60.0 / float(bpm), 0, downbeat_s, [], 0.0)
    scores = SCORER(np.array([[c["features"][name] for name in SCORER.names] for c in cands]))
    for c, sc in zip(cands, scores):
        c["score"] = float(sc)
    cands.sort(key=lambda c: -c["score"])
    best = cands[0] if bpm is not None else cands[_most_probable_tempo(cands)]
    final_bpm = float(bpm) if bpm is not None else best["bpm"]
    bar = best["meter"][0] * 4.0 / best["meter"][1] * 60.0 / final_bpm
    return _choice(stats[best["grid"]], final_bpm, best["meter"], bar, best["phase"], downbeat_s, cands,
                   best["score"])


def _most_probable_tempo(cands: list[dict], tolerance: float = TEMPO_CLASS_TOLERANCE) -> int:
    """Index of the best-scored hypothesis among those whose tempo is the most probable one: under a
    softmax of the scores over all ``cands``, the tempo whose hypotheses within ``tolerance`` (relative)
    hold the most probability (the decision that minimises the expected tempo error)."""
    scores = np.array([c["score"] for c in cands])
    bpms = np.array([c["bpm"] for c in cands])
    p = np.exp(scores - scores.max())
    p /= p.sum()
    close = np.abs(bpms[None, :] / bpms[:, None] - 1) <= tolerance  # [H, H]
    members = np.flatnonzero(close[int(np.argmax(close @ p))])
    return int(members[np.argmax(scores[members])])


def _features(st: _GridStats, k: int, ph: int, meter: tuple[int, int], qpb: float, tempo: float,
              feats: OnsetFeatures, rhythm: SongRhythm, profile) -> dict[str, float]:
    """The named features of one hypothesis (:data:`FEATURES`, module doc); evidence terms clipped to
    +-2."""
    clip = lambda v: float(np.clip(v, -2.0, 2.0))  # noqa: E731
    compound = meter[1] == 8 and meter[0] % 3 == 0
    six = meter in ((3, 4), (6, 8))
    g = clip(grouping(profile())) if six else 0.0
    acc = st.acc
    # the notated beats (quarters, eighths in x/8) from the downbeat, and the points half-way between
    beat = 60.0 / tempo * 4.0 / meter[1]
    start = float(st.times[ph]) % beat
    on = start + beat * np.arange(int((feats.duration_s - start) / beat))
    lt = float(np.log2(tempo / PRIOR_BPM))
    x = {
        "onset": _contrast(acc["onset"], k, ph), "low": _contrast(acc["low"], k, ph),
        "chroma": _contrast(acc["chroma"], k, ph),
        "subdivision": (clip(st.sub) if compound else -clip(st.sub)) if qpb >= 1.5 else 0.0,
        "grouping": (g if compound else -g) if six else 0.0,
        "sixteenths": -clip(st.halfb) if six and qpb == 0.5 else 0.0,
        "tempo_prior": -lt ** 2,
        "repetition": st.rep.get(k, st.rep_mean) - st.rep_mean,
        "triple": float(meter == (3, 4)), "compound": float(compound),
        "level": -abs(float(np.log2(qpb))),
        "grid_on": clip(st.on), "beat_on": clip(salience(feats, on)), "beat_off": clip(salience(feats, on + beat / 2)),
    }
    felt = 60.0 / tempo * (1.5 if compound else 1.0)  # the felt beat: dotted quarter in 6/8, else quarter
    f0 = float(st.times[ph]) % felt
    felt_times = f0 + felt * np.arange(int((feats.duration_s - f0) / felt))
    tern = clip(subdivision(feats, felt_times, felt)) if len(felt_times) else 0.0
    x["ternary"] = tern if compound else -tern
    x["beat_quarter"] = clip(0.5 * (salience(feats, on + beat / 4) + salience(feats, on + 3 * beat / 4)))
    bar = 60.0 / tempo * meter[0] * 4.0 / meter[1]
    x["low_half"] = clip(_low_half(feats, float(st.times[ph]), bar)) if meter != (3, 4) else 0.0
    btern = clip(subdivision(feats, on, beat)) if len(on) else 0.0  # the notated beat divided in three
    for name in ("onset", "low", "chroma"):  # odd and even bars alike: the bar is not two real bars
        d = acc[name][ph::k]
        x["alt_" + name] = -abs(float(d[0::2].mean() - d[1::2].mean())) if len(d) >= 4 else 0.0
    # per meter: the tempo prior, the onsets between the beats and the beat's division in three
    for name, m in (("44", (4, 4)), ("34", (3, 4)), ("68", (6, 8))):
        here = meter == m
        x["lt_" + name] = lt if here else 0.0
        x["lt2_" + name] = -lt ** 2 if here else 0.0
        x["off_" + name] = x["beat_off"] if here else 0.0
        x["quarter_" + name] = x["beat_quarter"] if here else 0.0
        x["tern_" + name] = tern if here else 0.0
        x["btern_" + name] = btern if here else 0.0
    x.update(octave_features(rhythm, felt, lt))
    x["backbeat"] = float(np.clip(backbeat(feats, float(st.times[ph]), meter, tempo), -2.0, 2.0))
    mids = acc["chroma"][ph + k // 2::k] if k % 2 == 0 else np.zeros(0)
    x["chroma_mid"] = float(mids.mean() - acc["chroma"][ph::k].mean()) if len(mids) else 0.0
    return x


def _low_half(feats: OnsetFeatures, downbeat: float, bar: float) -> float:
    """Low-band (kick) onset at the middle of the bars minus that at their downbeats, in standard
    deviations of the low-band envelope: about 0 when the "bar" is two real bars."""
    env = feats.low_onset
    first = downbeat % bar
    db = first + bar * np.arange(int((feats.duration_s - first) / bar))
    half = max(1, int(round(WINDOW_S * feats.fps)))

    def at(t: np.ndarray) -> float:
        fr = np.round(t * feats.fps).astype(int)
        fr = fr[fr < len(env)]
        return float(_peak_at(env, fr, half).mean()) if len(fr) else 0.0

    return (at(db + bar / 2) - at(db)) / (float(np.std(env)) + 1e-9)


def _generic(meter: tuple[int, int]) -> list[tuple[int, tuple[int, int], float]]:
    """Readings of a meter outside :data:`HYPOTHESES`: its beats tracked directly, or every other one."""
    quarters = meter[0] * 4.0 / meter[1]
    out = []
    for qpb in (4.0 / meter[1], 2 * 4.0 / meter[1], 1.0):
        k = quarters / qpb
        if abs(k - round(k)) < 1e-9 and round(k) >= 1:
            out.append((int(round(k)), meter, qpb))
    return out


def _choice(st: _GridStats, bpm: float, meter: tuple[int, int], bar: float, phase: int,
            downbeat_s: float | None, cands: list[dict], score: float) -> BarChoice:
    t = float(downbeat_s) if downbeat_s is not None else float(st.times[min(phase, len(st.times) - 1)])
    return BarChoice(st.grid, bpm, meter, t, bar, score, cands)
