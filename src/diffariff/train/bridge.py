"""``diffariff train bridge``: train the text-to-audio CLAP bridge (:mod:`diffariff.priors.bridge`).

Data: (text embedding, audio embedding) pairs from the corpus. For each non-silent stem of each
training song, ``crops_per_stem`` random crops are embedded with the CLAP audio tower and
``prompts_per_stem`` varied prompts (templates, tag dropout: :func:`~diffariff.clap.prompts.stem_prompt`)
with the text tower, ONCE; the result is cached in the run folder (``pairs.safetensors``, keyed by
the CLAP file hash, the songs and the recipe). A training batch draws random (stem, crop, prompt)
triples from that cache, with the text dropped (null embedding) with probability ``p_uncond``.

Why Lightning for an MLP on cached vectors: it is the project convention, and it gives resumable
checkpoints, ``--max-minutes`` (Timer), CSV logs and GPU/DDP flags for free; the data path stays a
cheap in-RAM tensor gather, so Lightning's overhead per step is negligible next to the MLP.

A run folder holds ``run_config.json``, ``pairs.safetensors``, ``checkpoints/last.ckpt`` (``--resume``
continues from it), CSV logs, the exported ``bridge.safetensors`` (EMA weights) and ``eval.json``.
Lightning is imported inside the functions that train only, so ``diffariff --help`` stays fast.
"""

from __future__ import annotations

import dataclasses
import random
import sys
from argparse import Namespace
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..clap.prompts import stem_prompt
from ..errors import ConfigError, InputError
from ..priors.bridge import BridgeConfig, ClapBridge, StemEmbeddings, file_sha256, stem_crop_embeddings

PAIRS_FILE = "pairs.safetensors"
PAIRS_KIND = "bridge-pairs"


@dataclasses.dataclass
class BridgeTrainConfig:
    """Training settings. ``crop_seconds``: length of the embedded stem crops (the diffusion model's
    CLAP reference length); ``prompts_per_stem``: prompts drawn per stem (distinct ones kept);
    ``train_split`` / ``eval_split``: corpus splits to train on and to evaluate on ("none" skips)."""

    batch_size: int = 256
    max_steps: int = 20_000
    lr: float = 1e-4
    min_lr_ratio: float = 0.0
    warmup_steps: int = 1000
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    grad_clip: float = 1.0
    ema_decay: float = 0.999
    crops_per_stem: int = 4
    crop_seconds: float = 10.0
    prompts_per_stem: int = 16
    tag_dropout: float = 0.35
    silence_db: float = -50.0
    checkpoint_every: int = 500
    precision: str = "32-true"
    seed: int = 0
    train_split: str = "train"
    eval_split: str = "test"
    eval_samples: int = 8

    def __post_init__(self) -> None:
        if self.batch_size < 1 or self.max_steps < 1 or not self.lr > 0:
            raise ConfigError("need batch_size >= 1, max_steps >= 1 and lr > 0")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ConfigError(f"ema_decay must be in [0, 1), got {self.ema_decay}")
        if self.crops_per_stem < 1 or self.prompts_per_stem < 1 or not self.crop_seconds > 0:
            raise ConfigError("need crops_per_stem >= 1, prompts_per_stem >= 1 and crop_seconds > 0")


@dataclasses.dataclass
class BridgeRunConfig:
    """What ``configs/bridge_*.json`` holds: the model and the training recipe."""

    model: BridgeConfig = dataclasses.field(default_factory=BridgeConfig)
    train: BridgeTrainConfig = dataclasses.field(default_factory=BridgeTrainConfig)


# ---- training pairs ------------------------------------------------------------------------------


@dataclasses.dataclass
class PairBank:
    """The cached training pairs.

    ``audio`` ``[S, K, dim]``: K crop embeddings per stem; ``text`` ``[P, dim]``: distinct prompt
    embeddings; ``prompt_index`` ``[S, M]`` (long) and ``prompt_count`` ``[S]``: the first
    ``prompt_count[s]`` entries of row s index the prompts of stem s (the rest is padding)."""

    audio: torch.Tensor
    text: torch.Tensor
    prompt_index: torch.Tensor
    prompt_count: torch.Tensor

    def tensors(self) -> dict[str, torch.Tensor]:
        return {"audio": self.audio, "text": self.text, "prompt_index": self.prompt_index,
                "prompt_count": self.prompt_count}


def stem_prompts(stems: StemEmbeddings, count: int, tag_dropout: float, seed: int) -> list[list[str]]:
    """``count`` prompts per stem (duplicates removed, order kept), seeded by (seed, song, stem)."""
    out = []
    for song, stem, meta in zip(stems.songs, stems.stems, stems.metas):
        rng = random.Random(f"{seed}/{song}/{stem}/bridge")
        out.append(list(dict.fromkeys(stem_prompt(meta, rng, tag_dropout) for _ in range(count))))
    return out


