"""The codec's configuration: one typed dataclass that scales from the paper size (~58 M parameters)
to the small CPU default. Configs travel inside checkpoints (:mod:`diffariff.checkpoint`).

Sizes and units:
* audio at ``sample_rate`` (48 kHz), STFT ``n_fft`` 2048 / ``hop`` 512 -> F = 1024 frequency rows
  (Nyquist packed into the DC row, see :mod:`.stft`), 8 STFT frames = 4096 samples per latent frame.
* Encoder: ``freq_patch`` folds F into channels at the input, then one level per entry of
  ``enc_channels``; between levels frequency halves, and time halves where ``time_down`` says so
  (exactly three halvings: x8).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from ..errors import ConfigError

STEREO_MODES = ("mono", "midside")
#: Config fields that only shape the decoder side (upsampler, consistency U-Net and its noise
#: constants): changing them, or the decoder's weights, leaves the latent space as it was.
DECODER_ONLY_FIELDS = ("dec_channels", "dec_blocks", "subframe_embedding", "unet_channels", "unet_blocks",
                       "noise_embed_dim", "sigma_data", "sigma_min", "sigma_max", "rho")
#: State-dict prefixes of the decoder side.
DECODER_PREFIXES = ("upsampler.", "unet.")
#: Optional config fields, each with the value that reproduces a codec whose checkpoint lacks the field: a
#: checkpoint that holds the field at that value has the identity of one written without it (the bundled
#: codec's checkpoint has no ``note_input``; its decoder fine-tunes write ``note_input: false``).
LATER_FIELDS_OLD_VALUES = {"note_input": False}


@dataclass
class CodecConfig:
    # signal
    sample_rate: int = 48_000
    n_fft: int = 2048
    hop: int = 512
    compress_exponent: float = 0.65
    compress_factor: float = 0.34
    stereo: str = "mono"  # "mono": 1 channel; "midside": mid+side both in one latent (4 spec channels)
    # rotate bin k of frame t by exp(-i pi k t / 2), so a steady partial has a steady phase (see .stft)
    demodulate: bool = False
    # latent
    latent_dim: int = 64
    # encoder: frequency patch, channels per level, res blocks per level, attention at deep levels
    freq_patch: int = 8
    enc_channels: tuple[int, ...] = (32, 64, 96, 128)
    enc_blocks: int = 1
    time_down: tuple[bool, ...] = (True, True, True)
    attn_levels: int = 1  # frequency-wise attention in this many deepest levels (encoder, decoder, U-Net)
    attn_heads: int = 4
    # a long-window note branch: each latent frame's note profile (84 log semitone-band energies of an
    # 8192-point STFT of the audio, envelope removed; codec.losses.note_profile) enters the bottleneck
    # through a zero-initialised convolution. The 2048-point STFT cannot resolve semitones below ~400 Hz.
    note_input: bool = False
    # upsampler (latents -> feature pyramid + deterministic head): channels per level (same count)
    dec_channels: tuple[int, ...] = (32, 64, 96, 128)
    dec_blocks: int = 1
    # a learned embedding of the STFT frame's position (0..7) inside its latent frame, added at the
    # finest decoder level: without it, steady latents decode to identical frames (see .decoder)
    subframe_embedding: bool = False
    # consistency U-Net (denoises the residual over the deterministic reconstruction)
    unet_channels: tuple[int, ...] = (32, 48, 64, 96)
    unet_blocks: int = 1
    noise_embed_dim: int = 128
    # EDM / consistency constants (sigma_data: std of the residual the U-Net denoises; measured)
    sigma_data: float = 0.1
    sigma_min: float = 0.002
    sigma_max: float = 80.0
    rho: float = 7.0
    # inference
    chunk_seconds: float = 20.0
    chunk_context_frames: int = 8  # latent frames of context on each side of a chunk

    def __post_init__(self) -> None:
        self.enc_channels = tuple(int(c) for c in self.enc_channels)
        self.dec_channels = tuple(int(c) for c in self.dec_channels)
        self.unet_channels = tuple(int(c) for c in self.unet_channels)
        self.time_down = tuple(bool(t) for t in self.time_down)
        if self.stereo not in STEREO_MODES:
            raise ConfigError(f"stereo must be one of {', '.join(STEREO_MODES)}, got '{self.stereo}'")
        if self.n_fft != 4 * self.hop:
            raise ConfigError("n_fft must be 4 * hop (the exact inverse relies on 4x overlap)")
        levels = len(self.enc_channels)
        if len(self.time_down) != levels - 1 or sum(self.time_down) != 3:
            raise ConfigError(
                f"time_down needs {levels - 1} entries with exactly three True (x8 time downsampling)"
            )
        if len(self.dec_channels) != levels or len(self.unet_channels) != levels:
            raise ConfigError("enc_channels, dec_channels and unet_channels need the same number of levels")
        if self.freq_bins % (self.freq_patch * 2 ** (levels - 1)):
            raise ConfigError("freq_patch * 2**(levels-1) must divide the 1024 frequency rows")
        if not 0 <= self.attn_levels <= levels:
            raise ConfigError(f"attn_levels must be in 0..{levels}")
        for c in (*self.enc_channels, *self.dec_channels, *self.unet_channels):
            if c % self.attn_heads or c % 8:
                raise ConfigError(f"channel count {c} must be a multiple of 8 and of attn_heads")
        if not (0 < self.sigma_min < self.sigma_max) or self.sigma_data <= 0:
            raise ConfigError("need 0 < sigma_min < sigma_max and sigma_data > 0")
        if self.chunk_seconds * self.sample_rate < 4 * self.samples_per_frame:
            raise ConfigError("chunk_seconds must cover at least 4 latent frames")

    # derived sizes -----------------------------------------------------------------------------
    @property
    def freq_bins(self) -> int:
        """Frequency rows of the packed spectrogram (n_fft / 2 = 1024)."""
        return self.n_fft // 2

    @property
    def samples_per_frame(self) -> int:
        """Audio samples per latent frame (hop * 8 = 4096)."""
        return self.hop * 8

    @property
    def audio_channels(self) -> int:
        return 1 if self.stereo == "mono" else 2

    @property
    def spec_channels(self) -> int:
        """Channels of the spectrogram tensor: re/im per audio channel."""
        return 2 * self.audio_channels

    @property
    def deep_freq(self) -> int:
        """Frequency rows at the deepest level."""
        return self.freq_bins // (self.freq_patch * 2 ** (len(self.enc_channels) - 1))

    @property
    def frame_rate(self) -> float:
        """Latent frames per second (11.72 Hz at 48 kHz)."""
        return self.sample_rate / self.samples_per_frame

    def replace(self, **changes) -> CodecConfig:
        return dataclasses.replace(self, **changes)
