"""The codec's front end: amplitude-compressed complex STFT with an exact inverse.

``forward``: audio ``[B, N]`` (N a multiple of ``hop``; the codec pads to multiples of 4096) ->
``[B, 2, 1024, N / hop]`` (real, imaginary) of ``X' = beta * |X|**alpha * exp(i * angle(X))``
(alpha 0.65, beta 0.34), Hann window 2048, hop 512.

Framing: the signal is reflect-padded by (n_fft - hop) / 2 = 768 samples on both sides and framed
without centring, so frame t covers samples [512 t - 768, 512 t + 1280): exactly N / 512 frames, eight
per latent frame. Every original sample lies under at least two windows with non-zero weight, so the
windowed overlap-add inverse (divide by the summed squared window) is exact.

Frequency packing: for real input the DC and Nyquist bins are real, so the 1025 bins fit 1024 complex
rows: row 0 holds the compressed DC value in its real part and the compressed Nyquist value in its
imaginary part (signed compression ``beta * sign(v) * |v|**alpha``). Rows 1..1023 are bins 1..1023.

Demodulation (``demodulate=True``): bin k of frame t is multiplied by ``exp(-i pi k t / 2)``. A partial
at the centre frequency of bin k advances its phase by ``2 pi k hop / n_fft = pi k / 2`` per frame, so
in the raw STFT even a steady tone's frames differ, with a period of up to 4 frames, and a decoder whose
output is steady when its latents are steady can only render steady *frames*: their overlap-add is
periodic in the hop, a comb at ``sample_rate / hop`` (93.75 Hz) that erases pitch. Demodulated, a steady
tone at a bin centre is a steady spectrogram, and one between bins turns slowly (at most pi / 4 per
frame). The rotation is a multiple of pi / 2 (exact in float), changes no magnitude, and is undone by
``inverse``; t counts frames from the start of the signal, so a chunk must start at a multiple of 4
frames (the codec's chunks start on latent frames, 8 STFT frames apart). DC and Nyquist (k = 0, 1024)
have factor 1.

``inverse`` undoes every step; ``inverse(forward(x)) == x`` to float32 rounding (~1e-6). Lengths that
are not multiples of ``hop`` must be padded by the caller and cropped back (the codec pads with zeros
to a multiple of 4096 and crops its output to the requested length).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

_EPS = 1e-20


class CompressedSTFT(torch.nn.Module):
    """Forward/inverse transform; holds the Hann window as a non-persistent buffer."""

    def __init__(self, n_fft: int = 2048, hop: int = 512, alpha: float = 0.65, beta: float = 0.34,
                 demodulate: bool = False):
        super().__init__()
        self.n_fft, self.hop, self.alpha, self.beta = n_fft, hop, alpha, beta
        self.demodulate = demodulate
        self.pad = (n_fft - hop) // 2
        self.register_buffer("window", torch.hann_window(n_fft, periodic=True), persistent=False)

    # compression -----------------------------------------------------------------------------------
    def _compress_real(self, v: torch.Tensor) -> torch.Tensor:
        return self.beta * torch.sign(v) * v.abs().pow(self.alpha)

    def _decompress_real(self, v: torch.Tensor) -> torch.Tensor:
        return torch.sign(v) * (v.abs() / self.beta).pow(1.0 / self.alpha)

    def _compress(self, z: torch.Tensor) -> torch.Tensor:
        mag2 = (z.real.square() + z.imag.square()).clamp_min(_EPS)
        return z * (self.beta * mag2.pow((self.alpha - 1.0) / 2))

    def _decompress(self, re: torch.Tensor, im: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mag2 = re.square() + im.square() + _EPS
        gain = self.beta ** (-1.0 / self.alpha) * mag2.pow((1.0 / self.alpha - 1.0) / 2)
        return re * gain, im * gain

    def _rotation(self, frames: int, sign: int) -> tuple[torch.Tensor, torch.Tensor]:
        """cos, sin ``[n_fft/2 - 1, frames]`` of ``sign * pi k t / 2`` for bins k = 1 .. n_fft/2 - 1."""
        k = torch.arange(1, self.n_fft // 2)
        quarter = (k[:, None] * torch.arange(frames)[None, :] * sign) % 4  # multiples of pi / 2
        cos = torch.tensor([1.0, 0.0, -1.0, 0.0])[quarter]
        sin = torch.tensor([0.0, 1.0, 0.0, -1.0])[quarter]
        return cos, sin

    def _rotate(self, re: torch.Tensor, im: torch.Tensor, sign: int) -> tuple[torch.Tensor, torch.Tensor]:
        cos, sin = self._rotation(re.shape[-1], sign)
        return re * cos - im * sin, re * sin + im * cos

    # transforms ------------------------------------------------------------------------------------
    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        """``[B, N]`` float audio (N % hop == 0, N > 768) -> ``[B, 2, n_fft/2, N/hop]`` float32."""
        x = audio.float()
        x = F.pad(x.unsqueeze(1), (self.pad, self.pad), mode="reflect").squeeze(1)
        spec = torch.stft(x, self.n_fft, self.hop, window=self.window, center=False, return_complex=True)
        dc = self._compress_real(spec[:, 0].real)
        ny = self._compress_real(spec[:, -1].real)
        body = self._compress(spec[:, 1:-1])
        bre, bim = body.real, body.imag
        if self.demodulate:
            bre, bim = self._rotate(bre, bim, -1)
        re = torch.cat([dc.unsqueeze(1), bre], dim=1)
        im = torch.cat([ny.unsqueeze(1), bim], dim=1)
        return torch.stack([re, im], dim=1)

    def inverse(self, spec: torch.Tensor) -> torch.Tensor:
        """``[B, 2, n_fft/2, T]`` -> ``[B, T * hop]`` float32 audio (exact inverse of :meth:`forward`)."""
        spec = spec.float()
        re, im = spec[:, 0], spec[:, 1]
        dc = self._decompress_real(re[:, :1])
        ny = self._decompress_real(im[:, :1])
        bre, bim = re[:, 1:], im[:, 1:]
        if self.demodulate:
            bre, bim = self._rotate(bre, bim, 1)
        bre, bim = self._decompress(bre, bim)
        zeros = torch.zeros_like(dc)
        full = torch.complex(torch.cat([dc, bre, ny], dim=1), torch.cat([zeros, bim, zeros], dim=1))
        frames = torch.fft.irfft(full, n=self.n_fft, dim=1)  # [B, n_fft, T]
        frames = frames * self.window[None, :, None]
        n_frames = frames.shape[-1]
        out_len = self.n_fft + self.hop * (n_frames - 1)
        y = F.fold(frames, (1, out_len), (1, self.n_fft), stride=(1, self.hop)).flatten(1)
        env = F.fold(
            self.window.square()[None, :, None].expand(1, -1, n_frames),
            (1, out_len), (1, self.n_fft), stride=(1, self.hop),
        ).flatten(1)
        y = y[:, self.pad: out_len - self.pad]
        env = env[:, self.pad: out_len - self.pad]
        return y / env
