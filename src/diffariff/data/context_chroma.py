"""The pitch content of a context mix per latent frame: a 12-bin chroma stream beside the context latents.

The latent model hears the context through its codec latents, which carry rhythm and timbre well but
its harmony poorly. :func:`context_chroma` gives the model the context's pitch classes directly, one
12-vector per latent frame, so frame ``t`` lines up with latent frame ``t`` (samples
``[t * spf, (t + 1) * spf)``, ``spf`` = the codec's samples per latent frame).

Method (deterministic; numpy + librosa, float32 out):

1. per channel, a Hann-windowed power spectrogram with ``n_fft`` = :func:`chroma_fft_size` (8192 at
   48 kHz, 170 ms, 5.9 Hz bins: the bass needs the resolution) and a hop :func:`chroma_hop` that divides
   ``spf`` (1024 for spf 4096: four spectra per latent frame), the signal zero-padded so that the
   spectra of latent frame ``t`` are centred at ``t * spf + (i + 1/2) hop``, i.e. evenly inside the
   frame's span (each analysis window reaches ``n_fft / 2`` samples beyond its centre, as any
   8192-point spectrum must); the channels' power spectra are averaged (a mono input: the mono mix's
   spectrum; two channels: no phase cancellation between them). Callers pass the channels the codec
   encodes, so the latent cache and the pipeline compute the same thing (a mono codec: the mono mix);
2. ``librosa.feature.chroma_stft`` on that spectrogram (``S=`` power, ``tuning=0`` so that training
   windows and whole songs use the same A440 bins, no per-spectrum normalisation; octave weighting
   centred at A4 = 440 Hz, ``ctroct=4``, width 2 octaves, so the bass and middle register count more
   than librosa's default centre at 880 Hz): per spectrum, the power of each pitch class summed over
   octaves (units: squared amplitude of full-scale float audio, before step 4);
3. the spectra of each latent frame averaged (power-weighted pitch-class energies of the frame);
4. each frame divided by its largest bin, so values are in [0, 1] and the loudest pitch class is 1;
5. frames whose RMS (over the frame's own samples, mean square of the channels) is below
   :data:`SILENCE_DB` dBFS are exactly 0.

Bin order: index 0 = C, 1 = C#, ..., 11 = B (librosa's ``base_c=True`` convention).
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch

from ..audio import to_channels
from ..audio_spool import is_spooled
from ..errors import InputError

#: Pitch classes, in the order of the chroma bins.
PITCH_CLASSES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
CHROMA_BINS = len(PITCH_CLASSES)
#: Frames whose RMS (dBFS, mono, over the frame's samples) is below this give an all-zero chroma.
SILENCE_DB = -60.0
#: Length of the analysis window in seconds (rounded to a power of two in samples: 8192 at 48 kHz).
WINDOW_SECONDS = 0.17
#: The hop between spectra is the largest divisor of samples_per_frame not above this (samples).
MAX_HOP = 1024
#: Octave weighting of the chroma filters: centre (librosa octaves, 4 = A4 = 440 Hz) and width.
CENTRE_OCTAVE = 4.0
OCTAVE_WIDTH = 2.0
#: Latent frames analysed per block: bounds the memory of a long context (~30 MB of spectra at spf 4096).
BLOCK_FRAMES = 64


def chroma_fft_size(sample_rate: int) -> int:
    """Analysis window length in samples: the power of two nearest to :data:`WINDOW_SECONDS` seconds."""
    return int(2 ** round(math.log2(WINDOW_SECONDS * int(sample_rate))))


def chroma_hop(samples_per_frame: int) -> int:
    """The hop between spectra: the largest divisor of ``samples_per_frame`` not above :data:`MAX_HOP`."""
    spf = int(samples_per_frame)
    if spf < 1:
        raise InputError(f"samples_per_frame must be >= 1, got {samples_per_frame}")
    hop = max(d for d in range(1, min(spf, MAX_HOP) + 1) if spf % d == 0)
    if hop < min(spf, 32):
        raise InputError(f"samples_per_frame {spf} has no divisor between 32 and {MAX_HOP} to use as the chroma hop")
    return hop


@functools.lru_cache(maxsize=8)
def _window(n_fft: int) -> np.ndarray:
    return np.hanning(n_fft + 1)[:-1].astype(np.float32)  # periodic Hann, as librosa's "hann"


def _channels(audio) -> np.ndarray:
    """``[C, N]`` or ``[B, C, N]`` (numpy or torch) -> float32 ``[B, C, N]`` (checked)."""
    x = audio.detach().cpu().float().numpy() if torch.is_tensor(audio) else np.asarray(audio, dtype=np.float32)
    if x.ndim == 2:
        x = x[None]
    if x.ndim != 3 or x.shape[1] < 1 or x.shape[2] < 1:
        raise InputError(f"context audio must be shaped [C, N] or [B, C, N] with N >= 1, got {list(x.shape)}")
    if not np.isfinite(x).all():
        raise InputError("context audio contains non-finite samples (NaN or inf)")
    return x


def _is_one_signal(audio) -> bool:
    return isinstance(audio, np.ndarray) and audio.ndim == 2


def _checked_signal(audio: np.ndarray) -> np.ndarray:
    """A ``[C, N]`` array as float32 (no copy when it is one), checked a block at a time."""
    x = np.asarray(audio, dtype=np.float32)
    if x.shape[0] < 1 or x.shape[1] < 1:
        raise InputError(f"context audio must be shaped [C, N] or [B, C, N] with N >= 1, got {list(x.shape)}")
    for a in range(0, x.shape[1], 1 << 20):
        if not np.isfinite(x[:, a:a + (1 << 20)]).all():
            raise InputError("context audio contains non-finite samples (NaN or inf)")
    return x


def _span(x, a: int, b: int) -> np.ndarray:
    """Samples ``[a, b)`` of a ``[C, N]`` signal (an array or a spooled one) as float32 ``[C, b - a]``,
    zeros where the span lies outside it."""
    n = x.shape[-1]
    out = np.zeros((x.shape[0], b - a), dtype=np.float32)
    lo, hi = max(a, 0), min(b, n)
    if hi > lo:
        out[:, lo - a:hi - a] = x[:, lo:hi]
    return out


def context_chroma(audio, samples_per_frame: int, sample_rate: int = 48_000, *,
                   channels: int | None = None) -> torch.Tensor:
    """Pitch-class profile of ``audio`` per latent frame (module doc for the method and units).

    ``audio``: float ``[C, N]`` or ``[B, C, N]`` (numpy or torch) at ``sample_rate``, or a
    :class:`~diffariff.audio_spool.SpooledAudio` ``[C, N]`` (read a block at a time, never whole);
    ``channels``: first convert to this many channels (:func:`diffariff.audio.to_channels`, 1 = the
    mono mix), block by block;
    ``samples_per_frame``: the codec's samples per latent frame (4096). Returns float32
    ``[B, 12, T]`` with ``T = ceil(N / samples_per_frame)`` (B = 1 for ``[C, N]``): frame ``t``
    describes samples ``[t * spf, (t + 1) * spf)`` (the last frame's missing samples are silence),
    each frame scaled to max 1, silent frames 0; bin 0 = C (:data:`PITCH_CLASSES`).
    """
    import librosa

    spooled = is_spooled(audio) or _is_one_signal(audio)  # one [C, N] signal: read and mixed a block at a time
    if spooled:
        x = audio if is_spooled(audio) else _checked_signal(audio)
    else:
        x = _channels(audio)
        if channels is not None:
            x = np.stack([to_channels(item, channels) for item in x])
    spf, sr = int(samples_per_frame), int(sample_rate)
    hop = chroma_hop(spf)
    if sr < 1:
        raise InputError(f"sample_rate must be >= 1, got {sample_rate}")
    n_fft = chroma_fft_size(sr)
    per = spf // hop  # spectra per latent frame
    if spooled:
        b, c, n = 1, (x.shape[0] if channels is None else int(channels)), x.shape[1]
    else:
        b, c, n = x.shape
    frames = -(-n // spf)
    left = n_fft // 2 - hop // 2  # spectrum j covers samples [j hop - left, j hop - left + n_fft): centre j hop + hop / 2
    window = _window(n_fft)
    out = np.zeros((b, CHROMA_BINS, frames), dtype=np.float32)
    rms = np.zeros((b, frames), dtype=np.float64)
    count = np.minimum(spf, n - np.arange(frames) * spf)  # the frame's own samples (the last may be short)
    for t0 in range(0, frames, BLOCK_FRAMES):
        t1 = min(frames, t0 + BLOCK_FRAMES)
        a0 = t0 * spf - left  # the block's spectra read samples [a0, a1); its own frames [t0 spf, t1 spf)
        a1 = (t1 * per - 1) * hop - left + n_fft
        for i in range(b):
            if spooled:
                span = _span(x, a0, a1)
                span = span if channels is None else to_channels(span, channels)
            else:
                span = _span(x[i], a0, a1)
            power, energy = 0.0, 0.0
            for ch in range(c):  # power spectra and energies of the channels averaged: no phase cancellation
                segs = np.lib.stride_tricks.sliding_window_view(span[ch], n_fft)[::hop]  # [(t1 - t0) per, n_fft]
                power = power + np.abs(np.fft.rfft(segs * window, axis=-1)) ** 2 / c
                own = span[ch, left: left + (t1 - t0) * spf].astype(np.float64).reshape(t1 - t0, spf)
                energy = energy + (own * own).sum(axis=-1) / c
            chroma = librosa.feature.chroma_stft(S=power.T.astype(np.float32), sr=sr, n_fft=n_fft, tuning=0.0,
                                                 norm=None, ctroct=CENTRE_OCTAVE, octwidth=OCTAVE_WIDTH)
            out[i, :, t0:t1] = chroma.reshape(CHROMA_BINS, t1 - t0, per).mean(axis=-1)
            rms[i, t0:t1] = np.sqrt(energy / count[t0:t1])
    peak = out.max(axis=1, keepdims=True)
    audible = (20 * np.log10(np.maximum(rms, 1e-12)) >= SILENCE_DB)[:, None, :] & (peak > 0)
    out = np.where(audible, out / np.where(peak > 0, peak, 1.0), 0.0).astype(np.float32)
    return torch.from_numpy(out)
