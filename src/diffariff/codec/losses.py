"""Differentiable reconstruction losses of the codec's training (computed in float32).

* :func:`complex_l1`: L1 between compressed complex spectrograms ``[B, S, F, T]`` (phase-aware).
* :func:`mr_stft_loss`: multi-resolution STFT loss on waveforms ``[B, N]``: per resolution, L1 of
  magnitudes + L1 of log-magnitudes, and (``complex_weight``) L1 of the amplitude-compressed
  (|X|**0.5) complex STFT, which penalises phase errors at every resolution.
* :func:`magnitude_loss` and :func:`phase_loss`: the compressed spectrogram's magnitude and phase
  scored separately. Under phase uncertainty a complex L1 is minimised by shrinking magnitudes
  towards zero (the mean of unit phasors of random angle is short): the stage-1 codec trained with it
  decoded stems 6-15 dB too quiet. Scoring magnitude on its own (linear + log L1) keeps its level
  unbiased; the phase term only turns the predicted phasor, weighted by the target's magnitude.
* :func:`phase_derivative_loss`: the compressed spectrogram's phase *differences* between neighbouring
  frames (instantaneous frequency) and neighbouring bins (group delay), magnitude-weighted. The absolute
  phase of a note is not in a 64-channel latent, so a deterministic decoder cannot learn it and
  :func:`phase_loss` gives it no usable signal; but how the phase advances from frame to frame is fixed by
  the frequency, and it is what makes a partial a partial: frames whose phases do not advance overlap-add
  into a comb at the hop rate (48 000 / 512 = 93.75 Hz), which erases the notes (a decoder trained
  without this term reached a pitch-class correlation of 0.15; docs/design-notes.md). The term is blind
  to a constant phase offset.
* :func:`band_energy_loss`: L1 of log mel-band energies per STFT frame of waveforms ``[B, N]``. Bin-wise
  losses let a decoder that is unsure where a harmonic lies predict (near) nothing there; band
  energies make it put the energy somewhere in the right band, so level and spectral balance hold.
* :func:`semitone_band_loss`: the same on semitone-wide bands of an 8192-point STFT (65 Hz - 8 kHz):
  energy in the right *note*, which mel bands, several semitones wide in the bass, do not see.

* :func:`note_profile` and :func:`latent_note_loss`: a *latent* term, not a reconstruction term. A linear
  read-out of each latent frame must predict that frame's log energies in semitone bands (level and
  spectral envelope removed). The reconstruction losses reach the encoder only through the decoder, and
  a small codec trained with them keeps the spectral envelope in its latents and little of the notes:
  ``diffariff eval codec --latent-probe`` finds that a linear probe from the bundled codec's latents to
  per-frame pitch-class profiles reaches 0.15 correlation, against 0.63 from 128 log-mel bands of the
  same audio (docs/experiments.md, codec). Latent models have to find the notes in
  the latents to play in key; this term puts them there, linearly.

* :func:`phase_aligned`: not a loss but a stage-2 *target*: the true spectrogram with each bin's phase
  turned toward the deterministic decoder's, over a window of frames. The residual between the true and
  the deterministic spectrogram is mostly a phase field that the latent does not determine
  (docs/design-notes.md, codec), and a consistency decoder fits its posterior mean, ~0. Aligned, the residual keeps
  what the latent does determine (magnitudes, and with a window > 1 frame the phase's course within it).

* :func:`energy_score`: the energy score (per element, i.e. the fair CRPS) of two stochastic
  decodings of the same clip. Unlike every loss above it is a proper scoring rule for a
  *distribution*: its expectation is minimised by decodings drawn from the true conditional
  distribution, so a stochastic decoder cannot win by predicting the mean (for a bin of unknown phase
  the mean is ~0, i.e. "remove energy").

Only training objectives live here. The held-out metrics (multi-resolution STFT distance, log-mel
L1, SI-SDR) are defined once, in :mod:`diffariff.eval.reconstruction`: those are float64 scores of
detached signals, not differentiable losses, and both the codec trainer's ``metrics.csv`` and
``diffariff eval codec`` use them, so the two report the same quantities.
"""

