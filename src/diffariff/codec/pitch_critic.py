"""Pitch critic: a small, fast, differentiable stand-in for the synth codec's pitch-class energy.

Harmony guidance (:mod:`diffariff.pipeline.harmony`) climbs the gradient of a stem's pitch-class
powers, which the synth codec computes by running its decoder's pitch branch at full resolution
(280 oscillators x 8 control frames per latent frame) and folding it onto 12 classes: for one 10-s
window a forward and backward pass take about 0.25 s on two CPU cores, and the default sampler pays for
ten of them, three times the sampling itself. The critic predicts the same ``[B, 12, T]`` powers
straight from the latents at the latent frame rate with a few 1-D convolutions (about 1 ms per window),
fitted to the codec's own :meth:`~diffariff.codec.synth_codec.SynthCodec.pitch_class_energy` on
latents of real stems and mixtures and on noisy copies of them (guidance reads the sampler's
estimates, which sit near, not on, the codec's latents).

Shapes: latents ``[B, latent_dim, T]`` in codec units (not the latent model's normalised units) ->
natural-log power ``[B, 12, T]`` (class 0 = C); :meth:`PitchCritic.energy` returns the power itself,
the interface of ``SynthCodec.pitch_class_energy``. A critic belongs to one codec: its checkpoint
records that codec's identity (:func:`diffariff.bundle.checkpoint_identity`), and the bundle checks it.
"""

from __future__ import annotations

import dataclasses
import os

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..checkpoint import config_from_dict, load_checkpoint, load_state_into, save_checkpoint
from .synth_nets import ResBlock1d

KIND = "pitch-critic"
#: Log powers below this (natural log of squared linear level) are treated as silence.
LOG_FLOOR = -36.0


@dataclasses.dataclass
class PitchCriticConfig:
    """``latent_dim``: the codec's latent channels; ``width``: hidden channels; ``blocks``: residual
    blocks (kernel 3, dilations 1, 2, 4, ... so the receptive field spans ~0.5 s); ``codec_id``: the
    identity of the codec whose energies it was fitted to ("" = unknown)."""

    latent_dim: int = 64
    width: int = 192
    blocks: int = 4
    codec_id: str = ""


class PitchCritic(nn.Module):
    """Latents ``[B, latent_dim, T]`` (codec units) -> log pitch-class power ``[B, 12, T]``."""

    def __init__(self, config: PitchCriticConfig):
        super().__init__()
        self.config = config
        c = config
        self.register_buffer("latent_mean", torch.zeros(1, c.latent_dim, 1))
        self.register_buffer("latent_std", torch.ones(1, c.latent_dim, 1))
        self.inp = nn.Conv1d(c.latent_dim, c.width, 3, padding=1)
        self.blocks = nn.Sequential(*[ResBlock1d(c.width, dilation=2 ** (i % 4)) for i in range(c.blocks)])
        self.out = nn.Conv1d(c.width, 12, 1)
        nn.init.zeros_(self.out.weight)
        nn.init.constant_(self.out.bias, -12.0)

    def set_normalisation(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        """Per-channel ``mean`` / ``std`` ``[latent_dim]`` of the codec's latents (inputs are standardised)."""
        self.latent_mean.copy_(mean.reshape(1, -1, 1))
        self.latent_std.copy_(std.reshape(1, -1, 1).clamp_min(1e-4))

    def forward(self, latents: torch.Tensor) -> torch.Tensor:
        x = (latents.float() - self.latent_mean) / self.latent_std
        log_power = self.out(F.silu(self.blocks(self.inp(x))))
        return log_power if self.training else log_power.clamp(LOG_FLOOR, 4.0)

    def energy(self, latents: torch.Tensor) -> torch.Tensor:
        """Latents ``[B, latent_dim, T]`` -> pitch-class power ``[B, 12, T]`` (what harmony guidance reads)."""
        return self(latents).exp()

    @torch.no_grad()
    def profile(self, latents: torch.Tensor) -> torch.Tensor:
        """Latents ``[B, D, T]`` -> pitch-class profile ``[B, 12]`` as
        :meth:`~diffariff.codec.synth_codec.SynthCodec.pitch_class_profile` makes it (each frame divided by
        its loudest class, then the mean over frames within 60 dB of the loudest), per latent frame
        instead of per control frame: what the key lock compares with the context."""
        energy = self.energy(latents)  # [B, 12, T]
        frame = energy.sum(dim=1)
        loud = frame > frame.amax(dim=-1, keepdim=True) * 1e-6
        per_frame = energy / energy.amax(dim=1, keepdim=True).clamp_min(1e-30)
        return (per_frame * loud[:, None]).sum(-1) / loud.sum(-1, keepdim=True).clamp_min(1)


def save_pitch_critic(critic: PitchCritic, path: str | os.PathLike, extra: dict | None = None) -> None:
    """Write ``critic`` as a float16 checkpoint of kind :data:`KIND` (config inside, atomic)."""
    save_checkpoint(path, critic.state_dict(), kind=KIND, config=critic.config, extra=extra,
                    dtype=torch.float16)


def load_pitch_critic(path: str | os.PathLike) -> PitchCritic:
    """The critic saved at ``path`` (float32, eval mode); CheckpointError when it is not one."""
    ckpt = load_checkpoint(path, kind=KIND)
    critic = PitchCritic(config_from_dict(PitchCriticConfig, ckpt.config))
    load_state_into(critic, ckpt.tensors, path)
    return critic.eval()
