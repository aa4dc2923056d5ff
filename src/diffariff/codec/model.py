"""The codec: a Music2Latent-style consistency autoencoder for 48 kHz audio.

``Codec.encode(audio [B, C, N]) -> latents [B, 64, ceil(N / 4096)]`` (tanh-bounded, 11.72 Hz) and
``Codec.decode(latents, steps=1, seed=None, mode="consistency") -> audio [B, C', 4096 T]``.

Decoding: the upsampler turns latents into a feature pyramid and a deterministic compressed
spectrogram ``det`` (``mode="deterministic"``, fast). The consistency U-Net denoises the *residual*
``r = spec - det`` from pure noise, conditioned on the pyramid and on ``det`` (stage 2 of the training
recipe: it only has to learn what the deterministic head misses). With an untrained U-Net (zero-
initialised output) consistency decoding equals deterministic decoding up to ~1e-4 noise.

Noise is keyed to absolute positions (blocks of 512 STFT frames, each drawn from its own generator
seeded by (seed, step, block)), so chunked and whole decoding draw identical noise.
"""

from __future__ import annotations

import math
import os
from typing import Self

import torch
from torch import nn

from ..checkpoint import config_from_dict, load_checkpoint, load_state_into, save_checkpoint
from ..errors import EmptyAudioError, InputError, NonFiniteAudioError
from ..torchutil import seeded_generator, setup_cpu
from . import consistency as ct
from .chunking import chunked_decode, chunked_encode
from .config import CodecConfig
from .decoder import ConsistencyUNet, Upsampler
from .encoder import Encoder
from .losses import note_profile
from .stereo import from_midside, pseudo_stereo, to_midside
from .stft import CompressedSTFT

KIND = "codec"
MODES = ("consistency", "deterministic")
_NOISE_BLOCK = 512  # STFT frames per independently seeded noise block


def checked_audio(audio: torch.Tensor) -> torch.Tensor:
    """A codec's input check: ``[B, C, N]`` or ``[C, N]`` with C 1 or 2, N >= 1, finite -> ``[B, C, N]``
    float32. Raises InputError / EmptyAudioError / NonFiniteAudioError with one line."""
    if not torch.is_tensor(audio):
        raise InputError(f"audio must be a torch tensor, got {type(audio).__name__}")
    if audio.dim() == 2:
        audio = audio.unsqueeze(0)
    if audio.dim() != 3:
        raise InputError(f"audio must be shaped [B, C, N] or [C, N], got {tuple(audio.shape)}")
    if audio.shape[-1] == 0 or audio.shape[0] == 0 or audio.shape[1] == 0:
        raise EmptyAudioError("audio has no samples")
    if audio.shape[1] > 2:
        raise InputError(f"audio must have 1 or 2 channels, got {audio.shape[1]}")
    audio = audio.float()
    if not torch.isfinite(audio).all():
        raise NonFiniteAudioError("audio contains NaN or infinite samples")
    return audio


class LatentCodec(nn.Module):
    """What both codecs (:class:`Codec`, :class:`~.synth_codec.SynthCodec`) share: the latent statistics
    (buffers ``latent_mean`` and ``latent_std``, set by the subclass), the chunk length of long audio
    (``config.chunk_seconds`` and ``config.frame_rate``) and the checkpoint file (:meth:`save`, :meth:`load`)."""

    #: the subclass's checkpoint kind and config dataclass
    kind: str
    config_class: type

    @property
    def latent_scale(self) -> float:
        """Multiply latents by this before diffusion (1 / measured latent std)."""
        return float(1.0 / self.latent_std.clamp_min(1e-6))

    def chunk_frames(self, chunk_seconds: float | None = None) -> int:
        """Core chunk length in latent frames for ``chunk_seconds`` (default: the config's)."""
        sec = self.config.chunk_seconds if chunk_seconds is None else chunk_seconds
        if math.isinf(sec):
            return 1 << 40
        return max(4, int(sec * self.config.frame_rate))

    def save(self, path: str | os.PathLike, *, dtype: torch.dtype | None = None, extra: dict | None = None):
        """Write a safetensors checkpoint of kind :attr:`kind` (config and latent statistics inside);
        ``dtype=torch.float16`` to ship."""
        info = {"latent_mean": float(self.latent_mean), "latent_std": float(self.latent_std),
                "latent_scale": self.latent_scale, "parameters": self.num_parameters()}
        info.update(extra or {})
        return save_checkpoint(path, self.state_dict(), kind=self.kind, config=self.config, extra=info, dtype=dtype)

    @classmethod
    def load(cls, path: str | os.PathLike) -> Self:
        """Rebuild a codec from :meth:`save`'s file (weights as float32, eval mode)."""
        ck = load_checkpoint(path, kind=cls.kind)
        model = cls(config_from_dict(cls.config_class, ck.config))
        load_state_into(model, ck.tensors, path)
        return model.eval()


