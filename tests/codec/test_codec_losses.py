"""The codec's training losses on compressed spectrograms of rendered audio: what each term is blind to."""

from __future__ import annotations

import math

import pytest
import torch

from codec_helpers import TINY
from diffariff.codec import Codec, CodecConfig
from diffariff.codec.losses import (
    band_energy_loss,
    complex_l1,
    energy_score,
    latent_note_loss,
    magnitude_loss,
    mr_stft_loss,
    note_profile,
    phase_aligned,
    phase_derivative_loss,
    phase_loss,
    semitone_band_loss,
    semitone_bands,
    semitone_filterbank,
)


@pytest.fixture(scope="module")
def spec(render_notes) -> torch.Tensor:
    """Compressed spectrogram ``[1, 2, 1024, T]`` of a rendered bass line (mono)."""
    audio = render_notes(33, [36, 43, 40, 45], seconds=0.5)[:, :4096 * 4].mean(0)
    return Codec(CodecConfig(**TINY)).spectrogram(torch.from_numpy(audio)[None, None])


def _rotate(spec: torch.Tensor, angle: float) -> torch.Tensor:
    re, im = spec[:, 0], spec[:, 1]
    c, s = math.cos(angle), math.sin(angle)
    return torch.stack([c * re - s * im, s * re + c * im], dim=1)


def test_magnitude_loss_ignores_phase_and_sees_level(spec):
    assert float(magnitude_loss(spec, spec)) == pytest.approx(0.0, abs=1e-5)
    assert float(magnitude_loss(_rotate(spec, 2.0), spec)) == pytest.approx(0.0, abs=1e-5)
    assert float(magnitude_loss(0.5 * spec, spec)) > 0.1


def test_phase_loss_ignores_magnitude_and_sees_phase(spec):
    mean_mag = float(spec.square().sum(1).sqrt().mean())
    assert float(phase_loss(spec, spec)) == pytest.approx(0.0, abs=1e-5)
    assert float(phase_loss(0.3 * spec, spec)) == pytest.approx(0.0, abs=1e-5)
    assert float(phase_loss(-spec, spec)) == pytest.approx(2 * mean_mag, rel=1e-4)  # 1 - cos(pi) = 2
    # the phase term gives no gradient along the predicted magnitude
    scale = torch.tensor(0.7, requires_grad=True)
    phase_loss(scale * _rotate(spec, 0.5), spec).backward()
    assert abs(float(scale.grad)) < 1e-5


def test_complex_l1_prefers_shrinking_under_random_phase(spec):
    """Why ``magphase`` exists: with a random phase, complex L1 is lower for a quieter prediction, while
    the magnitude loss is lowest at the true level."""
    g = torch.Generator().manual_seed(0)
    angle = torch.rand(spec.shape[0], *spec.shape[2:], generator=g) * 2 * math.pi
    mag = spec.square().sum(1).sqrt()
    random_phase = torch.stack([mag * torch.cos(angle), mag * torch.sin(angle)], dim=1)
    gains = (0.25, 0.5, 1.0)
    c = [float(complex_l1(g_ * random_phase, spec)) for g_ in gains]
    m = [float(magnitude_loss(g_ * random_phase, spec)) for g_ in gains]
    assert c[0] < c[1] < c[2]
    assert m[2] < m[1] < m[0]


def _random_phase(spec: torch.Tensor, seed: int) -> torch.Tensor:
    """``spec``'s magnitudes with a uniformly random phase in every bin."""
    g = torch.Generator().manual_seed(seed)
    angle = torch.rand(spec.shape[0], *spec.shape[2:], generator=g) * 2 * math.pi
    mag = spec.square().sum(1).sqrt()
    return torch.stack([mag * torch.cos(angle), mag * torch.sin(angle)], dim=1)


