"""Bus dynamics and loudness of the production stage (:mod:`.production`): gain computers that work on
control signals so that one gain curve, computed from the summed mix, can be applied to every stem.

* :func:`compressor_gain` - a feed-forward, stereo-linked, soft-knee compressor's per-sample gain;
* :func:`limiter_gain` - a look-ahead peak limiter's per-sample gain, never above what each sample allows;
* :func:`loudness_lufs` - integrated loudness by pyloudnorm (the reference meter);
* :func:`fast_loudness_lufs` - the same BS.1770 measure vectorised over whole songs, because the bus's
  loudness search calls it a dozen times per song (it reads within ~0.05 LU of pyloudnorm; tested).

Signals: ``[C, N]`` float arrays at ``sample_rate`` Hz; gains are linear ``[N]`` arrays.
"""

from __future__ import annotations

import math

import numpy as np
import pyloudnorm
from scipy.ndimage import minimum_filter1d
from scipy.signal import sosfilt

#: Hop of the control signals of the bus dynamics and the RMS window of the bus compressor (seconds).
CONTROL_SECONDS, RMS_SECONDS = 0.001, 0.01


def loudness_lufs(audio: np.ndarray, sample_rate: int) -> float:
    """Integrated loudness (LUFS, ITU-R BS.1770 gated) of ``[2, N]`` audio by pyloudnorm, the reference
    meter; ``-inf`` below the gate."""
    return float(pyloudnorm.Meter(sample_rate).integrated_loudness(np.asarray(audio, dtype=np.float64).T))


def _k_weighting(sample_rate: int) -> np.ndarray:
    """BS.1770 K-weighting as second-order sections for ``sample_rate``: the head's high shelf (+4 dB
    above ~1.7 kHz) and the RLB high-pass (~38 Hz), by the bilinear transform of their analog forms."""
    k = math.tan(math.pi * 1681.974450955533 / sample_rate)
    q, vh = 0.7071752369554196, 10 ** (3.999843853973347 / 20)
    vb = vh ** 0.4996667741545416
    a0 = 1 + k / q + k * k
    shelf = [(vh + vb * k / q + k * k) / a0, 2 * (k * k - vh) / a0, (vh - vb * k / q + k * k) / a0,
             1.0, 2 * (k * k - 1) / a0, (1 - k / q + k * k) / a0]
    k = math.tan(math.pi * 38.13547087602444 / sample_rate)
    q = 0.5003270373238773
    a0 = 1 + k / q + k * k
    highpass = [1.0, -2.0, 1.0, 1.0, 2 * (k * k - 1) / a0, (1 - k / q + k * k) / a0]
    return np.array([shelf, highpass])


def fast_loudness_lufs(audio: np.ndarray, sample_rate: int) -> float:
    """The same integrated loudness as :func:`loudness_lufs`, vectorised (the bus search calls it many
    times): K-weighting, mean square per 400 ms block every 100 ms summed over the channels, then the
    absolute (-70 LUFS) and relative (-10 LU) gates."""
    weighted = sosfilt(_k_weighting(sample_rate), np.asarray(audio, dtype=np.float64), axis=-1)
    block, step = int(round(0.4 * sample_rate)), int(round(0.1 * sample_rate))
    if weighted.shape[-1] < block:
        return -math.inf
    total = np.concatenate(([0.0], np.cumsum(np.sum(weighted**2, axis=0))))
    starts = np.arange(0, weighted.shape[-1] - block + 1, step)
    power = (total[starts + block] - total[starts]) / block
    with np.errstate(divide="ignore"):
        loud = -0.691 + 10.0 * np.log10(power)
    gated = power[loud > -70.0]
    if gated.size == 0:
        return -math.inf
    relative = -0.691 + 10.0 * math.log10(float(gated.mean())) - 10.0
    kept = power[(loud > -70.0) & (loud > relative)]
    return -0.691 + 10.0 * math.log10(float(kept.mean()))