def build_pairs(clap, songs, cfg: BridgeTrainConfig, progress: bool = False) -> PairBank:
    """Embed the stems' crops and prompts of ``songs`` with ``clap`` (see the module docstring)."""
    stems = stem_crop_embeddings(clap, songs, crops_per_stem=cfg.crops_per_stem, crop_seconds=cfg.crop_seconds,
                                 seed=cfg.seed, silence_db=cfg.silence_db, progress=progress)
    prompts = stem_prompts(stems, cfg.prompts_per_stem, cfg.tag_dropout, cfg.seed)
    texts: dict[str, int] = {}
    rows = [[texts.setdefault(p, len(texts)) for p in ps] for ps in prompts]
    width = max(len(r) for r in rows)
    index = torch.tensor([r + [r[0]] * (width - len(r)) for r in rows], dtype=torch.long)
    text = clap.embed_text(list(texts), progress=progress)
    return PairBank(stems.audio.float(), text.float(), index, torch.tensor([len(r) for r in rows]))


def pairs_key(clap_sha: str, songs, cfg: BridgeTrainConfig) -> dict:
    """What the cached pairs depend on (a different key means recomputing them)."""
    return {"clap_sha256": clap_sha, "songs": sorted(s.name for s in songs), "crops_per_stem": cfg.crops_per_stem,
            "crop_seconds": cfg.crop_seconds, "prompts_per_stem": cfg.prompts_per_stem,
            "tag_dropout": cfg.tag_dropout, "silence_db": cfg.silence_db, "seed": cfg.seed}


def cached_pairs(path: Path, key: dict, compute) -> tuple[PairBank, bool]:
    """The pairs cached at ``path`` when their key equals ``key``; otherwise ``compute()``'s result,
    written to ``path`` (atomically). Returns (pairs, whether the cache was used)."""
    from ..checkpoint import load_checkpoint, save_checkpoint
    from ..errors import CheckpointError

    if path.is_file():
        try:
            ckpt = load_checkpoint(path, kind=PAIRS_KIND, keep_dtype=True)
        except CheckpointError:
            ckpt = None
        if ckpt is not None and ckpt.config == key:
            return PairBank(**{k: ckpt.tensors[k] for k in ("audio", "text", "prompt_index", "prompt_count")}), True
    bank = compute()
    save_checkpoint(path, bank.tensors(), kind=PAIRS_KIND, config=key)
    return bank, False


class PairBatches(torch.utils.data.Dataset):
    """Item ``i`` is a whole training batch ``(audio [B, dim], text [B, dim], drop bool [B])``, a pure
    function of ``(seed, i + offset)``: random stems, one random crop and one random prompt each,
    the text dropped with probability ``p_uncond``. ``offset`` skips the batches a resumed run saw."""

    def __init__(self, bank: PairBank, batch_size: int, steps: int, p_uncond: float, seed: int) -> None:
        self.bank = bank
        self.batch_size = int(batch_size)
        self.steps = int(steps)
        self.p_uncond = float(p_uncond)
        self.seed = int(seed)
        self.offset = 0

    def __len__(self) -> int:
        return self.steps

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        rng = np.random.default_rng([self.seed, int(index) + self.offset])
        s, k, _ = self.bank.audio.shape
        b = self.batch_size
        stem = torch.from_numpy(rng.integers(0, s, size=b))
        crop = torch.from_numpy(rng.integers(0, k, size=b))
        counts = self.bank.prompt_count[stem]
        col = (torch.from_numpy(rng.random(b)) * counts).long().clamp(max=counts - 1)
        prompt = self.bank.prompt_index[stem, col]
        drop = torch.from_numpy(rng.random(b) < self.p_uncond)
        return self.bank.audio[stem, crop], self.bank.text[prompt], drop


# ---- Lightning module ---------------------------------------------------------------------------