def test_energy_score_prefers_samples_of_the_right_distribution_to_the_mean(spec):
    """When the truth's phase is unknown (here: random), the energy score of two decodings ranks
    samples at the true level best, quieter samples worse and the posterior mean (zero) worst, the
    reverse of complex L1, which prefers the mean."""
    truths = [_random_phase(spec, 100 + k) for k in range(4)]  # four draws of the unknown truth

    def expected(gain: float) -> tuple[float, float]:
        es = [float(energy_score(gain * _random_phase(spec, 2 * k), gain * _random_phase(spec, 2 * k + 1), y))
              for k, y in enumerate(truths)]
        l1 = [float(complex_l1(gain * _random_phase(spec, 2 * k), y)) for k, y in enumerate(truths)]
        return sum(es) / len(es), sum(l1) / len(l1)

    (es_true, l1_true), (es_half, l1_half), (es_mean, l1_mean) = expected(1.0), expected(0.5), expected(0.0)
    assert es_true < es_half < es_mean
    assert l1_mean < l1_half < l1_true
    assert float(energy_score(spec, spec, spec)) == 0.0


def test_band_energy_loss_sees_level_not_exact_bins(render_notes):
    """A bass line and the same line a semitone up have nearly equal band energies but different bins."""
    a = torch.from_numpy(render_notes(33, [36, 43, 40, 45], seconds=0.5)[0])[None]
    up = torch.from_numpy(render_notes(33, [37, 44, 41, 46], seconds=0.5)[0])[None]
    assert float(band_energy_loss(a, a)) == pytest.approx(0.0, abs=1e-6)
    quiet = float(band_energy_loss(0.1 * a, a))  # -20 dB: ln(100) = 4.6 per band where energy >> floor
    shifted = float(band_energy_loss(up, a))
    assert shifted < 0.5 * quiet
    assert float(mr_stft_loss(up, a)) > float(mr_stft_loss(0.5 * a, a))  # bin-wise: the shift costs more


def test_phase_derivative_loss_ignores_a_constant_offset_and_sees_frozen_phase(spec):
    """A constant phase offset (unknowable from a latent) costs nothing, nor does the level; frames whose
    phase does not advance (a comb at the hop rate) cost as much as a random phase."""
    assert float(phase_derivative_loss(spec, spec)) == pytest.approx(0.0, abs=1e-4)
    assert float(phase_derivative_loss(_rotate(spec, 2.0), spec)) == pytest.approx(0.0, abs=1e-4)
    assert float(phase_derivative_loss(0.4 * spec, spec)) == pytest.approx(0.0, abs=1e-4)
    mean_mag = float(spec.square().sum(1).sqrt().mean())
    assert float(phase_loss(_rotate(spec, 2.0), spec)) > mean_mag  # the absolute phase term is not blind to it
    mag = spec.square().sum(1).sqrt()
    frozen_angle = torch.atan2(spec[:, 1, :, :1], spec[:, 0, :, :1]).expand_as(mag)  # frame 0's phase everywhere
    frozen = torch.stack([mag * torch.cos(frozen_angle), mag * torch.sin(frozen_angle)], dim=1)
    random = _random_phase(spec, 3)
    assert float(phase_derivative_loss(frozen, spec)) > 0.5 * float(phase_derivative_loss(random, spec)) > 0.01
    # decoding a frozen-phase spectrogram loses the bass line's pitch classes; the true one keeps them
    from diffariff.eval.musical_fit import key_fit
    codec = Codec(CodecConfig(**TINY))
    truth = codec.audio_from_spectrogram(spec)[0, 0].numpy()
    kept = key_fit(codec.audio_from_spectrogram(_rotate(spec, 2.0))[0, 0].numpy(), truth, 48_000)
    lost = key_fit(codec.audio_from_spectrogram(frozen)[0, 0].numpy(), truth, 48_000)
    assert kept > 0.95 and lost < kept - 0.3


def test_semitone_band_loss_tells_a_note_from_its_neighbour(render_notes):
    """Mel bands barely see a bass line moved up a semitone (test above: 0.16 of a 20 dB level error);
    semitone bands see it twice as well (0.34), and cover C2 .. 8 kHz with one band per semitone."""
    a = torch.from_numpy(render_notes(33, [36, 43, 40, 45], seconds=0.5)[0])[None]
    up = torch.from_numpy(render_notes(33, [37, 44, 41, 46], seconds=0.5)[0])[None]
    assert float(semitone_band_loss(a, a)) == pytest.approx(0.0, abs=1e-6)
    quiet = float(semitone_band_loss(0.1 * a, a))
    shifted = float(semitone_band_loss(up, a))
    assert shifted > 0.25 * quiet
    assert shifted / quiet > 1.8 * float(band_energy_loss(up, a)) / float(band_energy_loss(0.1 * a, a))
    fb = semitone_filterbank(48_000, 8192, 65.406, 8000.0)
    assert fb.shape == (84, 4097) and bool((fb.sum(1) > 0).all())
    peak_bins = fb.argmax(1).float() * 48_000 / 8192
    assert torch.allclose(peak_bins[12], torch.tensor(130.8), atol=6.0)  # C3, one octave up


