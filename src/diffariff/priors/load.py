"""Load a context prior of either kind, told apart by the checkpoint's ``kind``.

This is the one module that knows both kinds of context prior (:mod:`.bridge` conditioned on the
context, :mod:`.neighbour_prior`); the kinds themselves depend only on :mod:`.context_prior`.
"""

from __future__ import annotations

import os

from ..checkpoint import read_checkpoint_metadata
from ..errors import CheckpointError
from .bridge import KIND as BRIDGE_KIND
from .bridge import ClapBridge
from .context_prior import require_context_prior
from .neighbour_prior import KIND as NEIGHBOUR_KIND
from .neighbour_prior import NeighbourPrior


def load_context_prior(path: str | os.PathLike):
    """The context prior saved at ``path``: a diffusion prior (a CLAP bridge conditioned on the context,
    :class:`~diffariff.priors.bridge.ClapBridge`) or a neighbour prior
    (:class:`~diffariff.priors.neighbour_prior.NeighbourPrior`), told apart by the checkpoint's kind.
    Raises CheckpointError for any other kind, InputError for a bridge conditioned on text."""
    kind = read_checkpoint_metadata(path).get("kind")
    if kind == NEIGHBOUR_KIND:
        return NeighbourPrior.load(path)
    if kind != BRIDGE_KIND:
        raise CheckpointError(f"{path}: holds a '{kind}' model, not a context prior "
                              f"('{BRIDGE_KIND}' or '{NEIGHBOUR_KIND}')")
    prior = ClapBridge.load(path)
    require_context_prior(prior, str(path))
    return prior
