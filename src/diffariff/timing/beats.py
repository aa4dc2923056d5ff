"""Frame-rate onset features of a mix and regular beat grids fitted to tracked beats: the lower half of
the tempo analysis (:mod:`diffariff.timing.tempo` runs it, :mod:`diffariff.timing.meter` scores bars on
its grids).

Audio is analysed mono at :data:`ANALYSIS_SR` (22.05 kHz) with hops of :data:`HOP` samples (11.6 ms
frames). :func:`candidate_grids` tracks the beats at several metrical levels (the librosa tempo
estimate times :data:`LEVEL_FACTORS`), because the level librosa picks is often an octave, or a
half / two-thirds / three-halves, off the notated beat; the bar hypotheses then decide between them.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Iterator

import numpy as np

from ..audio_spool import is_spooled

ANALYSIS_SR = 22_050
HOP = 256
#: Mel bands of the onset features and the upper edge of the low band (Hz).
N_MELS = 96
LOW_HZ = 200.0
#: Tempo ratios to the librosa estimate at which beats are tracked (:func:`candidate_grids`).
LEVEL_FACTORS = (1.0, 2.0, 0.5, 1.5, 2.0 / 3.0, 3.0, 1.0 / 3.0)
#: Tracked beat rates outside this range (beats per minute) are not tried.
LEVEL_RANGE_BPM = (28.0, 400.0)
#: Spectrogram frames computed at a time by :func:`onset_features` (about 24 s).
SPECTRUM_BLOCK = 2048
#: Tempogram columns computed at a time by :func:`librosa_tempo` (about 95 s of onsets).
TEMPOGRAM_BLOCK = 8192


@dataclasses.dataclass
class OnsetFeatures:
    """Frame-rate features of a mix: ``onset``, ``low_onset`` and ``high_onset`` [T] (onset strength,
    all bands, below and above 200 Hz), ``chroma`` [12, T] (energy-normalised), at ``fps`` frames per
    second; ``duration_s`` the length of the audio (seconds). ``high_onset`` defaults to ``onset``."""

    onset: np.ndarray
    low_onset: np.ndarray
    chroma: np.ndarray
    fps: float
    duration_s: float
    high_onset: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.high_onset is None:
            self.high_onset = self.onset

    def times(self) -> np.ndarray:
        """Frame times (seconds) [T]."""
        return np.arange(len(self.onset)) / self.fps


@dataclasses.dataclass
class BeatGrid:
    """A regular beat grid fitted to tracked beats: ``period_s`` and ``phase_s`` (seconds; a beat at
    phase + k x period), the tempo the tracker was run at ``librosa_bpm`` (beats per minute) and the
    tracked ``beats_s`` (seconds)."""

    period_s: float
    phase_s: float
    librosa_bpm: float
    beats_s: np.ndarray


def to_mono_analysis(audio, sample_rate: int, block: int = 1 << 20) -> np.ndarray:
    """``[C, N]`` / ``[N]`` audio at ``sample_rate`` Hz (an array, or a
    :class:`~diffariff.audio_spool.SpooledAudio` read by spans) -> float32 mono [M] at
    :data:`ANALYSIS_SR`: the channel mean, resampled with a streaming soxr HQ resampler ``block``
    samples at a time (the samples of one-shot :func:`diffariff.audio.resample`), so no whole-length
    mono or float64 copy is made at the input rate."""
    import soxr

    from ..audio import check_sample_rate

    arr = audio if is_spooled(audio) else np.asarray(audio, dtype=np.float32)
    arr = arr[None] if arr.ndim == 1 else arr
    n, sr = int(arr.shape[-1]), int(sample_rate)
    if sr == ANALYSIS_SR:
        return np.asarray(arr[:, :n], dtype=np.float32).mean(axis=0)
    check_sample_rate(sr, "input")
    stream = soxr.ResampleStream(sr, ANALYSIS_SR, 1, dtype="float32", quality="HQ")
    parts = [np.zeros(0, np.float32)]
    for a in range(0, n, int(block)):
        mono = np.asarray(arr[:, a:a + int(block)], dtype=np.float32).mean(axis=0)
        parts.append(stream.resample_chunk(mono, last=a + int(block) >= n))
    return np.concatenate(parts).astype(np.float32, copy=False)


def power_spectra(y: np.ndarray, n_fft: int, hop: int = HOP, block_frames: int = SPECTRUM_BLOCK) -> Iterator[np.ndarray]:
    """The power spectrogram ``|STFT|^2`` of mono ``y`` [M] (periodic Hann window of ``n_fft``, ``hop``,
    frames centred on ``t * hop`` with zero padding: librosa's ``stft`` defaults) as consecutive float32
    blocks [1 + n_fft / 2, <= block_frames] of its 1 + M // hop frames: each frame's FFT is computed
    from the same samples as in one whole transform, and at most one block is held."""
    import librosa

    m, half = len(y), n_fft // 2
    frames = 1 + m // hop
    for t0 in range(0, frames, int(block_frames)):
        t1 = min(frames, t0 + int(block_frames))
        a, b = t0 * hop - half, (t1 - 1) * hop + n_fft - half  # the samples of frames t0..t1-1
        seg = np.zeros(b - a, dtype=np.float32)
        seg[max(0, -a): min(b, m) - a] = y[max(a, 0): min(b, m)]
        yield np.abs(librosa.stft(seg, n_fft=n_fft, hop_length=hop, center=False)) ** 2


def onset_features(y: np.ndarray) -> OnsetFeatures:
    """Onset strength (all bands, low band) and chroma of mono ``y`` [M] at :data:`ANALYSIS_SR`. The
    spectra are made a block of frames at a time (:func:`power_spectra`), so a 30-minute mix needs no
    whole-length spectrogram (2 GB at n_fft 4096); only the mel bands and the chroma are kept."""
    import librosa

    mel = np.concatenate([librosa.feature.melspectrogram(S=p, sr=ANALYSIS_SR, n_mels=N_MELS)
                          for p in power_spectra(y, 2048)], axis=-1)
    mel_db = librosa.power_to_db(mel, ref=np.max)
    onset = librosa.onset.onset_strength(S=mel_db, sr=ANALYSIS_SR, hop_length=HOP, center=False)
    freqs = librosa.mel_frequencies(n_mels=N_MELS, fmax=ANALYSIS_SR / 2)
    low = max(2, int(np.sum(freqs < LOW_HZ)))
    low_onset = librosa.onset.onset_strength(S=mel_db[:low], sr=ANALYSIS_SR, hop_length=HOP, center=False)
    high_onset = librosa.onset.onset_strength(S=mel_db[low:], sr=ANALYSIS_SR, hop_length=HOP, center=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tuning estimation warns on silent stretches
        chroma = np.concatenate([librosa.feature.chroma_stft(S=p, sr=ANALYSIS_SR, n_fft=4096, tuning=0.0)
                                 for p in power_spectra(y, 4096)], axis=-1)
    n = min(len(onset), len(low_onset), len(high_onset), chroma.shape[1])
    return OnsetFeatures(onset[:n], low_onset[:n], chroma[:, :n], ANALYSIS_SR / HOP, len(y) / ANALYSIS_SR,
                         high_onset[:n])


def fit_regular_grid(beats_s: np.ndarray, period_hint: float) -> tuple[float, float]:
    """(period, phase) in seconds of the line through ``beats_s`` [K] (seconds), each beat given the
    index its distance from the previous one implies; beats more than a quarter period off the line
    are dropped and the line fitted again."""
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


def librosa_tempo(feats: OnsetFeatures) -> float:
    """librosa's global tempo estimate of ``feats.onset`` (beats per minute): the peak of its tempogram
    averaged over time, weighted by a log-normal prior around 110 bpm. The tempogram (8-s
    autocorrelation windows, one per frame) is computed :data:`TEMPOGRAM_BLOCK` frames at a time and
    summed (float64), since librosa's whole-length one needs about 150 MB per minute of audio; an
    envelope of one block is passed to librosa whole (the same numbers as before blocks)."""
    import librosa

    onset = feats.onset
    if len(onset) <= TEMPOGRAM_BLOCK:
        tempo = librosa.feature.tempo(onset_envelope=onset, sr=ANALYSIS_SR, hop_length=HOP, start_bpm=110.0)
    else:
        win = int(librosa.time_to_frames(8.0, sr=ANALYSIS_SR, hop_length=HOP))  # librosa's ac_size default
        half = win // 2
        padded = np.pad(onset, (half, half), mode="linear_ramp", end_values=(0, 0))  # tempogram's centring
        total = np.zeros(win, dtype=np.float64)
        for t0 in range(0, len(onset), TEMPOGRAM_BLOCK):  # columns t0..t1-1: their windows, uncentred
            t1 = min(len(onset), t0 + TEMPOGRAM_BLOCK)
            tg = librosa.feature.tempogram(onset_envelope=padded[t0:t1 - 1 + win], sr=ANALYSIS_SR, hop_length=HOP,
                                           win_length=win, center=False)
            total += tg.sum(axis=-1, dtype=np.float64)
        tempo = librosa.feature.tempo(tg=(total / len(onset))[:, None], sr=ANALYSIS_SR, hop_length=HOP,
                                      start_bpm=110.0)
    return float(np.atleast_1d(tempo)[0])


def track_beats(feats: OnsetFeatures, bpm_hint: float | None = None) -> BeatGrid:
    """librosa's dynamic-programming beat tracking on ``feats.onset`` at ``bpm_hint`` (beats per minute
    of the level to track; default :func:`librosa_tempo`), then :func:`fit_regular_grid`."""
    import librosa

    tempo = librosa_tempo(feats) if bpm_hint is None else float(bpm_hint)
    _, beats = librosa.beat.beat_track(onset_envelope=feats.onset, sr=ANALYSIS_SR, hop_length=HOP, bpm=tempo,
                                       tightness=400, trim=False, units="time")
    beats = np.asarray(beats, dtype=np.float64)
    period, phase = fit_regular_grid(beats, 60.0 / tempo) if len(beats) else (60.0 / tempo, 0.0)
    return BeatGrid(period, phase, tempo, beats)


def candidate_grids(feats: OnsetFeatures, bpm_hint: float | None = None,
                    factors: tuple[float, ...] = LEVEL_FACTORS) -> list[BeatGrid]:
    """Beat grids tracked at ``bpm_hint`` (default :func:`librosa_tempo`) times each of ``factors``
    inside :data:`LEVEL_RANGE_BPM`; a grid within 1.5 % in period and 30 ms in phase of an earlier one
    is dropped. The first grid is the one at the hint itself."""
    base = librosa_tempo(feats) if bpm_hint is None else float(bpm_hint)
    grids: list[BeatGrid] = []
    for f in factors:
        bpm = base * f
        if not LEVEL_RANGE_BPM[0] <= bpm <= LEVEL_RANGE_BPM[1]:
            continue
        g = track_beats(feats, bpm)
        same = any(abs(g.period_s / h.period_s - 1) < 0.015
                   and abs((g.phase_s - h.phase_s + h.period_s / 2) % h.period_s - h.period_s / 2) < 0.03
                   for h in grids)
        if not same:
            grids.append(g)
    return grids


def refine_grid(feats: OnsetFeatures, period_s: float, anchor_s: float, span: float = 0.03,
                shift_s: float = 0.03) -> tuple[float, float]:
    """A finer (period, anchor) in seconds for the regular grid ``anchor_s + k x period_s``: the period
    scaled by up to +-``span`` and the grid shifted by up to +-``shift_s`` around its point nearest the
    middle of the audio, maximising the mean onset strength (all bands plus low band, each over its
    standard deviation, smoothed over +-2 frames) at the grid points. The returned anchor is the grid point
    that corresponds to ``anchor_s``."""
    env = feats.onset / (float(np.std(feats.onset)) + 1e-9) + feats.low_onset / (float(np.std(feats.low_onset)) + 1e-9)
    env = np.convolve(env, np.hanning(7)[1:-1] / np.hanning(7)[1:-1].sum(), mode="same")  # +-2 frames
    n_mid = int(round((feats.duration_s / 2 - anchor_s) / period_s))
    mid = anchor_s + n_mid * period_s
    reach = period_s * (1 + span)  # the same grid points stay inside the audio at every scale
    k = np.arange(-int((mid - shift_s) / reach), int((feats.duration_s - mid - shift_s) / reach) + 1)
    best = (-np.inf, period_s, mid)
    for scale in 1.0 + np.linspace(-span, span, 121):
        p = period_s * scale
        for d in np.linspace(-shift_s, shift_s, 13):
            fr = np.round((mid + d + k * p) * feats.fps).astype(int)
            fr = fr[(fr >= 0) & (fr < len(env))]
            v = float(env[fr].mean()) if len(fr) else -np.inf
            if v > best[0] + 1e-9:
                best = (v, p, mid + d)
    _, p, m = best
    return float(p), float(m - n_mid * p)
