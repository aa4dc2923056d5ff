"""``diffariff train prior``: train the context prior (:mod:`diffariff.priors.context_prior`).

Data: ``pairs`` draws of (context mix, target reference clip) from the training songs of one or more
corpora, embedded once with the CLAP audio tower (:func:`~diffariff.priors.context_prior.embed_pair_items`)
and kept in the run folder as parts of ``part_size`` pairs (``pairs/part_00000.safetensors``, each
keyed by the CLAP file hash, the songs and the recipe): an interrupted build resumes at the first
missing part, and a later run with more ``pairs`` only embeds the new parts. ``eval_pairs`` held-out
draws from the ``eval_split`` songs are embedded the same way (``pairs/eval.safetensors``).

A training batch draws random pairs; rows without a context, and a ``p_uncond`` share of the others,
are trained with the null condition. The network, module, schedule, EMA, resumable checkpoints and
``--max-minutes`` are the bridge's (:mod:`diffariff.train.bridge`). A run folder holds
``run_config.json``, ``pairs/``, ``checkpoints/last.ckpt`` (``--resume``), CSV logs, the exported
``prior.safetensors`` (EMA weights, fp16) and ``eval.json``.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from argparse import Namespace
from pathlib import Path

import numpy as np
import torch

from ..errors import ConfigError, InputError
from ..priors.bridge import BridgeConfig, ClapBridge
from ..priors.context_prior import (
    PriorPairs,
    embed_pair_items,
    evaluate_prior,
    format_prior_report,
    role_centroids,
)

PAIRS_KIND = "prior-pairs"


@dataclasses.dataclass
class PriorTrainConfig:
    """Training settings. ``pairs`` / ``eval_pairs``: training / held-out draws; ``window_seconds``:
    context length; ``reference_seconds``: target reference clip length (the latent model's CLAP_A
    clip); ``context_probabilities``: chance that each other stem joins the context, cycled over the
    parts of ``part_size`` draws; the rest as in :class:`~diffariff.train.bridge.BridgeTrainConfig`."""

    batch_size: int = 256
    max_steps: int = 6000
    lr: float = 3e-4
    min_lr_ratio: float = 0.0
    warmup_steps: int = 300
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    grad_clip: float = 1.0
    ema_decay: float = 0.999
    pairs: int = 12_000
    eval_pairs: int = 512
    part_size: int = 1000
    window_seconds: float = 10.0
    reference_seconds: float = 5.0
    context_probabilities: tuple[float, ...] = (0.5, 0.85)
    checkpoint_every: int = 250
    precision: str = "32-true"
    seed: int = 0
    train_split: str = "train"
    eval_split: str = "test"
    eval_samples: int = 4

    def __post_init__(self) -> None:
        if self.batch_size < 1 or self.max_steps < 1 or not self.lr > 0:
            raise ConfigError("need batch_size >= 1, max_steps >= 1 and lr > 0")
        if self.pairs < 2 or self.part_size < 1 or self.eval_pairs < 0:
            raise ConfigError("need pairs >= 2, part_size >= 1 and eval_pairs >= 0")
        if not (self.window_seconds > 0 and self.reference_seconds > 0):
            raise ConfigError("window_seconds and reference_seconds must be positive")
        if not self.context_probabilities or not all(0.0 <= p <= 1.0 for p in self.context_probabilities):
            raise ConfigError("context_probabilities must be a non-empty list of values in [0, 1]")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ConfigError(f"ema_decay must be in [0, 1), got {self.ema_decay}")


@dataclasses.dataclass
class PriorRunConfig:
    """What ``configs/prior_*.json`` holds: the model (a bridge with ``condition="context"``) and the recipe."""

    model: BridgeConfig = dataclasses.field(default_factory=lambda: BridgeConfig(condition="context"))
    train: PriorTrainConfig = dataclasses.field(default_factory=PriorTrainConfig)


# ---- embedded pairs ------------------------------------------------------------------------------


def _pair_config(cfg: PriorTrainConfig, probability: float):
    from ..data.pairs import PairConfig

    return PairConfig(window_seconds=cfg.window_seconds, reference_seconds=cfg.reference_seconds, channels=1,
                      context_probability=probability)


def _load_part(path: Path, key: dict) -> PriorPairs | None:
    from ..checkpoint import load_checkpoint
    from ..errors import CheckpointError

    if not path.is_file():
        return None
    try:
        ckpt = load_checkpoint(path, kind=PAIRS_KIND, keep_dtype=True)
    except CheckpointError:
        return None
    if ckpt.config != key:
        return None
    return _pairs_of(ckpt)


def _pairs_of(ckpt) -> PriorPairs:
    """The :class:`PriorPairs` a loaded part holds (a part without a ``role`` tensor gives no roles)."""
    role = ckpt.tensors.get("role")
    return PriorPairs(ckpt.tensors["context"].float(), ckpt.tensors["target"].float(), ckpt.tensors["has_context"].bool(),
                      None if role is None else role.long())


def read_pairs_folder(folder) -> tuple[PriorPairs, PriorPairs, str]:
    """A run's embedded pairs (``RUN/pairs``): the training parts concatenated, the held-out draws
    (``eval.safetensors``) and the CLAP file hash they were embedded with. InputError when missing."""
    from ..checkpoint import load_checkpoint

    folder = Path(folder)
    parts = sorted(folder.glob("part_*.safetensors"))
    if not parts or not (folder / "eval.safetensors").is_file():
        raise InputError(f"{folder}: no embedded prior pairs (part_*.safetensors and eval.safetensors)")
    loaded, shas = [], set()
    for path in [*parts, folder / "eval.safetensors"]:
        ckpt = load_checkpoint(path, kind=PAIRS_KIND, keep_dtype=True)
        shas.add(ckpt.config.get("clap_sha256"))
        loaded.append(_pairs_of(ckpt))
    if len(shas) != 1:
        raise InputError(f"{folder}: the parts were embedded with different CLAP models")
    return PriorPairs.concat(loaded[:-1]), loaded[-1], shas.pop()


def _as_list(items: list) -> list:
    """DataLoader collate function keeping the pair dicts as they are (embedded in the main process)."""
    return items


def _embed_draws(clap, songs, config, seed: int, indices: range, progress: bool, desc: str) -> PriorPairs:
    """Pairs ``indices`` of :class:`~diffariff.data.pairs.PairSampler` ``(songs, config, seed)``, drawn in
    a DataLoader worker and embedded here."""
    from torch.utils.data import DataLoader
    from tqdm import tqdm

    from ..data.pairs import PairDataset

    dataset = torch.utils.data.Subset(PairDataset(songs, config, indices.stop, seed), indices)
    loader = DataLoader(dataset, batch_size=32, num_workers=1, collate_fn=_as_list)
    parts = [embed_pair_items(clap, items, config.sample_rate)
             for items in tqdm(loader, desc=desc, unit="batch", disable=not progress)]
    return PriorPairs.concat(parts)


def embedded_pairs(clap, clap_sha: str, songs, cfg: PriorTrainConfig, folder: Path, *, split: str,
                   progress: bool = False) -> tuple[PriorPairs, int]:
    """The training pairs (``split="train"``: parts of ``cfg.part_size`` draws, each embedded once
    and cached in ``folder``) or the held-out pairs (``split="eval"``). Returns (pairs, parts embedded now)."""
    from ..checkpoint import save_checkpoint

    folder.mkdir(parents=True, exist_ok=True)
    names = sorted(str(getattr(s, "root", s.name)) for s in songs)
    base = {"clap_sha256": clap_sha, "songs": names, "window_seconds": cfg.window_seconds,
            "reference_seconds": cfg.reference_seconds, "seed": cfg.seed}
    if split == "eval":
        specs = [("eval", range(cfg.eval_pairs), cfg.context_probabilities[0], cfg.seed + 1)]
    else:
        count = -(-cfg.pairs // cfg.part_size)
        specs = [(f"part_{k:05d}", range(k * cfg.part_size, min(cfg.pairs, (k + 1) * cfg.part_size)),
                  cfg.context_probabilities[k % len(cfg.context_probabilities)], cfg.seed) for k in range(count)]
    parts, built = [], 0
    for name, indices, probability, seed in specs:
        key = {**base, "indices": [indices.start, indices.stop], "context_probability": probability, "draw_seed": seed}
        path = folder / f"{name}.safetensors"
        part = _load_part(path, key)
        if part is None:
            start = time.perf_counter()
            part = _embed_draws(clap, songs, _pair_config(cfg, probability), seed, indices, progress, f"embed {name}")
            save_checkpoint(path, part.tensors(), kind=PAIRS_KIND, config=key)
            built += 1
            print(f"prior: embedded {name} ({len(part)} pairs, context probability {probability:g}) in "
                  f"{time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)
        parts.append(part)
    return PriorPairs.concat(parts), built


class PriorBatches(torch.utils.data.Dataset):
    """Item ``i`` is a whole batch ``(target [B, D], context [B, D], drop bool [B])``, a pure function of
    ``(seed, i + offset)``: random pairs; ``drop`` is true for rows without a context and, for the
    others, with probability ``p_uncond``. ``offset`` skips the batches a resumed run saw."""

    def __init__(self, pairs: PriorPairs, batch_size: int, steps: int, p_uncond: float, seed: int) -> None:
        self.pairs, self.batch_size, self.steps = pairs, int(batch_size), int(steps)
        self.p_uncond, self.seed, self.offset = float(p_uncond), int(seed), 0

    def __len__(self) -> int:
        return self.steps

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        rng = np.random.default_rng([self.seed, int(index) + self.offset])
        rows = torch.from_numpy(rng.integers(0, len(self.pairs), size=self.batch_size))
        drop = ~self.pairs.has_context[rows] | torch.from_numpy(rng.random(self.batch_size) < self.p_uncond)
        return self.pairs.target[rows], self.pairs.context[rows], drop


# ---- command ------------------------------------------------------------------------------------


def resolve_run_config(args: Namespace, run_dir: Path, clap_dim: int, clap_sha: str) -> PriorRunConfig:
    """The prior's run config (:func:`~diffariff.train.bridge.resolve_config`) with the command-line
    overrides and the CLAP's width and identity."""
    from .bridge import resolve_config

    overrides = {"max_steps": args.max_steps, "pairs": args.pairs, "eval_pairs": args.eval_pairs,
                 "batch_size": args.batch_size, "lr": args.lr, "seed": args.seed}
    return resolve_config(PriorRunConfig, args, run_dir, overrides,
                          dict(dim=clap_dim, text_dim=clap_dim, clap_sha256=clap_sha, condition="context"))


