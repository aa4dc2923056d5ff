"""Reconstruction metrics for the codec, and an Opus round trip as a reference codec.

These are THE definitions of the codec's held-out metrics: ``diffariff eval codec`` reports them and
the codec trainer logs them (``*_mrstft``, ``*_logmel_l1`` in ``RUN/metrics.csv``). They score
detached signals in float64 and are not differentiable; the training losses are in
:mod:`diffariff.codec.losses`.

Signals are numpy arrays or torch tensors shaped ``[C, N]`` (or ``[N]``, or ``[B, C, N]``: every
leading axis is treated as more channels), float, at 48 kHz unless stated. Distances are means over
channels; a reference and an estimate must have the same shape.

* :func:`mr_stft_distance`: for each FFT size in (512, 1024, 2048), Hann window, hop n_fft/4:
  spectral convergence ``||S - S'||_F / ||S||_F`` plus log-magnitude L1
  ``mean |ln max(S, 1e-5) - ln max(S', 1e-5)|`` (S = |STFT|); the sum is averaged over the
  resolutions. 0 for identical signals.
* :func:`log_mel_distance`: L1 between log10 mel power spectrograms, 128 HTK-mel triangular bands
  over 0 Hz - Nyquist, n_fft 2048, hop 512, Hann, power floored at 1e-5 before log10 (so the log
  spans at most 5 decades below full scale).
* :func:`band_level_errors`: how far the estimate's level and spectral balance are from the
  reference's: ``level_db`` = 10 log10(E_est / E_ref) over the whole signal (signed; negative = too
  quiet), and ``band_db`` = mean over 10 octave bands (31 Hz - 16 kHz, power summed over time) of
  |10 log10(P_est / P_ref)|, bands more than 60 dB below the reference's loudest band skipped.
  A level-preserving, timbre-preserving codec scores 0 / 0.
* :func:`si_sdr`: scale-invariant SDR in dB (Le Roux et al. 2019), zero-mean, per channel, averaged.
* :func:`phase_error_share`: which part of the STFT-domain error is phase. With X, Y the complex STFTs
  (n_fft 2048, hop 512, Hann) of reference and estimate, ``1 - sum (|X| - |Y|)^2 / sum |X - Y|^2``,
  in [0, 1] since ``|X - Y| >= ||X| - |Y||``: 0 when the error is all magnitude (a gain error, a missing
  band), 1 when the magnitudes are right and only the phases differ; 0 for identical signals.
* :func:`opus_roundtrip`: encode with ffmpeg/libopus at a bitrate, decode back to the input rate,
  and align to the input in time (measured by cross-correlation, so the decoder's pre-skip/latency
  handling does not matter), cropped/padded to the input length.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

import librosa
import numpy as np
import torch

from ..audio import check_sample_rate, load_audio, save_audio
from ..errors import DiffariffError, InputError, MissingDependencyError

#: FFT sizes of the multi-resolution STFT distance.
MR_STFT_SIZES = (512, 1024, 2048)
#: Magnitude floor of the log-magnitude term (linear amplitude).
MAG_FLOOR = 1e-5
#: Mel settings of :func:`log_mel_distance`.
N_MELS = 128
MEL_N_FFT = 2048
MEL_HOP = 512
MEL_POWER_FLOOR = 1e-5
#: Largest lag (seconds) searched when aligning a codec's output to its input.
MAX_ALIGN_SECONDS = 0.1


def _as_signal(x, what: str) -> torch.Tensor:
    t = x.detach().cpu() if isinstance(x, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(x, dtype=np.float64))
    t = t.to(torch.float64)
    if t.ndim == 0 or t.shape[-1] == 0:
        raise InputError(f"{what} is empty")
    if not torch.isfinite(t).all():
        raise InputError(f"{what} contains NaN or infinite samples")
    return t.reshape(-1, t.shape[-1])


def _pair(reference, estimate) -> tuple[torch.Tensor, torch.Tensor]:
    ref, est = _as_signal(reference, "reference"), _as_signal(estimate, "estimate")
    if ref.shape != est.shape:
        raise InputError(f"reference and estimate shapes differ: {tuple(ref.shape)} vs {tuple(est.shape)}")
    return ref, est


def _stft(x: torch.Tensor, n_fft: int, hop: int) -> torch.Tensor:
    """Complex STFT ``[C, n_fft/2+1, frames]`` (Hann, centered, reflect-padded; short signals zero-padded)."""
    if x.shape[-1] <= n_fft // 2:
        x = torch.nn.functional.pad(x, (0, n_fft // 2 + 1 - x.shape[-1]))
    window = torch.hann_window(n_fft, dtype=x.dtype)
    return torch.stft(x, n_fft, hop, window=window, center=True, return_complex=True)


def _magnitude(x: torch.Tensor, n_fft: int, hop: int) -> torch.Tensor:
    """|STFT| ``[C, n_fft/2+1, frames]`` (see :func:`_stft`)."""
    return _stft(x, n_fft, hop).abs()


def mr_stft_distance(reference, estimate, *, fft_sizes: Sequence[int] = MR_STFT_SIZES) -> float:
    """Multi-resolution STFT distance (spectral convergence + log-magnitude L1), see module doc."""
    ref, est = _pair(reference, estimate)
    total = 0.0
    for n_fft in fft_sizes:
        s_ref, s_est = _magnitude(ref, n_fft, n_fft // 4), _magnitude(est, n_fft, n_fft // 4)
        sc = torch.linalg.norm(s_ref - s_est) / torch.linalg.norm(s_ref).clamp_min(1e-12)
        logmag = (s_ref.clamp_min(MAG_FLOOR).log() - s_est.clamp_min(MAG_FLOOR).log()).abs().mean()
        total += float(sc + logmag)
    return total / len(fft_sizes)


def mel_filterbank(sample_rate: int, n_fft: int = MEL_N_FFT, n_mels: int = N_MELS) -> torch.Tensor:
    """Triangular HTK-mel filters ``[n_mels, n_fft/2+1]`` (peak 1) over 0 Hz - sample_rate/2 (librosa's)."""
    fb = librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=n_mels, fmin=0.0, fmax=sample_rate / 2.0,
                             htk=True, norm=None, dtype=np.float64)
    return torch.from_numpy(fb)


