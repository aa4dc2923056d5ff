"""Torch process settings shared by every CPU code path."""

from __future__ import annotations

import torch


def setup_cpu() -> None:
    """Flush denormals to zero (they slowed CPU inference ~4x in our measurement)."""
    torch.set_flush_denormal(True)


def seeded_generator(seed: int | None, device: str | torch.device = "cpu") -> torch.Generator:
    """A torch Generator seeded with ``seed`` (a fresh random seed when ``None``)."""
    g = torch.Generator(device=device)
    if seed is None:
        g.seed()
    else:
        g.manual_seed(int(seed))
    return g