def _songs(corpora: list[str], split: str):
    from ..data.sources import open_dataset

    songs = [s for root in corpora for s in open_dataset(root, split=split)]
    if not songs:
        raise InputError(f"no '{split}' songs in {', '.join(corpora)}")
    return songs


def run(args: Namespace) -> int:
    """Embed the pairs (or reuse them), train (or resume), export the prior and evaluate it."""
    from ..fsutil import write_json_atomic
    from .bridge import start_run, train_and_export

    run_dir, clap, clap_sha, config = start_run(args, resolve_run_config)
    cfg = config.train
    progress = sys.stderr.isatty()

    songs = _songs(args.corpus, cfg.train_split)
    pairs, built = embedded_pairs(clap, clap_sha, songs, cfg, run_dir / "pairs", split="train", progress=progress)
    prior = ClapBridge(config.model)
    sigma = prior.set_data_stats(pairs.target)
    print(f"prior: {len(songs)} songs, {len(pairs)} pairs ({int(pairs.has_context.sum())} with a context; "
          f"{built} parts embedded now); sigma_data {sigma:.4f}; {prior.num_parameters() / 1e6:.2f} M parameters",
          file=sys.stderr)

    dataset = PriorBatches(pairs, cfg.batch_size, cfg.max_steps, config.model.p_uncond, cfg.seed)
    done = train_and_export(args, run_dir, config, prior, dataset, export_name="prior.safetensors",
                            extra={"corpus": list(args.corpus), "songs": len(songs), "pairs": len(pairs),
                                   "clap": str(args.clap)}, label="prior", progress=progress)
    if done is None:
        return 0
    model, step = done
    if cfg.eval_split and cfg.eval_split != "none" and cfg.eval_pairs >= 2:
        held_out, _ = embedded_pairs(clap, clap_sha, _songs(args.corpus, cfg.eval_split), cfg, run_dir / "pairs",
                                     split="eval", progress=progress)
        try:
            centroids = role_centroids(pairs)
        except InputError:  # no role labels (parts without a ``role`` tensor)
            centroids = None
        result = evaluate_prior(model, held_out, samples=cfg.eval_samples, seed=cfg.seed, centroids=centroids)
        result["step"] = step
        write_json_atomic(run_dir / "eval.json", result)
        print(format_prior_report(result))
    return 0