def log_mel(x, sample_rate: int = 48_000) -> torch.Tensor:
    """log10 mel power spectrogram ``[C, 128, frames]`` of ``[C, N]`` audio (floor 1e-5)."""
    sig = _as_signal(x, "audio")
    power = _magnitude(sig, MEL_N_FFT, MEL_HOP) ** 2
    mel = torch.einsum("mf,cft->cmt", mel_filterbank(sample_rate), power)
    return mel.clamp_min(MEL_POWER_FLOOR).log10()


def log_mel_distance(reference, estimate, sample_rate: int = 48_000) -> float:
    """Mean absolute difference of :func:`log_mel` spectrograms (decades of power)."""
    ref, est = _pair(reference, estimate)
    return float((log_mel(ref, sample_rate) - log_mel(est, sample_rate)).abs().mean())


#: Octave band edges (Hz) of :func:`band_level_errors`: 10 bands centred 31.25 Hz ... 16 kHz.
OCTAVE_CENTERS = tuple(31.25 * 2.0**k for k in range(10))
BAND_FLOOR_DB = 60.0


#: Bin spacing (Hz) of a 2048-point STFT at 48 kHz, the grid the first codec's decoder collapsed pitch onto.
GRID_SPACING_HZ = 48_000 / 2048
#: Band (Hz), tolerance (+- Hz) and Welch segment (s) of :func:`grid_energy_share`.
GRID_BAND_HZ = (40.0, 2000.0)
GRID_TOLERANCE_HZ = 1.0
GRID_SEGMENT_SECONDS = 4.0


