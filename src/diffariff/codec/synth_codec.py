"""The synth codec (codec v2): latents that hold notes, a decoder that cannot lose them.

``SynthCodec.encode(audio [B, C, N]) -> latents [B, latent_dim, ceil(N / latent_hop)]`` (tanh-bounded;
64 channels at 23.4 Hz by default: 2048 / 64 = 32x compression of 48 kHz mono samples) and
``SynthCodec.decode(latents, seed=...) -> audio [B, 1, latent_hop * T]``.

The first codec decoded a complex STFT with a deterministic head: a phase it could not predict left
its partials at the bin centres, so every pitched stem became a fixed comb at multiples of 23.4 Hz.
Here the decoder predicts *levels* only and a synthesiser renders them (``decoder``):

* ``"bank"`` (default): amplitudes of an oscillator bank on a 1/3-semitone grid from A0 to ~6 kHz plus
  the band gains of filtered noise (:mod:`.synth`), per 256-sample control frame. Pitch is in which
  oscillator sounds, so it survives any uncertainty the network has about phase.
* ``"stftmag"``: the log-magnitude of a 2048-point STFT per 512-sample frame, phase from Griffin-Lim
  (librosa) at decoding. A bake-off arm: magnitudes also hold pitch, but a 23.4 Hz bin is wider than a
  bass semitone, and Griffin-Lim's phase is slow and smeared.

The encoder reads :class:`~.synth_nets.PitchFrontEnd` features, whose 8192-point pitch bands resolve
bass semitones, through strided 1-D convolutions (``nets="conv1d"``) or, with ``nets="grid"`` (the shipped
codec v2), through 2-D convolutions over (pitch, time) that also write the bank's levels
(:mod:`.synth_grid_nets`: a note is a local pattern at any pitch). Long audio is processed in chunks with context
(:mod:`.chunking`); everything is keyed to absolute positions, so chunked equals whole.
Pseudo-stereo: two decodings with seeds ``seed`` and ``seed + 1`` differ in oscillator phases and noise
(not in level or pitch); see :mod:`.stereo`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import librosa
import numpy as np
import torch

from ..errors import ConfigError, InputError, NonFiniteAudioError
from ..torchutil import seeded_generator, setup_cpu
from .chunking import chunked_decode, chunked_encode
from .model import LatentCodec, checked_audio
from .stereo import pseudo_stereo
from .synth import NoiseSynth, OscillatorBank
from .synth_grid_nets import GridDecoder, GridEncoder
from .synth_nets import PitchFrontEnd, SynthDecoder, SynthEncoder
from .transpose import bank_profile, row_pitch_classes, transpose_rows

KIND = "synth_codec"
#: Config fields and state-dict prefixes of the decoder side: a decoder trained further on frozen latents
#: keeps the codec's identity (:func:`diffariff.diffusion.model.model_identity`), so latent models stay valid.
DECODER_ONLY_FIELDS = ("decoder", "control_hop", "noise_bands", "stft_fft", "griffin_lim_iters", "dec_channels",
                       "grid_dec_channels")
DECODER_PREFIXES = ("decoder.", "bank.", "noise.")
DECODERS = ("bank", "stftmag")
NETS = ("conv1d", "grid")
_LOG_AMP_RANGE = (-18.0, 2.0)  # clamp of the decoder's log levels (natural log)


@dataclass
class SynthCodecConfig:
    sample_rate: int = 48_000
    stereo: str = "mono"
    decoder: str = "bank"
    latent_dim: int = 64
    latent_hop: int = 2048  # samples per latent frame (23.4 Hz)
    feature_hop: int = 512  # front-end frame
    control_hop: int = 256  # synthesiser control frame (bank); stftmag uses feature_hop
    n_mels: int = 128
    midi_lo: float = 21.0  # A0, 27.5 Hz
    midi_hi: float = 114.0  # F#8, 5.9 kHz
    per_semitone: int = 3
    noise_bands: int = 64
    stft_fft: int = 2048  # stftmag decoder
    griffin_lim_iters: int = 32
    enc_channels: tuple[int, ...] = (256, 256, 256)
    dec_channels: tuple[int, ...] = (384, 256, 192, 128)
    blocks: int = 2
    #: "conv1d": 1-D convolutions over frames (:mod:`.synth_nets`); "grid": 2-D convolutions over (pitch, time)
    #: for the bank (:mod:`.synth_grid_nets`; bank decoder only; ``dec_channels`` then sizes the noise branch)
    nets: str = "conv1d"
    grid_enc_channels: tuple[int, ...] = (16, 32, 48)
    grid_mel_channels: int = 128
    grid_dec_channels: tuple[int, ...] = (48, 32, 24)
    chunk_seconds: float = 20.0
    chunk_context_frames: int = 8

    def __post_init__(self) -> None:
        self.enc_channels = tuple(int(c) for c in self.enc_channels)
        self.dec_channels = tuple(int(c) for c in self.dec_channels)
        self.grid_enc_channels = tuple(int(c) for c in self.grid_enc_channels)
        self.grid_dec_channels = tuple(int(c) for c in self.grid_dec_channels)
        if self.nets not in NETS:
            raise ConfigError(f"nets must be one of {', '.join(NETS)}, got '{self.nets}'")
        if self.nets == "grid" and (self.decoder != "bank" or len(self.enc_channels) != 3 or len(self.dec_channels) != 4):
            raise ConfigError("grid nets need the bank decoder, 3 encoder levels and 4 decoder levels")
        if self.stereo != "mono":
            raise ConfigError("the synth codec is mono (stereo comes from two decodings)")
        if self.decoder not in DECODERS:
            raise ConfigError(f"decoder must be one of {', '.join(DECODERS)}, got '{self.decoder}'")
        if self.latent_hop != self.feature_hop * 2 ** (len(self.enc_channels) - 1):
            raise ConfigError("latent_hop must be feature_hop * 2**(len(enc_channels) - 1)")
        if self.latent_hop != self.output_hop * 2 ** (len(self.dec_channels) - 1):
            raise ConfigError("latent_hop must be the decoder's output hop * 2**(len(dec_channels) - 1)")
        if self.decoder == "stftmag" and self.stft_fft != 4 * self.output_hop:
            raise ConfigError("stftmag needs stft_fft == 4 * feature_hop")

    @property
    def output_hop(self) -> int:
        """Samples per decoder output frame: control_hop (bank) or feature_hop (stftmag)."""
        return self.control_hop if self.decoder == "bank" else self.feature_hop

    @property
    def samples_per_frame(self) -> int:
        return self.latent_hop

    @property
    def frame_rate(self) -> float:
        return self.sample_rate / self.latent_hop

    @property
    def audio_channels(self) -> int:
        return 1

    @property
    def bank_size(self) -> int:
        return int(round((self.midi_hi - self.midi_lo) * self.per_semitone)) + 1

    @property
    def compression(self) -> float:
        """48 kHz mono samples per latent value."""
        return self.latent_hop / self.latent_dim

    def replace(self, **changes) -> SynthCodecConfig:
        return dataclasses.replace(self, **changes)


class SynthCodec(LatentCodec):
    kind = KIND
    config_class = SynthCodecConfig
    #: decoding modes an evaluation can ask for: one, the synthesiser (its seed sets phases and noise)
    decode_modes = ("synth",)

    def __init__(self, config: SynthCodecConfig | None = None):
        super().__init__()
        self.config = c = config or SynthCodecConfig()
        self.front = PitchFrontEnd(c.sample_rate, c.feature_hop, c.n_mels, c.midi_lo, c.midi_hi, c.per_semitone)
        if c.nets == "grid":
            self.encoder = GridEncoder(c.n_mels, c.bank_size, c.grid_enc_channels, c.grid_mel_channels, c.blocks,
                                       c.latent_dim)
        else:
            self.encoder = SynthEncoder(self.front.channels, c.enc_channels, c.blocks, c.latent_dim)
        if c.decoder == "bank":
            self.bank = OscillatorBank(c.sample_rate, c.control_hop, c.midi_lo, c.midi_hi, c.per_semitone)
            self.noise = NoiseSynth(c.sample_rate, c.control_hop, c.noise_bands)
            out = self.bank.size + c.noise_bands
        else:
            out = c.stft_fft // 2 + 1
        if c.nets == "grid":
            self.decoder = GridDecoder(c.latent_dim, c.bank_size, c.grid_dec_channels, c.dec_channels, c.noise_bands,
                                       c.blocks, out_bias=-9.0)
        else:
            self.decoder = SynthDecoder(c.latent_dim, c.dec_channels, c.blocks, out, out_bias=-9.0)
        self.register_buffer("latent_mean", torch.tensor(0.0))
        self.register_buffer("latent_std", torch.tensor(0.5))

    # ---------------------------------------------------------------------------------- properties
    def num_parameters(self) -> dict[str, int]:
        count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
        parts = {"encoder": count(self.encoder), "decoder": count(self.decoder)}
        parts["total"] = sum(parts.values())
        return parts

    # ------------------------------------------------------------------------------ tensor pieces
    def prepare_audio(self, audio: torch.Tensor) -> tuple[torch.Tensor, int]:
        """``[B, C, N]`` / ``[C, N]`` -> (mono ``[B, 1, N_pad]`` float32 padded to a multiple of latent_hop, N)."""
        audio = checked_audio(audio)
        x = audio.mean(dim=1, keepdim=True)
        n = x.shape[-1]
        return torch.nn.functional.pad(x, (0, (-n) % self.config.latent_hop)), n

    def encode_prepared(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, 1, N]`` (N % latent_hop == 0) -> latents ``[B, D, N / latent_hop]``, with gradients."""
        return self.encoder(self.front(x[:, 0]))

    def decode_controls(self, latents: torch.Tensor) -> torch.Tensor:
        """Latents -> the decoder's clamped natural-log levels ``[B, out, T * latent_hop / output_hop]``."""
        return self.decoder(latents).float().clamp(*_LOG_AMP_RANGE)

    def render(self, controls: torch.Tensor, seed: int = 0, first_sample: int = 0) -> torch.Tensor:
        """Log levels (:meth:`decode_controls`) -> audio ``[B, 1, output_hop * T]`` (bank decoder:
        differentiable; stftmag: Griffin-Lim, no gradient)."""
        c = self.config
        if c.decoder == "bank":
            k = self.bank.size
            levels = controls.float().exp()
            with torch.autocast(controls.device.type, enabled=False):  # phases and sums need fp32
                y = self.bank(levels[:, :k], seed, first_sample) + self.noise(levels[:, k:], seed, first_sample)
            return y[:, None]
        mag = controls.exp().detach().cpu().numpy()
        mag = np.concatenate([mag, mag[..., -1:]], axis=-1)  # librosa's centred frames: T + 1
        n = controls.shape[-1] * c.feature_hop
        rng = np.random.default_rng(int(seed))
        y = librosa.griffinlim(mag, n_iter=c.griffin_lim_iters, hop_length=c.feature_hop, win_length=c.stft_fft,
                               n_fft=c.stft_fft, center=True, length=n, random_state=rng, init="random")
        return torch.from_numpy(np.ascontiguousarray(y, dtype=np.float32))[:, None]

    @property
    def can_transpose(self) -> bool:
        """Whether pitch is an axis of the controls (the oscillator-bank decoder): :meth:`pitch_class_profile`
        and the ``semitones`` of the decoders work."""
        return self.config.decoder == "bank"

    def _bank_pitch_classes(self) -> np.ndarray:
        c = self.config
        return row_pitch_classes(c.midi_lo, c.per_semitone, self.bank.size)

    def _controls(self, latents: torch.Tensor, semitones: Sequence[int] | None) -> torch.Tensor:
        """:meth:`decode_controls`, with the bank rows of each batch item shifted by ``semitones``."""
        controls = self.decode_controls(latents.float())
        if semitones is not None and any(int(k) for k in semitones):
            if not self.can_transpose:
                raise InputError("only the oscillator-bank synth codec can transpose")
            k = self.bank.size
            bank = transpose_rows(controls[:, :k], list(semitones), self.config.per_semitone)
            controls = torch.cat([bank, controls[:, k:]], dim=1)
        return controls

    def decode_chunk(self, latents: torch.Tensor, first_frame: int, *, steps: int = 1, seed: int = 0,
                     mode: str = "synth", semitones: Sequence[int] | None = None) -> torch.Tensor:
        """One chunk of a chunked decode: latents ``[B, D, t]`` whose first frame is frame ``first_frame``
        of the whole sequence (phases and noise run on absolute sample time) -> audio ``[B, 1, latent_hop t]``.
        ``semitones`` (one per batch item): transpose what the oscillators play (:mod:`.transpose`).
        ``steps`` and ``mode`` exist for interface parity with the first codec."""
        return self.render(self._controls(latents, semitones), int(seed), int(first_frame) * self.config.latent_hop)

    def pitch_class_energy(self, latents: torch.Tensor) -> torch.Tensor:
        """Latents ``[B, D, T]`` -> the power the oscillators would play in each pitch class, per latent
        frame: ``[B, 12, T]`` (squared linear level summed over the rows of a class, averaged over the
        frame's control frames; bin 0 = C). Differentiable in the latents (the noise bands are left out, and
        with grid nets their branch is not run): what :mod:`diffariff.pipeline.harmony` steers."""
        if not self.can_transpose:
            raise InputError("only the oscillator-bank synth codec has pitch-class energies")
        k = self.bank.size
        if hasattr(self.decoder, "bank"):  # grid nets: the pitch branch alone
            levels = self.decoder.bank(latents.float())
        else:
            levels = self.decoder(latents.float())[:, :k]
        power = (2.0 * levels.float().clamp(*_LOG_AMP_RANGE)).exp()  # [B, K, F]
        index = torch.as_tensor(self._bank_pitch_classes(), device=power.device)
        folded = torch.zeros(power.shape[0], 12, power.shape[-1], device=power.device, dtype=power.dtype)
        folded = folded.index_add(1, index, power)
        per = self.config.latent_hop // self.config.output_hop
        return folded.reshape(folded.shape[0], 12, -1, per).mean(dim=-1)

    @torch.no_grad()
    def pitch_class_profile(self, latents: torch.Tensor, chunk_frames: int = 256) -> torch.Tensor:
        """Latents ``[B, D, T]`` -> the pitch-class profile of what the oscillators would play ``[B, 12]``:
        the mean over control frames of :func:`.transpose.bank_profile` (each frame's loudest class = 1),
        frames more than 60 dB below the loudest one left out; all zeros for a silent stem. Decodes the
        controls ``chunk_frames`` latent frames at a time (no context: a profile, not audio)."""
        if not self.can_transpose:
            raise InputError("only the oscillator-bank synth codec has a pitch-class profile")
        classes = self._bank_pitch_classes()
        k = self.bank.size
        parts, energies = [], []
        for a in range(0, latents.shape[-1], int(chunk_frames)):
            bank = self.decode_controls(latents[..., a: a + int(chunk_frames)].float())[:, :k]
            parts.append(bank_profile(bank, classes))
            energies.append((2.0 * bank).exp().sum(dim=1))
        profile, energy = torch.cat(parts, dim=-1), torch.cat(energies, dim=-1)  # [B, 12, F], [B, F]
        loud = energy > energy.amax(dim=-1, keepdim=True) * 1e-6
        return (profile * loud[:, None]).sum(-1) / loud.sum(-1, keepdim=True).clamp_min(1)

    # ----------------------------------------------------------------------------------- public API
    @torch.no_grad()
    def encode(self, audio: torch.Tensor, chunk_seconds: float | None = None) -> torch.Tensor:
        """Audio ``[B, C, N]`` (or ``[C, N]``) at 48 kHz, any N >= 1 -> latents ``[B, D, ceil(N / latent_hop)]``."""
        setup_cpu()
        x, _ = self.prepare_audio(audio)
        c = self.config
        return chunked_encode(lambda p: self.encode_prepared(p).float(), x, c.latent_hop,
                              self.chunk_frames(chunk_seconds), c.chunk_context_frames)

    @torch.no_grad()
    def decode(self, latents: torch.Tensor, steps: int = 1, seed: int | None = None, mode: str = "synth",
               length: int | None = None, chunk_seconds: float | None = None,
               semitones: Sequence[int] | None = None) -> torch.Tensor:
        """Latents ``[B, D, T]`` -> audio ``[B, 1, latent_hop * T]`` (cropped to ``length``). ``seed`` draws the
        oscillator phases and the noise (None: random); ``semitones`` (one per batch item) transposes the
        oscillators (:mod:`.transpose`); ``steps`` and ``mode`` exist for interface parity with the first
        codec and do not change the result."""
        if seed is None:
            seed = int(torch.randint(0, 2**31 - 1, (1,), generator=seeded_generator(None)))
        return self._decode_seeds(latents, [int(seed)], length, chunk_seconds, semitones)

    @torch.no_grad()
    def decode_pseudo_stereo(self, latents: torch.Tensor, width: float = 0.4, steps: int = 1,
                             seed: int | None = None, length: int | None = None,
                             semitones: Sequence[int] | None = None) -> torch.Tensor:
        """``[B, D, T] -> [B, 2, latent_hop * T]`` from two decodings (seeds ``seed``, ``seed + 1``) of the
        same controls (the decoder runs once)."""
        if seed is None:
            seed = int(torch.randint(0, 2**31 - 2, (1,), generator=seeded_generator(None)))
        y = self._decode_seeds(latents, [int(seed), int(seed) + 1], length, None, semitones)
        return pseudo_stereo(y[:, :1], y[:, 1:], width)

    def _decode_seeds(self, latents: torch.Tensor, seeds: Sequence[int], length: int | None,
                      chunk_seconds: float | None, semitones: Sequence[int] | None) -> torch.Tensor:
        """Latents ``[B, D, T]`` -> one rendering per seed of the same controls ``[B, len(seeds), N]``."""
        setup_cpu()
        c = self.config
        if latents.dim() != 3 or latents.shape[1] != c.latent_dim or latents.shape[-1] == 0:
            raise InputError(f"latents must be shaped [B, {c.latent_dim}, T>0], got {tuple(latents.shape)}")
        if not torch.isfinite(latents).all():
            raise NonFiniteAudioError("latents contain NaN or infinite values")

        def dec(z: torch.Tensor, first: int) -> torch.Tensor:
            controls = self._controls(z, semitones)
            return torch.cat([self.render(controls, s, first * c.latent_hop) for s in seeds], dim=1)

        y = chunked_decode(dec, latents.float(), c.latent_hop, self.chunk_frames(chunk_seconds), c.chunk_context_frames)
        return y if length is None else y[..., : int(length)]

    def reconstruct(self, audio: torch.Tensor, seed: int = 0, width: float = 0.0) -> torch.Tensor:
        """Encode and decode ``[B, C, N]`` -> ``[B, 2 if width else 1, N]``."""
        n = audio.shape[-1]
        z = self.encode(audio)
        if width:
            return self.decode_pseudo_stereo(z, width=width, seed=seed, length=n)
        return self.decode(z, seed=seed, length=n)
