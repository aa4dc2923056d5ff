"""Diffusion machinery shared by the latent model and the CLAP bridge: EDM preconditioning and loss,
samplers with one signature, guidance wrappers, consistency training/sampling and editing hooks."""

from . import consistency  # noqa: F401  (registers the "consistency" sampler)
