"""The context prior of a fine-tuned bundle: the source bundle's neighbour prior with the producer's own
pairs added to its bank (``diffariff finetune --prior-pairs N``).

Generating from a context alone (no text, no reference clip), the bundle's context prior picks the CLAP
embedding of the part to play: a role from a classifier on the context's audio-CLAP embedding, then the
reference clip of a bank row of that role whose context is near the query's
(:mod:`diffariff.priors.neighbour_prior`). The source bank holds only the default training world, so for
a producer's songs it can only offer the corpus's timbres. Here ``N`` pairs of the producer's training
songs (a random target stem and window, a random subset of the other stems as the context, as
:mod:`diffariff.train.prior` draws them) are embedded with the bundle's CLAP (kept in the work folder:
a rerun reuses them), appended to the source's bank, and the role classifier is refitted on all rows.
The source's rows stay, so roles the producer's songs lack can still be chosen; for contexts like the
producer's, their own rows are the nearest neighbours. A diffusion context prior (no bank) is kept as
it is.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path

from ..checkpoint import file_sha256
from ..data.songs import Song
from ..errors import ConfigError

#: Pairs embedded per cached part of the work folder.
PART_SIZE = 256


def refit_prior(source_prior: Path | None, clap, clap_path: Path, songs: Sequence[Song], folder: Path, *, pairs: int,
                window_seconds: float, reference_seconds: float, seed: int, progress: bool = False,
                say: Callable[[str], None] = print) -> tuple[Path | None, dict]:
    """(path of the grown prior written in ``folder``, or None when the source's prior is kept as it is;
    a summary: ``refit``, ``source_rows``, ``added_rows``, ``roles`` of the added rows). ``clap``: the
    bundle's CLAP, already loaded from ``clap_path``."""
    from ..priors.context_prior import ROLE_NAMES, PriorPairs
    from ..priors.load import load_context_prior
    from ..priors.neighbour_prior import NeighbourPrior
    from .prior import PriorTrainConfig, embedded_pairs

    if pairs <= 0 or source_prior is None:
        return None, {"refit": False, "reason": "no context prior" if source_prior is None else "--prior-pairs 0"}
    prior = load_context_prior(source_prior)
    if not isinstance(prior, NeighbourPrior):
        say("the source's context prior has no bank (a diffusion prior): kept as it is")
        return None, {"refit": False, "reason": "diffusion prior"}
    clap_sha = file_sha256(clap_path)
    if prior.config.clap_sha256 and prior.config.clap_sha256 != clap_sha:
        raise ConfigError(f"{source_prior}: the context prior was embedded with another CLAP than the bundle's")
    cfg = PriorTrainConfig(pairs=int(pairs), part_size=min(int(pairs), PART_SIZE), window_seconds=float(window_seconds),
                           reference_seconds=float(reference_seconds), seed=int(seed))
    say(f"embedding {pairs} context / stem pairs of the training songs for the context prior")
    added, _ = embedded_pairs(clap, clap_sha, songs, cfg, folder / "pairs", split="train",
                              progress=progress)
    usable = added.has_context & (added.role >= 0)
    bank = prior.bank_pairs()
    grown = NeighbourPrior.build(PriorPairs.concat([bank, added]),
                                 dataclasses.replace(prior.config, roles=(), clap_sha256=clap_sha), seed=int(seed))
    roles = sorted({ROLE_NAMES[int(r)] for r in added.role[usable]})
    summary = {"refit": True, "source_rows": len(bank), "added_rows": int(usable.sum()), "roles": roles}
    path = grown.save(folder / "prior.safetensors", extra={"finetune_prior": summary})
    say(f"context prior: {summary['added_rows']} of the producer's pairs added to the {len(bank)} rows of the "
        f"source bank (roles: {', '.join(roles) or 'none known'}); role classifier refitted")
    return path, summary