def _smooth(target: np.ndarray, rise: float, fall: float, start: float) -> np.ndarray:
    """One-pole smoothing of a control signal with coefficient ``rise`` when the target is above the
    current value and ``fall`` when below."""
    out = np.empty(target.size)
    cur = start
    for i, t in enumerate(target.tolist()):
        cur += (rise if t > cur else fall) * (t - cur)
        out[i] = cur
    return out


def _coeff(ms: float, hop: int, sample_rate: int) -> float:
    return 1.0 - math.exp(-hop / max(ms * 1e-3 * sample_rate, 1e-9))


def compressor_gain(mix: np.ndarray, sample_rate: int, threshold_db: float, ratio: float, knee_db: float,
                    attack_ms: float, release_ms: float) -> np.ndarray:
    """Per-sample linear gain of a feed-forward compressor for ``[C, N]`` ``mix``.

    Detector: mean square over the channels, per 1 ms block averaged over the last
    :data:`RMS_SECONDS` (an RMS level in dBFS). Static curve: gain reduction
    ``(L - T)(1 - 1/R)`` above the knee, quadratic inside it (width ``knee_db``), zero below. The
    reduction (dB) rises with the attack and falls with the release time constant (one pole each), and
    is interpolated linearly between block centres.
    """
    n = mix.shape[1]
    hop = max(1, int(round(CONTROL_SECONDS * sample_rate)))
    blocks = -(-n // hop)
    power = np.mean(np.square(mix, dtype=np.float64), axis=0)
    power = np.pad(power, (0, blocks * hop - n)).reshape(blocks, hop).mean(axis=1)
    span = max(1, int(round(RMS_SECONDS / CONTROL_SECONDS)))
    power = np.convolve(power, np.full(span, 1.0 / span))[:blocks]  # trailing average
    over = 10.0 * np.log10(power + 1e-20) - threshold_db
    slope = 1.0 - 1.0 / ratio
    half = knee_db / 2.0
    reduction = np.where(over >= half, over * slope,
                         np.where(over > -half, slope * (over + half) ** 2 / (2.0 * max(knee_db, 1e-9)), 0.0))
    attack, release = _coeff(attack_ms, hop, sample_rate), _coeff(release_ms, hop, sample_rate)
    smooth = _smooth(reduction, attack, release, 0.0)
    centres = np.arange(blocks) * hop + (hop - 1) / 2.0
    return 10.0 ** (-np.interp(np.arange(n), centres, smooth) / 20.0)


def limiter_gain(need: np.ndarray, sample_rate: int, attack_ms: float, release_ms: float) -> np.ndarray:
    """Per-sample linear gain of a look-ahead peak limiter, never above ``need`` (the largest gain each
    sample allows, <= 1).

    With ``w`` = attack in samples: ``m`` = minimum of ``need`` over ``[n-w+1, n+w-1]``; ``g`` = mean
    of ``m`` over ``[n-w+1, n]`` (every term covers ``n``, so ``g <= need``): the gain ramps down over
    ``w`` samples ahead of a peak. Release at the control rate: per 1 ms block the minimum of ``g``,
    followed downwards at once and upwards by a one-pole with the release time; block boundaries take
    the smaller neighbour and samples are interpolated between boundaries, so the result stays below
    ``g`` everywhere.
    """
    n = need.size
    w = max(1, int(round(attack_ms * 1e-3 * sample_rate)))
    m = minimum_filter1d(need, size=2 * w - 1, mode="nearest")
    total = np.concatenate(([0.0], np.cumsum(np.concatenate((np.full(w - 1, m[0]), m)))))
    g = np.minimum((total[w:] - total[:-w]) / w, need)
    hop = max(1, int(round(CONTROL_SECONDS * sample_rate)))
    blocks = -(-n // hop)
    floor = np.pad(g, (0, blocks * hop - n), constant_values=1.0).reshape(blocks, hop).min(axis=1)
    z = _smooth(floor, _coeff(release_ms, hop, sample_rate), 1.0, 1.0)
    bounds = np.concatenate(([z[0]], np.minimum(z[:-1], z[1:]), [z[-1]]))
    out = np.interp(np.arange(n), np.arange(blocks + 1) * hop, bounds)
    return np.minimum(out, need)