def test_note_profile_peaks_at_the_played_note_per_latent_frame(render_notes):
    """One profile column per 4096-sample frame; a held flute note peaks in its own semitone band (and one
    band higher a semitone up); the level is removed; silence gives a flat (zero) profile."""
    a = torch.from_numpy(render_notes(73, [69], beat_seconds=1.0, seconds=0.768)[0])[None]  # A4, 440 Hz
    up = torch.from_numpy(render_notes(73, [70], beat_seconds=1.0, seconds=0.768)[0])[None]
    prof = note_profile(a, 4096)
    assert prof.shape == (1, semitone_bands(), a.shape[-1] // 4096) == (1, 84, 9)
    band = prof[0, :, 2:6].mean(dim=1)  # frames inside the note
    assert int(band.argmax()) == 33  # band 0 = C2 (MIDI 36), so A4 (MIDI 69) is band 33
    assert int(note_profile(up, 4096)[0, :, 2:6].mean(dim=1).argmax()) == 34
    assert float((note_profile(0.1 * a, 4096) - prof).abs().mean()) < 0.05  # level-free (but for the floor)
    assert float(note_profile(torch.zeros(1, 4096 * 3), 4096).abs().max()) < 1e-5
    assert float(latent_note_loss(prof, prof)) == 0.0
    assert float(latent_note_loss(note_profile(up, 4096), prof)) > 0.5


def _bin_rotate(spec: torch.Tensor, angles: torch.Tensor) -> torch.Tensor:
    """Rotate each frequency row ``f`` of ``[1, 2, F, T]`` by ``angles[f]`` (a per-bin phase offset)."""
    c, s = torch.cos(angles)[:, None], torch.sin(angles)[:, None]
    re, im = spec[:, 0], spec[:, 1]
    return torch.stack([c * re - s * im, s * re + c * im], dim=1)


def test_phase_aligned_keeps_magnitudes_and_removes_a_per_bin_offset(spec):
    """Stage 2's aligned target: magnitudes are the truth's; a constant phase offset per bin (what a
    latent cannot know) is removed entirely by a whole-clip window; at one frame the phase is the
    reference's; a real phase disagreement within the window survives."""
    g = torch.Generator().manual_seed(0)
    offsets = torch.rand(spec.shape[2], generator=g) * 2 * math.pi
    truth = _bin_rotate(spec, offsets)  # the same notes with another absolute phase per bin
    whole = phase_aligned(truth, spec, frames=4 * spec.shape[-1])
    assert torch.allclose(whole, spec, atol=1e-4)
    assert float((truth - spec).square().sum()) > 0.5 * float(spec.square().sum())  # the offset mattered
    mag = lambda z: z.square().sum(1).sqrt()  # noqa: E731
    ref = _random_phase(spec, 5)
    one = phase_aligned(spec, ref, frames=1)
    assert torch.allclose(mag(one), mag(spec), atol=1e-5)
    loud = mag(ref) > 1e-3
    cos = (one * ref).sum(1) / (mag(one) * mag(ref)).clamp_min(1e-12)
    assert float(cos[loud].min()) > 0.999  # the reference's phase wherever it has one
    # over 8 frames a random reference phase cannot be aligned away: the residual stays large
    eight = phase_aligned(spec, ref, frames=8)
    assert torch.allclose(mag(eight), mag(spec), atol=1e-5)
    assert float((one - ref).square().sum()) < 1e-6 * float((spec - ref).square().sum())
    assert float((eight - ref).square().sum()) > 0.4 * float((spec - ref).square().sum())
    with pytest.raises(ValueError):
        phase_aligned(spec, ref, frames=0)