class Codec(LatentCodec):
    kind = KIND
    config_class = CodecConfig

    def __init__(self, config: CodecConfig | None = None):
        super().__init__()
        self.config = config or CodecConfig()
        c = self.config
        self.stft = CompressedSTFT(c.n_fft, c.hop, c.compress_exponent, c.compress_factor, c.demodulate)
        self.encoder = Encoder(c)
        self.upsampler = Upsampler(c)
        self.unet = ConsistencyUNet(c)
        # latent statistics for diffusion (measured by training; std 0.06, i.e. a scale of 1/0.06, until then)
        self.register_buffer("latent_mean", torch.tensor(0.0))
        self.register_buffer("latent_std", torch.tensor(0.06))

    # ---------------------------------------------------------------------------------- properties
    def num_parameters(self) -> dict[str, int]:
        count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
        parts = {"encoder": count(self.encoder), "upsampler": count(self.upsampler), "unet": count(self.unet)}
        parts["total"] = sum(parts.values())
        return parts

    # ------------------------------------------------------------------------- tensor-level pieces
    def prepare_audio(self, audio: torch.Tensor) -> tuple[torch.Tensor, int]:
        """Validate and lay out audio: ``[B, C, N]`` or ``[C, N]`` -> (``[B, A, N_pad]`` float32 with A the
        codec's audio channels (mono: channel mean; midside: mid/side), zero-padded to a multiple of
        4096 samples; original N)."""
        audio = checked_audio(audio)
        x = audio.mean(dim=1, keepdim=True) if self.config.stereo == "mono" else to_midside(audio)
        n = x.shape[-1]
        spf = self.config.samples_per_frame
        pad = (-n) % spf
        return torch.nn.functional.pad(x, (0, pad)), n

    def spectrogram(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, A, N]`` (N % 4096 == 0) -> compressed spectrogram ``[B, 2A, 1024, N / 512]``."""
        b, a, n = x.shape
        spec = self.stft(x.reshape(b * a, n))
        return spec.reshape(b, a * 2, *spec.shape[-2:])

    def note_profiles(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, A, N]`` (N % 4096 == 0) -> ``[B, 84, N / 4096]``: the note profile
        (:func:`~.losses.note_profile`) of the first channel (mono, or mid), per latent frame: the
        encoder's note input and the note term's training target."""
        with torch.autocast("cpu", enabled=False):
            return note_profile(x[:, 0].float(), self.config.samples_per_frame, self.config.sample_rate)

    def note_features(self, x: torch.Tensor) -> torch.Tensor | None:
        """The encoder's note input for ``[B, A, N]``: :meth:`note_profiles`, or None when the config has
        no ``note_input``."""
        return self.note_profiles(x) if self.config.note_input else None

    def encode_prepared(self, x: torch.Tensor, spec: torch.Tensor | None = None,
                        notes: torch.Tensor | None = None) -> torch.Tensor:
        """Prepared audio ``[B, A, N]`` (:meth:`prepare_audio`) -> latents ``[B, 64, N / 4096]``, in one
        piece, with gradients; ``spec`` / ``notes``: its :meth:`spectrogram` / :meth:`note_profiles` when
        the caller has them already."""
        spec = self.spectrogram(x) if spec is None else spec
        if self.config.note_input and notes is None:
            notes = self.note_profiles(x)
        return self.encoder(spec, notes if self.config.note_input else None)

    def audio_from_spectrogram(self, spec: torch.Tensor) -> torch.Tensor:
        """Exact inverse of :meth:`spectrogram`: ``[B, 2A, 1024, T] -> [B, A, 512 T]`` (fp32)."""
        b, s = spec.shape[:2]
        with torch.autocast("cpu", enabled=False):
            y = self.stft.inverse(spec.float().reshape(b * s // 2, 2, *spec.shape[-2:]))
        return y.reshape(b, s // 2, -1)

    def denoise(self, y_t: torch.Tensor, sigma: torch.Tensor, det: torch.Tensor, pyramid: list[torch.Tensor],
                unet: nn.Module | None = None) -> torch.Tensor:
        """Consistency function on the residual: noisy residual ``y_t [B, S, F, T]`` at ``sigma [B]`` ->
        denoised residual (fp32). ``unet`` overrides the network (EMA teacher in training)."""
        c = self.config
        c_skip, c_out, c_in, c_noise = ct.precondition(sigma.float(), c.sigma_data, c.sigma_min)
        net = unet if unet is not None else self.unet
        # det is passed at roughly unit scale (the compressed spectrogram's std is ~0.2)
        f = net(y_t * c_in[:, None, None, None], det / 0.2, c_noise, pyramid)
        return c_skip[:, None, None, None] * y_t.float() + c_out[:, None, None, None] * f.float()

    def _noise(self, shape: tuple[int, ...], seed: int, step: int, first_frame: int) -> torch.Tensor:
        """Gaussian noise ``shape = [B, S, F, T]`` for STFT frames [first_frame, first_frame + T), keyed to
        absolute position so any chunking draws the same values."""
        t0, t1 = first_frame, first_frame + shape[-1]
        parts = []
        for blk in range(t0 // _NOISE_BLOCK, (t1 - 1) // _NOISE_BLOCK + 1):
            g = seeded_generator((seed * 1_000_003 + step * 7919 + blk) % (2**63 - 1))
            z = torch.randn(*shape[:-1], _NOISE_BLOCK, generator=g)
            lo, hi = max(t0, blk * _NOISE_BLOCK), min(t1, (blk + 1) * _NOISE_BLOCK)
            parts.append(z[..., lo - blk * _NOISE_BLOCK: hi - blk * _NOISE_BLOCK])
        return torch.cat(parts, dim=-1)

    def decode_chunk(self, latents: torch.Tensor, first_frame: int, *, steps: int = 1, seed: int = 0,
                     mode: str = "consistency") -> torch.Tensor:
        """One chunk of a chunked decode: latents ``[B, 64, t]`` whose first frame is frame ``first_frame``
        of the whole sequence (the noise is keyed to absolute positions) -> audio ``[B, S, 4096 t]``
        (midside not yet converted to L/R)."""
        spec = self.decode_spectrogram(latents, int(steps), int(seed), mode, int(first_frame))
        return self.audio_from_spectrogram(spec)

    def decode_spectrogram(self, latents: torch.Tensor, steps: int = 1, seed: int = 0,
                           mode: str = "consistency", first_frame: int = 0) -> torch.Tensor:
        """Latents ``[B, 64, T]`` -> compressed spectrogram ``[B, S, 1024, 8 T]``."""
        pyramid, det = self.upsampler(latents)
        det = det.float()
        if mode == "deterministic":
            return det
        c = self.config
        sigmas = ct.sampling_sigmas(steps, c.sigma_min, c.sigma_max, c.rho)
        b = latents.shape[0]
        f0 = first_frame * 8
        y = c.sigma_max * self._noise(tuple(det.shape), seed, 0, f0)
        r = self.denoise(y, torch.full((b,), sigmas[0]), det, pyramid)
        for i, s in enumerate(sigmas[1:], start=1):
            y = r + math.sqrt(max(s**2 - c.sigma_min**2, 0.0)) * self._noise(tuple(det.shape), seed, i, f0)
            r = self.denoise(y, torch.full((b,), s), det, pyramid)
        return det + r

    # ----------------------------------------------------------------------------------- public API
    @torch.no_grad()
    def encode(self, audio: torch.Tensor, chunk_seconds: float | None = None) -> torch.Tensor:
        """Audio ``[B, C, N]`` (or ``[C, N]``) at 48 kHz, any N >= 1 -> latents ``[B, 64, ceil(N / 4096)]``.

        Mono codec: channels are averaged. Long audio is encoded in chunks (``chunk_seconds``, default
        the config's; ``math.inf`` disables chunking). Raises EmptyAudioError / NonFiniteAudioError /
        InputError for unusable input.
        """
        setup_cpu()
        x, _ = self.prepare_audio(audio)
        c = self.config

        def enc(piece: torch.Tensor) -> torch.Tensor:
            return self.encode_prepared(piece).float()

        return chunked_encode(enc, x, c.samples_per_frame, self.chunk_frames(chunk_seconds), c.chunk_context_frames)

    @torch.no_grad()
    def decode(self, latents: torch.Tensor, steps: int = 1, seed: int | None = None, mode: str = "consistency",
               length: int | None = None, chunk_seconds: float | None = None) -> torch.Tensor:
        """Latents ``[B, 64, T]`` -> audio ``[B, C, 4096 T]`` (C = 1 mono, 2 L/R for midside), cropped
        to ``length`` samples when given.

        ``mode="consistency"``: ``steps`` consistency steps from noise drawn with ``seed`` (None: random);
        ``mode="deterministic"``: the fast deterministic head (``steps`` and ``seed`` unused).
        """
        setup_cpu()
        if mode not in MODES:
            raise InputError(f"decode mode must be one of {', '.join(MODES)}, got '{mode}'")
        if int(steps) < 1:
            raise InputError(f"steps must be >= 1, got {steps}")
        if latents.dim() != 3 or latents.shape[1] != self.config.latent_dim or latents.shape[-1] == 0:
            raise InputError(f"latents must be shaped [B, {self.config.latent_dim}, T>0], got {tuple(latents.shape)}")
        if not torch.isfinite(latents).all():
            raise NonFiniteAudioError("latents contain NaN or infinite values")
        if seed is None:
            seed = int(torch.randint(0, 2**31 - 1, (1,), generator=seeded_generator(None)))
        c = self.config
        latents = latents.float()

        def dec(z: torch.Tensor, first: int) -> torch.Tensor:
            return self.decode_chunk(z, first, steps=steps, seed=int(seed), mode=mode)

        y = chunked_decode(dec, latents, c.samples_per_frame, self.chunk_frames(chunk_seconds), c.chunk_context_frames)
        if c.stereo == "midside":
            y = from_midside(y)
        return y if length is None else y[..., : int(length)]

    @torch.no_grad()
    def decode_pseudo_stereo(self, latents: torch.Tensor, width: float = 0.4, steps: int = 1,
                             seed: int | None = None, length: int | None = None) -> torch.Tensor:
        """Mono codec: ``[B, 64, T] -> [B, 2, 4096 T]`` from two decodings (seeds ``seed``, ``seed + 1``);
        formula in :mod:`.stereo` (width 0: identical channels). A stereo codec decodes normally."""
        if self.config.stereo != "mono":
            return self.decode(latents, steps=steps, seed=seed, length=length)
        if seed is None:
            seed = int(torch.randint(0, 2**31 - 2, (1,), generator=seeded_generator(None)))
        d1 = self.decode(latents, steps=steps, seed=seed, length=length)
        d2 = self.decode(latents, steps=steps, seed=seed + 1, length=length)
        return pseudo_stereo(d1, d2, width)

    def reconstruct(self, audio: torch.Tensor, seed: int = 0, width: float = 0.0) -> torch.Tensor:
        """Encode and decode ``[B, C, N]`` -> ``[B, C', N]`` (one consistency step; ``width`` > 0 with a mono
        codec: the pseudo-stereo image of two decodings)."""
        n = audio.shape[-1]
        z = self.encode(audio)
        if width and self.config.stereo == "mono":
            return self.decode_pseudo_stereo(z, width=width, seed=seed, length=n)
        return self.decode(z, seed=seed, length=n)
