"""``diffariff train neighbour-prior``: build a neighbour prior (:mod:`diffariff.priors.neighbour_prior`)
from the embedded pairs of one or more ``train prior`` runs.

Nothing is embedded here: the pairs folders (``RUN/pairs``) already hold the audio-CLAP embeddings of
the context mixes and target reference clips, with the targets' roles. The training parts of every
folder are pooled into the bank and the role classifier is fitted on them (seconds on a CPU); the
held-out draws of the first folder (``eval.safetensors``) score the result with
:func:`~diffariff.priors.context_prior.evaluate_prior` at the prior's default guidance (role accuracy
against the nearest role centroid of the training targets, closeness to the true target), printed and
kept in the file's metadata; ``diffariff eval prior`` scores it at other strengths.
"""

from __future__ import annotations

import sys
import time
from argparse import Namespace
from pathlib import Path

from ..errors import InputError


def run(args: Namespace) -> int:
    """Pool the pairs, build, save and score the prior."""
    from ..priors.context_prior import PriorPairs, evaluate_prior, format_prior_report, role_centroids
    from ..priors.neighbour_prior import NeighbourPrior, NeighbourPriorConfig
    from ..torchutil import setup_cpu
    from .prior import read_pairs_folder

    setup_cpu()
    out = Path(args.out)
    if out.exists() and not args.overwrite:
        raise InputError(f"{out} exists (pass --overwrite to replace it)")
    if args.max_rows is not None and args.max_rows < 2:
        raise InputError("--max-rows must be at least 2")
    if args.samples < 1 or args.classifier_steps < 1:
        raise InputError("need --samples >= 1 and --classifier-steps >= 1")
    trains, shas, held_out = [], set(), None
    for folder in args.pairs:
        train, held, sha = read_pairs_folder(folder)
        trains.append(train)
        shas.add(sha)
        held_out = held if held_out is None else held_out
    if len(shas) != 1:
        raise InputError("the pairs folders were embedded with different CLAP models")
    pairs = PriorPairs.concat(trains)
    config = NeighbourPriorConfig(dim=int(pairs.target.shape[1]), k=args.k, temperature=args.temperature,
                                  route_by_role=not args.no_role_routing, guidance=args.guidance,
                                  clap_sha256=shas.pop())
    start = time.perf_counter()
    prior = NeighbourPrior.build(pairs, config, max_rows=args.max_rows, classifier_steps=args.classifier_steps,
                                 seed=args.seed)
    print(f"neighbour prior: {prior.target.shape[0]} bank rows of {len(pairs)} pairs, {len(prior.config.roles)} roles, "
          f"built in {time.perf_counter() - start:.1f} s", file=sys.stderr)
    result = evaluate_prior(prior, held_out, samples=args.samples, seed=args.seed, centroids=role_centroids(pairs),
                            guidance=prior.config.guidance)
    prior.save(out, extra={"pairs": [str(p) for p in args.pairs], "bank_rows": int(prior.target.shape[0]),
                           "held_out": result})
    print(format_prior_report(result))
    print(f"wrote {out}", file=sys.stderr)
    return 0