def make_module(run_config: BridgeRunConfig, bridge: ClapBridge):
    """The Lightning module training ``bridge`` (data statistics already set) with AdamW, linear
    warm-up + cosine decay and an EMA copy (exported). Built here so Lightning loads lazily."""
    import copy
    import time

    import lightning as L

    from .common import adamw_with_schedule, ema_decay, ema_update_, session_throughput

    cfg = run_config.train

    class BridgeLightning(L.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.model = bridge
            self.model.train()
            self.ema = None
            if cfg.ema_decay > 0:
                self.ema = copy.deepcopy(bridge)
                self.ema.requires_grad_(False)
            self.train_dataset: PairBatches | None = None
            self.throughput: dict = {}

        def training_step(self, batch, batch_idx):
            audio, text, drop = batch
            loss = self.model.loss(audio, text, drop)
            self.log("train/loss", loss, prog_bar=True, batch_size=audio.shape[0])
            return loss

        def on_train_start(self) -> None:
            self._timing = (time.perf_counter(), int(self.global_step))
            if self.train_dataset is not None:
                self.train_dataset.offset = int(self.global_step)

        def on_train_batch_end(self, outputs, batch, batch_idx) -> None:
            if self.ema is not None:
                ema_update_(self.ema, self.model, ema_decay(cfg.ema_decay, int(self.global_step)))

        def on_train_end(self) -> None:
            steps, elapsed = session_throughput(getattr(self, "_timing", None), int(self.global_step))
            self.throughput = {"steps": steps, "seconds": round(elapsed, 1),
                               "steps_per_second": round(steps / elapsed, 3)}

        def configure_optimizers(self):  # no weight decay on 0-/1-D parameters
            return adamw_with_schedule(self.model, cfg.lr, cfg.max_steps, cfg.warmup_steps, cfg.betas,
                                       cfg.weight_decay, cfg.min_lr_ratio)

        def export_model(self) -> ClapBridge:
            """The bridge to ship (EMA weights when kept), float32, eval mode."""
            return copy.deepcopy(self.ema if self.ema is not None else self.model).float().eval()

    return BridgeLightning()


# ---- command ------------------------------------------------------------------------------------


def _overrides(args: Namespace) -> dict:
    mapping = {"max_steps": args.max_steps, "batch_size": args.batch_size, "lr": args.lr, "seed": args.seed,
               "crops_per_stem": args.crops_per_stem, "train_split": args.train_split,
               "eval_split": args.eval_split}
    return {k: v for k, v in mapping.items() if v is not None}


def resolve_config(config_cls, args: Namespace, run_dir: Path, overrides: dict, model_fields: dict):
    """The run config of a bridge-network trainer (``train bridge``, ``train prior``): the run folder's
    own when resuming (refused when its ``model.clap_sha256`` differs from ``model_fields``'), else
    ``--config`` or ``config_cls()``; then the non-None ``overrides`` of the train section and
    ``model_fields`` (the CLAP's width and identity). Written to ``run_config.json``."""
    import json

    from ..checkpoint import config_from_dict, config_to_dict, load_config_file
    from ..fsutil import write_json_atomic

    saved = run_dir / "run_config.json"
    if args.resume:
        if not saved.is_file():
            raise InputError(f"--resume: {run_dir} holds no run (no run_config.json)")
        config = load_config_file(config_cls, saved)
        sha = model_fields.get("clap_sha256", "")
        if config.model.clap_sha256 and config.model.clap_sha256 != sha:
            raise ConfigError(f"--resume: {run_dir} was trained on another CLAP checkpoint than {args.clap}")
    elif args.config:
        config = load_config_file(config_cls, args.config)
    else:
        config = config_cls()
    data = config_to_dict(config)
    data["train"].update({k: v for k, v in overrides.items() if v is not None})
    data["model"].update(model_fields)
    config = config_from_dict(config_cls, json.loads(json.dumps(data)))
    write_json_atomic(saved, config_to_dict(config))
    return config


def resolve_run_config(args: Namespace, run_dir: Path, clap_dim: int, clap_sha: str) -> BridgeRunConfig:
    """The bridge's run config (:func:`resolve_config`) with the command-line overrides."""
    return resolve_config(BridgeRunConfig, args, run_dir, _overrides(args),
                          dict(dim=clap_dim, text_dim=clap_dim, clap_sha256=clap_sha))


def check_run_dir(args: Namespace) -> Path:
    """``--out`` as a Path, after refusing a finished run without ``--resume`` and a bad ``--max-minutes``."""
    run_dir = Path(args.out)
    if (run_dir / "checkpoints" / "last.ckpt").is_file() and not args.resume:
        raise InputError(f"{run_dir} already holds a run; pass --resume to continue it or choose a new --out")
    if args.max_minutes is not None and not args.max_minutes > 0:
        raise InputError(f"--max-minutes must be > 0, got {args.max_minutes}")
    return run_dir


def start_run(args: Namespace, resolve: Callable) -> tuple[Path, Any, str, Any]:
    """The start shared by ``train bridge`` and ``train prior``: CPU set-up, the run folder
    (:func:`check_run_dir`, created), the CLAP model and its file hash, the run config
    (``resolve(args, run_dir, clap_dim, clap_sha)``) and the seed. Returns (run_dir, clap, clap_sha, config)."""
    import lightning as L

    from ..clap.builtin import BuiltinClap
    from ..torchutil import setup_cpu

    setup_cpu()
    run_dir = check_run_dir(args)
    clap_sha = file_sha256(args.clap)
    clap = BuiltinClap.load(args.clap)
    run_dir.mkdir(parents=True, exist_ok=True)
    config = resolve(args, run_dir, clap.dim, clap_sha)
    L.seed_everything(config.train.seed, workers=True, verbose=False)
    return run_dir, clap, clap_sha, config


def train_and_export(args: Namespace, run_dir: Path, config, model: ClapBridge, dataset,
                     *, export_name: str, extra: dict, label: str, progress: bool) -> tuple[ClapBridge, int] | None:
    """Train ``model`` (a bridge network with data statistics set) on ``dataset`` (whole batches) with
    :func:`make_module`, resumable from ``run_dir/checkpoints/last.ckpt``; export its EMA weights as fp16
    to ``--export`` or ``run_dir/export_name`` with ``extra`` (plus step and throughput), and return the
    exported model loaded back (what ships) with the global step; None on non-zero ranks."""
    from torch.utils.data import DataLoader

    from .common import build_trainer, cluster_trainer_kwargs, fit

    cfg = config.train
    ckpt_dir = run_dir / "checkpoints"
    module = make_module(config, model)
    module.train_dataset = dataset
    trainer = build_trainer(
        run_dir, max_steps=cfg.max_steps, max_minutes=args.max_minutes, precision=cfg.precision,
        checkpoint_every=cfg.checkpoint_every, grad_clip=cfg.grad_clip or None, progress=progress,
        checkpoint_dir=ckpt_dir, keep_checkpoints=1, limit_val_batches=0,
        **cluster_trainer_kwargs(args, run_dir, cfg.max_steps),
    )
    # last.ckpt is also written at the end, e.g. when --max-minutes stopped the run between checkpoints
    fit(trainer, module, DataLoader(dataset, batch_size=None, shuffle=False), ckpt_dir, args.resume)
    if trainer.global_rank != 0:
        return None
    speed = module.throughput
    step = int(trainer.global_step)
    export = Path(args.export) if args.export else run_dir / export_name
    module.export_model().save(export, extra={"step": step, **extra, "throughput": speed}, fp16=True)
    print(f"{label}: exported {export} (step {step}; this session {speed.get('steps', 0)} steps, "
          f"{speed.get('steps_per_second', 0.0)} steps/s)", file=sys.stderr)
    return ClapBridge.load(export), step  # evaluate exactly what was exported (fp16 weights)


def run(args: Namespace) -> int:
    """Train (or resume), export the bridge and evaluate it. Returns the exit code."""
    from ..clap.corpus import scan_songs
    from ..errors import DatasetError
    from ..fsutil import write_json_atomic
    from ..priors.bridge import evaluate_bridge, format_bridge_report

    run_dir, clap, clap_sha, config = start_run(args, resolve_run_config)
    cfg = config.train
    progress = sys.stderr.isatty()

    songs = scan_songs(args.corpus, cfg.train_split)
    if args.limit_songs is not None:
        if args.limit_songs < 1:
            raise InputError(f"--limit-songs must be >= 1, got {args.limit_songs}")
        songs = songs[: args.limit_songs]
    bank, hit = cached_pairs(run_dir / PAIRS_FILE, pairs_key(clap_sha, songs, cfg),
                             lambda: build_pairs(clap, songs, cfg, progress))
    s, k, _ = bank.audio.shape
    bridge = ClapBridge(config.model)
    sigma = bridge.set_data_stats(bank.audio.reshape(s * k, -1))
    print(f"bridge: {len(songs)} songs, {s} stems x {k} crops, {bank.text.shape[0]} distinct prompts "
          f"({'cached' if hit else 'embedded'}); sigma_data {sigma:.4f}; {bridge.num_parameters() / 1e6:.2f} M "
          "parameters", file=sys.stderr)

    dataset = PairBatches(bank, cfg.batch_size, cfg.max_steps, config.model.p_uncond, cfg.seed)
    done = train_and_export(args, run_dir, config, bridge, dataset, export_name="bridge.safetensors",
                            extra={"corpus": str(args.corpus), "songs": len(songs), "clap": str(args.clap)},
                            label="bridge", progress=progress)
    if done is None:
        return 0
    model, step = done
    if cfg.eval_split and cfg.eval_split != "none":
        try:
            result = evaluate_bridge(model, clap, args.corpus, cfg.eval_split, n_samples=cfg.eval_samples,
                                     crops_per_stem=cfg.crops_per_stem, crop_seconds=cfg.crop_seconds,
                                     seed=cfg.seed, progress=progress)
        except DatasetError as exc:
            print(f"bridge: no evaluation ({exc})", file=sys.stderr)
        else:
            result["step"] = step
            write_json_atomic(run_dir / "eval.json", result)
            print(format_bridge_report(result))
    return 0
