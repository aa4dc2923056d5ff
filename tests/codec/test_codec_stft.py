"""The codec front end: exact inverse, shapes, packing of DC/Nyquist, safe gradients."""

from __future__ import annotations

import pytest
import torch

from diffariff.codec.stft import CompressedSTFT


@pytest.mark.parametrize("demodulate", [False, True])
@pytest.mark.parametrize("n", [4096, 3 * 4096, 25 * 4096])
def test_exact_inverse_on_rendered_audio(render_notes, n, demodulate):
    audio = torch.from_numpy(render_notes(0, [60, 64, 67, 72], seconds=n / 48_000 + 0.01))[:, :n]
    t = CompressedSTFT(demodulate=demodulate)
    spec = t(audio)
    assert spec.shape == (2, 2, 1024, n // 512)
    back = t.inverse(spec)
    assert back.shape == audio.shape
    assert (back - audio).abs().max() < 1e-5


def test_exact_inverse_full_scale_noise_and_dc_nyquist():
    g = torch.Generator().manual_seed(0)
    n = 8192
    noise = torch.rand(1, n, generator=g) * 2 - 1
    k = torch.arange(n)
    dc_ny = 0.3 + 0.5 * (-1.0) ** k  # energy only in the DC and Nyquist bins
    t = CompressedSTFT()
    for x in (noise, dc_ny[None].float()):
        assert (t.inverse(t(x)) - x).abs().max() < 1e-5


def test_compression_formula_and_statistics(render_notes):
    x = torch.from_numpy(render_notes(33, [40, 43, 45], seconds=1.0 - 4 / 48_000))[:1, : 4096 * 11]
    t = CompressedSTFT()
    spec = t(x)
    raw = torch.stft(torch.nn.functional.pad(x[None], (768, 768), mode="reflect")[0], 2048, 512,
                     window=torch.hann_window(2048), center=False, return_complex=True)
    mag = torch.sqrt(spec[:, 0, 1:] ** 2 + spec[:, 1, 1:] ** 2)
    assert torch.allclose(mag, 0.34 * raw[:, 1:-1].abs() ** 0.65, atol=1e-5)
    assert 0.005 < float(spec.std()) < 1.0


def test_inverse_gradient_is_finite_on_silence():
    t = CompressedSTFT()
    spec = torch.zeros(1, 2, 1024, 16, requires_grad=True)
    t.inverse(spec).sum().backward()
    assert torch.isfinite(spec.grad).all()


def test_demodulation_makes_steady_tones_steady_and_keeps_magnitudes():
    """In the raw STFT a steady tone's phase turns by pi k / 2 per frame (steady only for k % 4 == 0:
    a 93.75 Hz grid); demodulated it is steady at every bin centre and turns slowly between them."""
    n = torch.arange(8 * 4096).float()
    raw_t, dem_t = CompressedSTFT(), CompressedSTFT(demodulate=True)

    def frame_phase_steps(t: CompressedSTFT, k: float) -> torch.Tensor:
        spec = t(torch.cos(2 * torch.pi * k / 2048 * n)[None])[0, :, round(k), 4:-4]
        phase = torch.atan2(spec[1], spec[0])
        return torch.remainder(phase[1:] - phase[:-1] + torch.pi, 2 * torch.pi) - torch.pi  # wrapped to (-pi, pi]

    for k in (101, 102, 103, 257):  # not multiples of 4
        assert frame_phase_steps(dem_t, k).abs().max() < 1e-3
        assert frame_phase_steps(raw_t, k).abs().min() > 1.5  # pi/2 or pi every frame
    steps = frame_phase_steps(dem_t, 101.25)  # a quarter bin above the centre: pi/8 per frame (2 pi * 0.25 / 4)
    assert torch.allclose(steps, torch.full_like(steps, torch.pi / 8), atol=0.05)
    x = torch.randn(1, 4 * 4096, generator=torch.Generator().manual_seed(1))
    raw, dem = raw_t(x), dem_t(x)
    assert torch.allclose(raw.square().sum(1), dem.square().sum(1), atol=1e-5)  # magnitudes unchanged
    assert torch.equal(raw[:, :, 0], dem[:, :, 0])  # the packed DC/Nyquist row is not rotated