from __future__ import annotations

import math

import librosa
import torch

#: (n_fft, hop) of :func:`mr_stft_loss`, Hann windows.
RESOLUTIONS = ((256, 64), (512, 128), (1024, 256), (2048, 512), (4096, 1024))
#: ... and with a 8192-point window added (5.9 Hz bins: resolves the partials of bass notes, which the
#: 2048-point codec spectrogram's 23.4 Hz bins do not; only a decoding with coherent phase scores well).
PITCH_RESOLUTIONS = RESOLUTIONS + ((8192, 2048),)
_LOG_EPS = 1e-5


def _stft(x: torch.Tensor, n_fft: int, hop: int) -> torch.Tensor:
    window = torch.hann_window(n_fft, device=x.device)
    return torch.stft(x.float(), n_fft, hop, window=window, center=True, return_complex=True)


def complex_l1(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean |pred - target| of two spectrogram tensors of one shape (e.g. ``[B, S, F, T]``) -> scalar."""
    return (pred.float() - target.float()).abs().mean()


def mr_stft_loss(pred: torch.Tensor, target: torch.Tensor, complex_weight: float = 1.0,
                 resolutions=RESOLUTIONS) -> torch.Tensor:
    """Waveforms ``[B, N]`` -> scalar loss (mean over resolutions), differentiable in ``pred``."""
    total = pred.new_zeros((), dtype=torch.float32)
    for n_fft, hop in resolutions:
        p, t = _stft(pred, n_fft, hop), _stft(target, n_fft, hop)
        pm = (p.real.square() + p.imag.square() + 1e-12).sqrt()
        tm = t.abs()
        total = total + (pm - tm).abs().mean() + (torch.log(pm + _LOG_EPS) - torch.log(tm + _LOG_EPS)).abs().mean()
        if complex_weight:
            pc = p * (pm + 1e-8).pow(-0.5)
            tc = t * (tm + 1e-8).pow(-0.5)
            total = total + complex_weight * torch.view_as_real(pc - tc).abs().mean()
    return total / len(resolutions)


def _polar_parts(spec: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``[B, 2A, F, T]`` (real, imaginary per audio channel) -> real, imaginary, magnitude ``[B, A, F, T]``
    (float32; the magnitude has a 1e-12 floor under the root so its gradient stays finite)."""
    b, s = spec.shape[:2]
    z = spec.float().reshape(b, s // 2, 2, *spec.shape[2:])
    re, im = z[:, :, 0], z[:, :, 1]
    return re, im, (re.square() + im.square() + 1e-12).sqrt()


def magnitude_loss(pred: torch.Tensor, target: torch.Tensor, log_eps: float = 1e-3) -> torch.Tensor:
    """Compressed spectrograms ``[B, 2A, F, T]`` -> scalar: L1 of magnitudes + L1 of
    ``log(magnitude + log_eps)`` (phase ignored). ``log_eps`` 1e-3 in the compressed domain is about
    -75 dBFS per bin, so near-silent bins do not dominate the log term."""
    _, _, pm = _polar_parts(pred)
    _, _, tm = _polar_parts(target)
    return (pm - tm).abs().mean() + (torch.log(pm + log_eps) - torch.log(tm + log_eps)).abs().mean()


def phase_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Compressed spectrograms ``[B, 2A, F, T]`` -> scalar: ``mean(|T| (1 - cos(angle P - angle T)))``.

    Weighted by the target magnitude so inaudible bins do not matter; its gradient with respect to
    the predicted magnitude is zero (only the direction of P counts)."""
    pr, pi, pm = _polar_parts(pred)
    tr, ti, tm = _polar_parts(target)
    # |T| cos(dphi) = Re(P conj T) / |P|
    return (tm - (pr * tr + pi * ti) / pm).mean()


def _weighted_phase_error(p: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Complex tensors of one shape -> ``mean(sqrt|t| (1 - cos(angle p - angle t)))`` (|t| has the units of
    a product of two compressed magnitudes, so its root has those of one)."""
    pm = (p.real.square() + p.imag.square() + 1e-16).sqrt()  # products of magnitudes: small floors
    tm = t.abs().detach()  # the target's weight, exactly 0 where it is silent
    cos = (p.real * t.real + p.imag * t.imag) / (pm * tm.clamp_min(1e-8))
    return (tm.sqrt() * (1.0 - cos)).mean()


def phase_derivative_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Compressed spectrograms ``[B, 2A, F, T]`` -> scalar: the magnitude-weighted phase error of
    ``X[f, t] conj(X[f, t-1])`` (time direction: instantaneous frequency) plus that of
    ``X[f, t] conj(X[f-1, t])`` (frequency direction: group delay), on rows 1.. (row 0 packs DC and
    Nyquist). Zero iff every such phase difference matches the target's where the target has energy."""
    pr, pi, _ = _polar_parts(pred)
    tr, ti, _ = _polar_parts(target)
    p = torch.complex(pr[:, :, 1:], pi[:, :, 1:])
    t = torch.complex(tr[:, :, 1:], ti[:, :, 1:])
    dt = _weighted_phase_error(p[..., 1:] * p[..., :-1].conj(), t[..., 1:] * t[..., :-1].conj())
    df = _weighted_phase_error(p[:, :, 1:] * p[:, :, :-1].conj(), t[:, :, 1:] * t[:, :, :-1].conj())
    return dt + df


#: (n_fft, hop, mel bands) of :func:`band_energy_loss`.
BAND_RESOLUTIONS = ((1024, 256, 48), (2048, 512, 64))
_BAND_POWER_FLOOR = 1e-8
_MEL_CACHE: dict[tuple[int, int, int], torch.Tensor] = {}


def _log_band_l1(pred: torch.Tensor, target: torch.Tensor, fb: torch.Tensor, n_fft: int, hop: int) -> torch.Tensor:
    """Waveforms ``[B, N]`` and filters ``fb [bands, n_fft/2+1]`` -> mean ``|ln(E_pred + 1e-8) - ln(E_tgt + 1e-8)|``,
    E = filtered |STFT|^2 per band and frame."""
    p, t = _stft(pred, n_fft, hop), _stft(target, n_fft, hop)
    ep = torch.einsum("mf,bft->bmt", fb, p.real.square() + p.imag.square())
    et = torch.einsum("mf,bft->bmt", fb, t.real.square() + t.imag.square())
    return (torch.log(ep + _BAND_POWER_FLOOR) - torch.log(et + _BAND_POWER_FLOOR)).abs().mean()


def band_energy_loss(pred: torch.Tensor, target: torch.Tensor, sample_rate: int = 48_000,
                     resolutions=BAND_RESOLUTIONS) -> torch.Tensor:
    """Waveforms ``[B, N]`` -> scalar: mean over resolutions of ``|ln(E_pred + 1e-8) - ln(E_tgt + 1e-8)|``,
    E = mel-band power per frame (triangular HTK-mel filters over |STFT|^2)."""
    total = pred.new_zeros((), dtype=torch.float32)
    for n_fft, hop, n_mels in resolutions:
        key = (sample_rate, n_fft, n_mels)
        if key not in _MEL_CACHE:
            fb = librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=n_mels, fmin=0.0, fmax=sample_rate / 2,
                                     htk=True, norm=None)
            _MEL_CACHE[key] = torch.from_numpy(fb).float()
        total = total + _log_band_l1(pred, target, _MEL_CACHE[key], n_fft, hop)
    return total / len(resolutions)


#: (n_fft, hop, lowest and highest centre in Hz) of :func:`semitone_band_loss`: C2 (65.4 Hz) to ~8 kHz.
SEMITONE_RESOLUTION = (8192, 2048, 65.406, 8000.0)
_SEMITONE_CACHE: dict[tuple[int, int, float, float], torch.Tensor] = {}


def semitone_filterbank(sample_rate: int, n_fft: int, f_lo: float, f_hi: float) -> torch.Tensor:
    """Triangular filters ``[bands, n_fft/2+1]`` centred on the equal-tempered semitones from ``f_lo`` to
    ``f_hi`` Hz, each one semitone wide on either side (peak 1 at its centre), in float32."""
    bands = semitone_bands((n_fft, 0, f_lo, f_hi))
    freqs = torch.linspace(0.0, sample_rate / 2.0, n_fft // 2 + 1, dtype=torch.float64)
    semis = 12 * torch.log2(freqs.clamp_min(1e-3) / f_lo)  # bin frequencies in semitones above f_lo
    centres = torch.arange(bands, dtype=torch.float64)[:, None]
    return (1.0 - (semis[None] - centres).abs()).clamp_min(0.0).float()


def _cached_semitone_filterbank(sample_rate: int, resolution) -> torch.Tensor:
    """:func:`semitone_filterbank` of ``resolution`` (n_fft, hop, f_lo, f_hi), built once per process."""
    n_fft, _, f_lo, f_hi = resolution
    key = (sample_rate, n_fft, f_lo, f_hi)
    if key not in _SEMITONE_CACHE:
        _SEMITONE_CACHE[key] = semitone_filterbank(sample_rate, n_fft, f_lo, f_hi)
    return _SEMITONE_CACHE[key]


def semitone_bands(resolution=SEMITONE_RESOLUTION) -> int:
    """Number of bands of :func:`semitone_filterbank` for ``resolution`` (84 for the default: C2 .. ~8 kHz)."""
    _, _, f_lo, f_hi = resolution
    return int(math.floor(12 * math.log2(f_hi / f_lo))) + 1


def semitone_band_loss(pred: torch.Tensor, target: torch.Tensor, sample_rate: int = 48_000,
                       resolution=SEMITONE_RESOLUTION) -> torch.Tensor:
    """Waveforms ``[B, N]`` -> scalar: L1 of ``ln(E + 1e-8)`` with E the power per semitone band and frame
    (:func:`semitone_filterbank` over an 8192-point |STFT|^2, 5.9 Hz bins). Mel bands are several
    semitones wide below ~500 Hz, so they cannot tell a note from its neighbour; these bands can, and
    like the mel-band term they ask for energy in the right band rather than in an exact bin."""
    n_fft, hop, _, _ = resolution
    return _log_band_l1(pred, target, _cached_semitone_filterbank(sample_rate, resolution), n_fft, hop)


#: Half-width in semitone bands of the envelope :func:`note_profile` removes (6: one octave in all).
NOTE_ENVELOPE_HALF_WIDTH = 6


def semitone_frame_energies(x: torch.Tensor, frame_samples: int, sample_rate: int = 48_000,
                            resolution=SEMITONE_RESOLUTION) -> torch.Tensor:
    """Waveforms ``[B, N]`` -> ``[B, bands, N // frame_samples]``: per latent frame of ``frame_samples``, the
    power in each semitone band (:func:`semitone_filterbank` over an 8192-point Hann |STFT|^2 centred on
    the frame's centre; band 0 = C2, MIDI 36)."""
    n_fft = resolution[0]
    fb = _cached_semitone_filterbank(sample_rate, resolution)
    pad = (n_fft - frame_samples) // 2
    xp = torch.nn.functional.pad(x.float()[:, None], (pad, n_fft - frame_samples - pad))[:, 0]
    spec = torch.stft(xp, n_fft, frame_samples, window=torch.hann_window(n_fft, device=x.device), center=False,
                      return_complex=True)[..., : x.shape[-1] // frame_samples]
    return torch.einsum("mf,bft->bmt", fb.to(x.device), spec.real.square() + spec.imag.square())


def note_profile(x: torch.Tensor, frame_samples: int, sample_rate: int = 48_000,
                 resolution=SEMITONE_RESOLUTION) -> torch.Tensor:
    """Waveforms ``[B, N]`` (N a multiple of ``frame_samples``) -> ``[B, bands, N / frame_samples]``: per
    latent frame, ``ln(E + 1e-8)`` of :func:`semitone_frame_energies` minus its moving average over an
    octave of bands: level and spectral envelope removed, what is left are the peaks of notes and their
    partials (the envelope is already in the latents: a linear read-out of the bundled codec's latents
    explains 70 % of the variance of the plain log band energies, but little of the pitch). A silent
    frame gives ~0. No gradient is needed: it is a training target."""
    log_e = torch.log(semitone_frame_energies(x, frame_samples, sample_rate, resolution) + _BAND_POWER_FLOOR)
    # the spectral envelope: a moving average over one octave (13 bands, edge bands repeated)
    width = 2 * NOTE_ENVELOPE_HALF_WIDTH + 1
    padded = torch.nn.functional.pad(log_e, (0, 0, NOTE_ENVELOPE_HALF_WIDTH, NOTE_ENVELOPE_HALF_WIDTH), mode="replicate")
    envelope = torch.nn.functional.avg_pool1d(padded.transpose(1, 2).reshape(-1, 1, padded.shape[1]), width, 1)
    return log_e - envelope.reshape(log_e.shape[0], log_e.shape[2], -1).transpose(1, 2)


def latent_note_loss(prediction: torch.Tensor, profile: torch.Tensor) -> torch.Tensor:
    """Read-out ``[B, bands, T]`` of the latents and :func:`note_profile` ``[B, bands, T]`` -> scalar mean
    squared error, each frame weighted by how far its profile is from flat (its std over bands), so that
    silent and noise-like frames, which hold no notes, count little."""
    weight = profile.std(dim=1, keepdim=True)
    weight = weight / weight.mean().clamp_min(1e-6)
    return (weight * (prediction.float() - profile).square()).mean()


def phase_aligned(spec: torch.Tensor, ref: torch.Tensor, frames: int) -> torch.Tensor:
    """Compressed spectrograms ``spec``, ``ref`` ``[B, 2A, F, T]`` -> ``spec`` with its phase turned, bin by
    bin, by the angle of the cross-spectrum ``spec conj(ref)`` averaged over ``frames`` STFT frames centred
    on each frame. Magnitudes are unchanged. ``frames`` 1 gives ``|spec|`` with ``ref``'s phase; a window
    as long as the clip gives one rotation per bin (``ref`` returned exactly if ``spec`` is ``ref`` with a
    constant phase offset per bin). Bins whose averaged cross-spectrum is 0 are left as they are."""
    if frames < 1:
        raise ValueError(f"frames must be >= 1, got {frames}")
    xr, xi, _ = _polar_parts(spec)
    rr, ri, _ = _polar_parts(ref)
    x = torch.complex(xr, xi)
    cross = x * torch.complex(rr, ri).conj()
    if frames > 1:  # centred moving average over frames of the real and imaginary parts
        t = cross.shape[-1]
        parts = torch.stack([cross.real, cross.imag]).reshape(-1, 1, t)
        parts = torch.nn.functional.avg_pool1d(parts, frames, 1, frames // 2, count_include_pad=False)[..., :t]
        parts = parts.reshape(2, *cross.shape)
        cross = torch.complex(parts[0], parts[1])
    norm = cross.abs()
    turn = torch.where(norm > 1e-12, cross / norm.clamp_min(1e-12), torch.ones_like(cross))
    out = x * turn.conj()
    return torch.stack([out.real, out.imag], dim=2).reshape(spec.shape)


def energy_score(a: torch.Tensor, b: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Two samples ``a``, ``b`` and the truth ``target`` of one shape (e.g. spectrograms ``[B, S, F, T]``)
    -> scalar ``mean(|a - y| + |b - y| - |a - b|) / 2``: the unbiased two-sample estimate of the CRPS
    of each element (energy score with beta = 1), averaged. Each term is >= 0 (triangle inequality),
    and is 0 wherever the truth lies between the two samples. One draw says little. Its expectation
    over the decoder's noise is what is proper: lowest when the samples follow the truth's
    distribution."""
    a, b, y = a.float(), b.float(), target.float()
    return ((a - y).abs() + (b - y).abs() - (a - b).abs()).mean() / 2
