"""Denoising error of a latent diffusion model on a latent cache, at fixed noise levels.

The training loss is measured on the training pairs only, and with random noise levels, so it cannot
tell whether a model has learned or memorised. This evaluation scores a trained model on any cache
(e.g. a training cache and a cache built from the held-out split, ``diffariff latents build --split
test``) at a fixed grid of noise levels, for each conditioning (context and CLAP present or dropped),
with noise drawn from a seed, so two models, or two caches, are compared on identical draws:

    loss(sigma) = lambda(sigma) * mean((D(x0 + sigma n, sigma | cond) - x0)^2),
    lambda(sigma) = (sigma^2 + sd^2) / (sigma sd)^2   (the EDM weighting; 1.0 = a zero-output network, D = c_skip x)

``x0`` are the normalised target latents cropped to the model's training window (frames from the
cache start, the same for every model). The gap between the held-out and the training cache is the
over-fitting of the model; the gap between conditionings is how much the model uses each condition
(context helps most at high noise, where the target is least determined by its noisy version).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..diffusion.edm import edm_loss_weight
from ..errors import InputError
from ..torchutil import seeded_generator

# One row per conditioning: (name, use context, use CLAP audio embedding).
CONDITIONINGS = (("ctx+clap", True, True), ("ctx", True, False), ("clap", False, True), ("none", False, False))


@dataclass
class DenoisingEvalConfig:
    """``sigmas``: noise levels in normalised latent units; ``n``: rows of the cache scored (None:
    all); ``frames``: window in latent frames (None: the model's ``train_frames``, capped by the cache);
    ``batch_size``: sequences per forward pass; ``seed``: the noise draw."""

    sigmas: tuple[float, ...] = (0.05, 0.2, 0.5, 1.0, 2.0, 5.0)
    n: int | None = None
    frames: int | None = None
    batch_size: int = 64
    seed: int = 0

    def __post_init__(self) -> None:
        if not self.sigmas or any(not s > 0 for s in self.sigmas):
            raise InputError(f"--sigmas must be positive numbers, got {list(self.sigmas)}")
        if self.n is not None and self.n < 1:
            raise InputError(f"--n must be >= 1, got {self.n}")
        if self.batch_size < 1:
            raise InputError(f"--batch-size must be >= 1, got {self.batch_size}")


def _noise(shape: tuple[int, ...], seed: int, sigma_index: int, first_row: int) -> torch.Tensor:
    """Standard normal noise [B, C, F] for rows ``first_row..first_row+B`` at grid point ``sigma_index``:
    a function of the seed and these numbers only (not of the model or the batch size's history)."""
    return torch.randn(shape, generator=seeded_generator(int(seed) * 1_000_003 + sigma_index * 65_537 + first_row))


@torch.no_grad()
def denoising_losses(model, tensors: dict[str, torch.Tensor], config: DenoisingEvalConfig) -> dict:
    """Mean EDM-weighted denoising error of ``model`` (a ``LatentDiffusion``) per conditioning and
    noise level. ``tensors``: ``target`` and ``context`` [N, C, T] raw codec latents, ``clap_audio``
    [N, D], and ``context_chroma`` [N, 12, T] for a model with ``config.context_chroma``. Returns
    ``{conditioning: {"per_sigma": [float per sigma], "mean": float}}``."""
    n = tensors["target"].shape[0] if config.n is None else min(config.n, tensors["target"].shape[0])
    frames = min(config.frames or model.config.train_frames, tensors["target"].shape[-1])
    target = model.normalize(tensors["target"][:n, :, :frames].float())
    chroma = tensors.get("context_chroma") if model.config.context_chroma else None
    context = model.context_input(tensors["context"][:n, :, :frames].float(),
                                  None if chroma is None else chroma[:n, :, :frames].float())
    clap = tensors["clap_audio"][:n].float()
    sd = float(model.config.sigma_data)
    out: dict[str, dict] = {}
    for name, use_ctx, use_clap in CONDITIONINGS:
        per_sigma = []
        for j, sigma in enumerate(config.sigmas):
            total = 0.0
            for a in range(0, n, config.batch_size):
                x0 = target[a:a + config.batch_size]
                b = x0.shape[0]
                s = torch.full((b,), float(sigma))
                x = x0 + sigma * _noise(tuple(x0.shape), config.seed, j, a)
                d = model.denoise(x, s, context=context[a:a + b], clap=clap[a:a + b],
                                  drop_context=torch.full((b,), not use_ctx),
                                  drop_clap=torch.full((b,), not use_clap))
                total += float((d.float() - x0).pow(2).mean(dim=(1, 2)).sum())
            per_sigma.append(float(edm_loss_weight(torch.tensor(float(sigma)), sd)) * total / n)
        out[name] = {"per_sigma": per_sigma, "mean": sum(per_sigma) / len(per_sigma)}
    return {"rows": n, "frames": frames, "sigmas": list(config.sigmas), "conditionings": out}


def denoising_table(results: dict) -> str:
    """Markdown: one row per (cache, conditioning), one column per noise level, and the mean."""
    caches = results["caches"]
    first = next(iter(caches.values()))
    head = "| cache | conditioning | " + " | ".join(f"σ={s:g}" for s in first["sigmas"]) + " | mean |"
    lines = [f"Model `{results['model']}`; EDM-weighted denoising error (1.0 = a zero-output network), "
             f"{first['frames']} latent frames, seed {results['seed']}.", "", head,
             "|" + "---|" * (len(first["sigmas"]) + 3)]
    for path, res in caches.items():
        for name, row in res["conditionings"].items():
            cells = " | ".join(f"{v:.4f}" for v in row["per_sigma"])
            lines.append(f"| {path} ({res['rows']}) | {name} | {cells} | {row['mean']:.4f} |")
    return "\n".join(lines) + "\n"