def grid_energy_share(audio, sample_rate: int = 48_000, spacing: float = GRID_SPACING_HZ) -> float:
    """Share of the 40-2000 Hz energy of ``audio`` (``[C, N]`` or ``[N]``) within +-1 Hz of a multiple of
    ``spacing`` Hz, from a Welch power spectrum of 4-s Hann segments (0.25 Hz resolution; shorter audio
    uses one segment of its length). Chance (energy spread evenly) is 2 / spacing (8.5 % at 23.44 Hz); a
    decoder that writes its partials on an analysis grid scores far higher (0.6-0.9 for the first codec).
    NaN for silence in the band."""
    from scipy.signal import welch  # noqa: PLC0415

    x = np.asarray(audio, dtype=np.float64)
    x = x.mean(axis=0) if x.ndim == 2 else x
    seg = min(x.shape[-1], int(GRID_SEGMENT_SECONDS * sample_rate))
    freqs, power = welch(x, fs=sample_rate, window="hann", nperseg=seg, noverlap=seg // 2)
    band = (freqs >= GRID_BAND_HZ[0]) & (freqs <= GRID_BAND_HZ[1])
    total = float(power[band].sum())
    if total <= 1e-20:
        return float("nan")
    offset = np.abs(freqs[band] - spacing * np.round(freqs[band] / spacing))
    return float(power[band][offset <= GRID_TOLERANCE_HZ].sum() / total)


def band_level_errors(reference, estimate, sample_rate: int = 48_000) -> dict[str, float]:
    """``{"level_db", "band_db"}`` of ``estimate`` vs ``reference`` (``[C, N]``), see module doc.

    Power spectra from the 2048-point STFT (hop 512) summed over frames and channels; powers are
    floored at 1e-20, so an all-zero estimate gets a large finite negative ``level_db``."""
    ref, est = _pair(reference, estimate)
    p_ref = (_magnitude(ref, MEL_N_FFT, MEL_HOP) ** 2).sum(dim=(0, 2))
    p_est = (_magnitude(est, MEL_N_FFT, MEL_HOP) ** 2).sum(dim=(0, 2))
    floor = 1e-20
    level = 10.0 * np.log10((float(p_est.sum()) + floor) / (float(p_ref.sum()) + floor))
    freqs = np.linspace(0.0, sample_rate / 2.0, MEL_N_FFT // 2 + 1)
    bands_ref, bands_est = [], []
    for c in OCTAVE_CENTERS:
        sel = torch.from_numpy((freqs >= c / np.sqrt(2)) & (freqs < c * np.sqrt(2)))
        if bool(sel.any()):
            bands_ref.append(float(p_ref[sel].sum()))
            bands_est.append(float(p_est[sel].sum()))
    b_ref, b_est = np.array(bands_ref) + floor, np.array(bands_est) + floor
    keep = 10.0 * np.log10(b_ref / b_ref.max()) > -BAND_FLOOR_DB
    band = float(np.mean(np.abs(10.0 * np.log10(b_est[keep] / b_ref[keep])))) if keep.any() else 0.0
    return {"level_db": float(level), "band_db": band}


def phase_error_share(reference, estimate, n_fft: int = 2048) -> float:
    """Share of the complex STFT error energy that is phase, in [0, 1] (module docstring)."""
    ref, est = _pair(reference, estimate)
    x, y = _stft(ref, n_fft, n_fft // 4), _stft(est, n_fft, n_fft // 4)
    total = float((x - y).abs().square().sum())
    if total <= 0.0:
        return 0.0
    magnitude = float((x.abs() - y.abs()).square().sum())
    return float(min(max(1.0 - magnitude / total, 0.0), 1.0))


def si_sdr(reference, estimate, eps: float = 1e-12) -> float:
    """Scale-invariant SDR (dB) of ``estimate`` against ``reference``, averaged over channels.

    Per channel, both zero-mean: ``a = <est, ref> / |ref|^2``; ``10 log10(|a ref|^2 / |est - a ref|^2)``.
    ``eps`` keeps identical signals finite (a very large value, ~140 dB) and silence defined: an
    all-zero estimate scores 0 dB by this convention, so check decoders for silence separately.
    """
    ref, est = _pair(reference, estimate)
    ref = ref - ref.mean(dim=-1, keepdim=True)
    est = est - est.mean(dim=-1, keepdim=True)
    scale = (est * ref).sum(-1, keepdim=True) / ((ref * ref).sum(-1, keepdim=True) + eps)
    target = scale * ref
    noise = est - target
    ratio = ((target * target).sum(-1) + eps) / ((noise * noise).sum(-1) + eps)
    return float((10.0 * torch.log10(ratio)).mean())


def estimate_lag(reference, estimate, max_lag: int) -> int:
    """Lag (samples) maximising the cross-correlation of the channel sums: ``estimate[n + lag] ~ reference[n]``.

    Searched in ``[-max_lag, max_lag]`` via FFT. Positive lag: the estimate is late.
    """
    ref = _as_signal(reference, "reference").sum(0).numpy()
    est = _as_signal(estimate, "estimate").sum(0).numpy()
    n = len(ref) + len(est)
    size = 1 << int(np.ceil(np.log2(n)))
    corr = np.fft.irfft(np.fft.rfft(est, size) * np.conj(np.fft.rfft(ref, size)), size)
    lags = np.concatenate([np.arange(0, max_lag + 1), np.arange(-max_lag, 0)])
    values = np.concatenate([corr[: max_lag + 1], corr[size - max_lag:]])
    return int(lags[int(np.argmax(values))])


def _shift(audio: np.ndarray, lag: int, length: int) -> np.ndarray:
    """``audio[:, n + lag]`` for n in [0, length), zero outside."""
    out = np.zeros((audio.shape[0], length), dtype=np.float32)
    src_start, dst_start = max(lag, 0), max(-lag, 0)
    count = min(audio.shape[1] - src_start, length - dst_start)
    if count > 0:
        out[:, dst_start:dst_start + count] = audio[:, src_start:src_start + count]
    return out


def find_ffmpeg(ffmpeg: str | None = None) -> str:
    """Path of the ffmpeg executable, or :class:`MissingDependencyError`."""
    path = shutil.which(ffmpeg or "ffmpeg")
    if path is None:
        raise MissingDependencyError(
            f"'{ffmpeg or 'ffmpeg'}' not found: install ffmpeg with libopus (e.g. apt-get install ffmpeg)"
        )
    return path


def _run(cmd: list[str]) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        lines = (proc.stderr or "").strip().splitlines()
        detail = lines[-1] if lines else f"exit code {proc.returncode}"
        if "libopus" in detail or "Unknown encoder" in detail:
            raise MissingDependencyError(f"ffmpeg cannot encode Opus ({detail}): install an ffmpeg built with libopus")
        raise DiffariffError(f"ffmpeg failed: {detail}")


def opus_roundtrip(
    audio, sample_rate: int, bitrate_kbps: float, *, ffmpeg: str | None = None, align: bool = True
) -> np.ndarray:
    """``audio [C, N]`` (C = 1 or 2) encoded to Opus at ``bitrate_kbps`` and decoded, ``float32 [C, N]``.

    Runs ``ffmpeg -i in.wav -c:a libopus -b:a <kbps>k out.opus`` and decodes back to
    ``sample_rate`` Hz in a temporary folder. With ``align`` the decoded signal is shifted by the
    cross-correlation lag (searched within +-0.1 s) so it lines up with the input sample for
    sample, then cropped / zero-padded to N samples.

    Raises: MissingDependencyError (no ffmpeg / no libopus), InputError (bad audio or bitrate).
    """
    check_sample_rate(sample_rate, "audio")
    if not 1.0 <= float(bitrate_kbps) <= 512.0:
        raise InputError(f"Opus bitrate must be 1-512 kbps, got {bitrate_kbps}")
    arr = _as_signal(audio, "audio").numpy().astype(np.float32)
    if arr.shape[0] > 2:
        raise InputError(f"opus_roundtrip takes mono or stereo audio, got {arr.shape[0]} channels")
    exe = find_ffmpeg(ffmpeg)
    with tempfile.TemporaryDirectory(prefix="diffariff-opus-") as tmp:
        wav_in, coded, wav_out = Path(tmp) / "in.wav", Path(tmp) / "out.opus", Path(tmp) / "out.wav"
        save_audio(wav_in, arr, sample_rate, subtype="float")
        base = [exe, "-hide_banner", "-loglevel", "error", "-nostdin", "-y"]
        _run(base + ["-i", str(wav_in), "-c:a", "libopus", "-b:a", f"{float(bitrate_kbps):g}k", str(coded)])
        _run(base + ["-i", str(coded), "-ar", str(int(sample_rate)), "-c:a", "pcm_f32le", str(wav_out)])
        decoded, _ = load_audio(wav_out, channels=arr.shape[0], max_seconds=None)
    lag = estimate_lag(arr, decoded, int(MAX_ALIGN_SECONDS * sample_rate)) if align else 0
    return _shift(decoded, lag, arr.shape[1])
