"""``diffariff finetune``: adapt a bundle's latent diffusion model to a producer's own stems, in one call.

:func:`finetune` runs the whole job, resumably (every stage is kept in a work folder, by default
``.<OUT>.finetune`` beside the output, removed after success unless kept; run the same command again
after an interruption). Work folder: ``plan.json`` (data, source model, songs and pair recipes; another
plan is refused), ``cache_train/`` and ``cache_holdout/`` (latent caches), ``run_full/`` or
``run_lora_r<R>_a<A>/`` (Lightning ``last.ckpt``, ``metrics.csv``; another method reuses the caches):

1. survey the data (:func:`survey_data`: any layout :func:`~diffariff.data.sources.open_dataset` reads;
   unreadable files are skipped with a one-line warning; a DatasetError when fewer than
   ``min_songs`` songs have 2 readable stems, one of them not vocals, and the length of a pair);
2. hold out ``holdout`` songs (those of a ``test`` / ``valid`` split first, then drawn from the seed);
3. encode training and held-out pairs with the source bundle's codec and CLAP into two latent caches
   (:func:`~diffariff.data.latents.build_latent_cache`, with a progress bar); training reads its cache
   lazily (:class:`~diffariff.data.latent_stream.StreamingLatentCache`), so it may exceed memory;
4. train the bundle's EDM model from its weights, same config (:class:`FinetuneModule`): all weights
   (``method="full"``) or rank-r adapters on the DiT's attention and MLP layers (``"lora"``,
   :mod:`diffariff.nets.lora`), on any Lightning accelerator / devices / nodes / strategy
   (:class:`DeviceConfig`);
5. score the held-out pairs before and after (:func:`~diffariff.eval.denoising.denoising_losses`:
   EDM-weighted denoising error at fixed noise levels and draws, 1.0 = a zero-output network) and
   write a complete bundle at ``out`` (adapters merged; fp16 safetensors with the config inside; the
   source's codec, CLAP, consistency model, bridge, pitch critic and example copied; atomic), with
   the context prior grown by the producer's pairs (:mod:`.finetune_prior`, ``prior/`` in the work folder);
6. generate for ``eval_pairs`` held-out pairs with the source and the new bundle and score both with the
   generation protocol (:func:`~diffariff.eval.before_after.compare_bundles`: KD, FAD, APA, CLAP
   similarity to the reference, rhythm and key fit to the context, with 95 % intervals), into
   ``OUT/finetune.json`` and the report: with a reference clip of the target's song (``clap_a+ctx``)
   and, when the prior was grown, from the context alone (``ctx_prior``: the prior picks the part).

With several processes (Lightning's DDP launcher, ``torchrun``, SLURM), each node's local rank 0 builds
the caches (the others wait for them) and global rank 0 scores, exports and prints.
"""

from __future__ import annotations

import dataclasses
import math
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import lightning as L
import torch

from ..bundle import Bundle, open_bundle, resolve_bundle_dir, save_bundle
from ..checkpoint import config_to_dict
from ..data.latent_stream import StreamingLatentCache
from ..data.latents import CacheRecipe, Encoders, LatentCacheDataset, build_latent_cache, read_manifest
from ..data.songs import Song
from ..data.survey import split_holdout, survey_data
from ..diffusion.model import LatentDiffusion, model_identity
from ..errors import CheckpointError, ConfigError, DatasetError, InputError, OutputPathError
from ..eval.before_after import compare_bundles
from ..eval.denoising import DenoisingEvalConfig, denoising_losses
from ..fsutil import check_output_dir, same_file, write_json_atomic
from ..nets.lora import add_lora, merge_lora
from ..torchutil import setup_cpu
from .common import EMA, LAST, CSVMetrics, build_trainer, fit, session_throughput
from .devices import DeviceConfig, launcher_ranks
from .diffusion import DiffusionModule, DiffusionRunConfig, DiffusionTrainConfig
from .finetune_prior import refit_prior


@dataclass
class FinetuneConfig:
    """What to train and how long (stored in the work folder and in the exported model's metadata).

    ``steps`` or ``minutes`` (one of them; neither: 30 minutes) ends training: steps follow a warm-up
    then cosine schedule to 10 % of ``lr``, a time limit a warm-up then a constant ``lr`` (default 1e-4
    full, 1e-3 LoRA). ``batch_size``: pairs per step per process. ``pairs`` (None: 4 per window of
    training audio, 64 to 20000) and ``holdout_pairs``: pairs encoded; ``eval_pairs``: held-out pairs generated
    with both bundles for the before / after generation scores (0: none); ``window_seconds`` (None: the
    model's training window + 10 %, rounded up to 0.25 s) and ``reference_seconds`` (None: min(5 s, window)).
    ``lora_alpha`` None: the rank (update scale 1). ``prior_pairs``: the producer's pairs added to the bank
    of the source's neighbour context prior (:mod:`.finetune_prior`; None: as many as ``pairs``, at most
    2000; 0: the source's prior as it is)."""

    method: str = "full"
    lora_rank: int = 8
    lora_alpha: float | None = None
    steps: int | None = None
    minutes: float | None = None
    lr: float | None = None
    batch_size: int = 16
    warmup_steps: int = 50
    ema_decay: float = 0.995
    holdout: int = 2
    pairs: int | None = None
    holdout_pairs: int = 32
    window_seconds: float | None = None
    reference_seconds: float | None = None
    min_songs: int = 2
    seed: int = 0
    precision: str = "auto"
    checkpoint_every: int = 100
    workers: int = 0
    eval_pairs: int = 32
    prior_pairs: int | None = None

    def __post_init__(self) -> None:
        if self.method not in ("full", "lora"):
            raise ConfigError(f"--method must be 'full' or 'lora', got '{self.method}'")
        if self.steps is not None and self.minutes is not None:
            raise ConfigError("give --steps or --minutes, not both")
        if self.steps is None and self.minutes is None:
            self.minutes = 30.0
        if (self.steps is not None and self.steps < 1) or (self.minutes is not None and not self.minutes > 0):
            raise ConfigError("--steps must be >= 1 and --minutes > 0")
        if self.lora_rank < 1 or self.batch_size < 1 or self.holdout < 0 or self.min_songs < 1:
            raise ConfigError("need --lora-rank >= 1, --batch-size >= 1, --holdout >= 0")
        if self.eval_pairs == 1 or self.eval_pairs < 0:
            raise ConfigError(f"--eval-pairs must be 0 (no generation score) or >= 2, got {self.eval_pairs}")
        if (self.pairs is not None and self.pairs < 1) or self.holdout_pairs < 1:
            raise ConfigError("--pairs and the held-out pairs must be >= 1")
        if self.prior_pairs is not None and self.prior_pairs < 0:
            raise ConfigError(f"--prior-pairs must be >= 0, got {self.prior_pairs}")
        if self.lr is not None and not self.lr > 0:
            raise ConfigError(f"--lr must be > 0, got {self.lr}")

    @property
    def learning_rate(self) -> float:
        return float(self.lr) if self.lr is not None else (1e-3 if self.method == "lora" else 1e-4)


def pair_seconds(cfg: FinetuneConfig, model: LatentDiffusion, frame_rate: float) -> tuple[float, float]:
    """(window, reference) seconds of the cached pairs for ``model``, whose codec makes ``frame_rate`` latent
    frames per second (see :class:`FinetuneConfig`)."""
    window = cfg.window_seconds or math.ceil(model.config.train_frames / frame_rate * 1.1 * 4) / 4
    return float(window), float(cfg.reference_seconds or min(5.0, window))


def ensure_cache(encoders: Encoders, songs: list[Song], root: Path, recipe: CacheRecipe, build: bool,
                 progress: bool, log: Callable[[str], None], wait_seconds: float = 6 * 3600) -> Path:
    """The complete latent cache of ``recipe`` at ``root``: kept when already there, built when
    ``build`` (this node's local rank 0), else waited for (another process builds it)."""
    def done() -> bool:
        try:
            man = read_manifest(root)
        except DatasetError:
            return False
        return bool(man.get("complete")) and man.get("recipe") == asdict(recipe)

    if done():
        return root
    if build:
        shards = recipe.num_shards
        tick = None if progress else (lambda k: log(f"  shard {k + 1}/{shards} of {root.name} encoded"))
        build_latent_cache(encoders, songs, root, recipe, progress=progress, on_shard=tick)
        return root
    deadline = time.monotonic() + wait_seconds
    while not done():
        if time.monotonic() > deadline:
            raise DatasetError(f"{root}: the latent cache was not completed by local rank 0 in time")
        time.sleep(2.0)
    return root


# ------------------------------------------------------------------------------------------ model
class FinetuneModule(DiffusionModule):
    """:class:`~diffariff.train.diffusion.DiffusionModule` warm-started from ``start``'s weights, with
    adapters (``lora`` = (rank, alpha)) when given; the EMA starts from the warm-started model."""

    def __init__(self, run_config: DiffusionRunConfig, start: LatentDiffusion,
                 lora: tuple[int, float | None] | None = None):
        super().__init__(run_config)
        self.model.load_state_dict(start.state_dict())
        if lora is not None:
            add_lora(self.model, *lora)
        self.ema = EMA(self.model, run_config.train.ema_decay)
        self.session_start: tuple[float, int] | None = None
        self.ranks_in_sync: bool | None = None

    def on_train_start(self) -> None:
        self.session_start = (time.perf_counter(), int(self.global_step))

    def on_train_end(self) -> None:
        """Check that every process ends with the same weights (DDP keeps them equal; sharded
        strategies hold different parts, so they are not compared): ``ranks_in_sync`` True / False,
        None when not checked."""
        self.ranks_in_sync = None
        if self.trainer.world_size < 2 or "fsdp" in type(self.trainer.strategy).__name__.lower():
            return
        total = torch.stack([p.detach().double().sum() for p in self.model.parameters()]).sum()
        sums = self.all_gather(total).reshape(-1)
        self.ranks_in_sync = bool(torch.all(sums == sums[0]))

    def trainable_parameters(self) -> int:
        return sum(p.numel() for p in self.model.parameters() if p.requires_grad)


def exported_model(state: dict[str, torch.Tensor], config, lora: tuple[int, float | None] | None) -> LatentDiffusion:
    """The plain model of a fine-tune checkpoint's EMA weights (``state``: a Lightning ``state_dict``),
    adapters merged into the weights."""
    model = LatentDiffusion(config)
    if lora is not None:
        add_lora(model, *lora)
    model.load_state_dict({k.removeprefix("ema.module."): v for k, v in state.items() if k.startswith("ema.module.")})
    merge_lora(model)
    return model.eval()


def heldout_losses(model: LatentDiffusion, tensors: dict, seed: int) -> dict[str, float]:
    """Mean held-out denoising error per conditioning (ctx+clap, ctx, clap, none) and ``mean``."""
    res = denoising_losses(model.float().eval(), tensors, DenoisingEvalConfig(batch_size=16, seed=seed))
    out = {name: round(row["mean"], 5) for name, row in res["conditionings"].items()}
    out["mean"] = round(sum(out.values()) / len(out), 5)
    return out


# -------------------------------------------------------------------------------------------- run
def finetune(data: str | os.PathLike, out: str | os.PathLike, source: str = "default",
             cfg: FinetuneConfig | None = None, devices: DeviceConfig | None = None, *, layout: str = "auto",
             work: str | os.PathLike | None = None, overwrite: bool = False, keep_work: bool = False,
             progress: bool = False, log: Callable[[str], None] = print) -> dict | None:
    """Run the fine-tune (module doc) and return its summary (None on processes other than global rank 0)."""
    cfg, devices = cfg or FinetuneConfig(), devices or DeviceConfig()
    setup_cpu()
    is_global_zero, is_local_zero = launcher_ranks()
    say = log if is_global_zero else (lambda _line: None)
    src_root = resolve_bundle_dir(source)
    out = Path(out)
    if same_file(out, src_root) or out.resolve() == src_root:
        raise OutputPathError(f"{out} is the source bundle; write the fine-tuned bundle elsewhere")
    work = Path(work) if work else out.with_name(f".{out.name}.finetune")
    unscored = _unscored_summary(out, work) if out.exists() and not overwrite else None
    if out.exists() and not overwrite and unscored is None:
        raise OutputPathError(f"{out} already exists (pass --overwrite to replace it)")
    check_output_dir(out.parent)
    src = open_bundle(src_root)
    if "edm" not in src.diffusion:
        raise CheckpointError(f"{src.root}: the bundle has no EDM model to fine-tune")
    start = LatentDiffusion.load(src.diffusion["edm"])
    lora = (cfg.lora_rank, cfg.lora_alpha) if cfg.method == "lora" else None
    trainer_kw = devices.trainer_kwargs(cfg.precision)

    codec = _load_codec(src)
    window, reference = pair_seconds(cfg, start, codec.config.frame_rate)
    survey = survey_data(data, window + reference, layout, warn=is_global_zero)
    need = max(cfg.min_songs, cfg.holdout + 1)
    if len(survey.songs) < need:
        raise DatasetError(f"{data}: {len(survey.songs)} usable song(s), fine-tuning needs {need} (each with 2+ "
                           f"readable stems, one not vocals, and {window + reference:.1f}+ s)")
    train_songs, held = split_holdout(survey.songs, cfg.holdout, cfg.seed)
    for line in survey.report():
        say(line)
    say(f"held out for evaluation: {', '.join(s.name for s in held) or 'none'}")

    train_seconds = sum(s.duration_seconds() for s in train_songs)
    pairs = cfg.pairs or int(min(20_000, max(64, round(4 * train_seconds / window))))
    recipe = CacheRecipe(pairs=pairs, seed=cfg.seed, shard_size=256, window_seconds=window,
                         reference_seconds=reference, split=None, layout=survey.layout)
    held_recipe = dataclasses.replace(recipe, pairs=cfg.holdout_pairs, seed=cfg.seed + 1)
    plan = {"data": str(Path(data).resolve()), "source": str(src.root), "edm": model_identity(src.diffusion["edm"]),
            "train_songs": [s.name for s in train_songs], "holdout_songs": [s.name for s in held],
            "recipe": asdict(recipe), "holdout_recipe": asdict(held_recipe)}
    _check_plan(work, plan, write=is_global_zero)
    if unscored is not None:  # trained and written by this work folder; interrupted while scoring
        if not is_global_zero:
            return None
        say(f"{out} was written by this fine-tune; scoring it")
        unscored["session_steps"] = 0  # this run trains nothing
        return _score(src, out, work, held, cfg, window, unscored, keep_work, progress, say)

    encoders = Encoders(codec, _load_clap(src), start.config.codec_id, start.config.clap_id)
    say(f"encoding {pairs} training pairs ({window:g} s windows) with the source codec and CLAP")
    ensure_cache(encoders, train_songs, work / "cache_train", recipe, is_local_zero, progress, say)
    held_tensors = None
    if held:
        ensure_cache(encoders, held, work / "cache_holdout", held_recipe, is_local_zero, progress, say)
        if is_global_zero:
            held_tensors = LatentCacheDataset(work / "cache_holdout", full_length=True).tensors
    before = heldout_losses(start, held_tensors, cfg.seed) if held_tensors is not None else None

    summary = _train(cfg, trainer_kw, start, lora, work, say)
    if summary is None:
        return None
    model = summary.pop("model")
    prior_pairs = min(2000, pairs) if cfg.prior_pairs is None else cfg.prior_pairs
    prior, summary["prior"] = refit_prior(src.prior, encoders.clap, src.clap, train_songs, work / "prior",
                                          pairs=prior_pairs, window_seconds=window, reference_seconds=reference,
                                          seed=cfg.seed, progress=progress, say=say)
    weights = model.save(work / "diffusion_edm.safetensors", fp16=True,
                         extra={"step": summary["steps"], "finetune": config_to_dict(cfg), "source": str(src.root)})
    after = heldout_losses(LatentDiffusion.load(weights), held_tensors, cfg.seed) if held_tensors is not None else None
    summary.update(out=str(out), train_songs=len(train_songs), train_pairs=pairs, heldout={"pairs": cfg.holdout_pairs if held else 0, "songs": plan["holdout_songs"],
                                          "before": before, "after": after})
    summary.update(work=str(work.resolve()), scored=False)
    _export(src, weights, prior, out, cfg, summary, overwrite)
    write_json_atomic(out / "finetune.json", summary)
    return _score(src, out, work, held, cfg, window, summary, keep_work, progress, say)


def _unscored_summary(out: Path, work: Path) -> dict | None:
    """The summary in ``out/finetune.json`` when ``out`` was written by a fine-tune in ``work`` that was
    interrupted before its generation scores were complete (a rerun then scores it); else None."""
    import json

    path = out / "finetune.json"
    if not path.is_file() or not (work / "plan.json").is_file():
        return None
    try:
        summary = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(summary, dict) or summary.get("work") != str(work.resolve()):
        return None
    return None if summary.get("scored", True) else summary


def _score(src: Bundle, out: Path, work: Path, held: list[Song], cfg: FinetuneConfig, window: float, summary: dict,
           keep_work: bool, progress: bool, say: Callable[[str], None]) -> dict:
    """Step 6 (module doc): generation scores of the source and the new bundle on the held-out songs, with
    a reference clip and, when the prior was grown, from the context alone; then the work folder goes."""
    if held and cfg.eval_pairs:
        say(f"generating {cfg.eval_pairs} held-out pairs of {window:g} s with the source and the new bundle")
        settings = [("generation", "clap_a+ctx")]
        if (summary.get("prior") or {}).get("refit"):
            settings.append(("generation_prior", "ctx_prior"))
        for key, setting in settings:
            if key in summary:  # scored before an interruption
                continue
            summary[key] = compare_bundles({"before": src.root, "after": out}, held, src.clap, work / "eval_cache",
                                           n=cfg.eval_pairs, seed=cfg.seed, window_seconds=window, setting=setting,
                                           progress=progress or False)
            write_json_atomic(out / "finetune.json", summary)
    summary["scored"] = True
    write_json_atomic(out / "finetune.json", summary)
    if not keep_work:
        shutil.rmtree(work, ignore_errors=True)
    return summary


def _check_plan(work: Path, plan: dict, write: bool) -> None:
    import json

    path = work / "plan.json"
    if path.is_file():
        old = json.loads(path.read_text(encoding="utf-8"))
        bad = [k for k in plan if old.get(k) != plan[k]]
        if bad:
            raise InputError(f"{work} holds a fine-tune with another {', '.join(bad)}; delete it or pass "
                             "another --work folder")
    elif write:
        work.mkdir(parents=True, exist_ok=True)
        write_json_atomic(path, plan)


def _check_run(run_dir: Path, settings: dict, write: bool) -> None:
    """InputError when ``run_dir`` holds a run trained with other ``settings`` (resuming it would keep
    them); a new run records them. The length (--steps / --minutes) may change: a rerun extends a run."""
    import json

    path = run_dir / "settings.json"
    if path.is_file():
        old = json.loads(path.read_text(encoding="utf-8"))
        bad = [k for k in settings if old.get(k) != settings[k]]
        if bad and (run_dir / LAST).is_file():
            raise InputError(f"{run_dir} was trained with another {', '.join(bad)}; delete it to start over")
    if write:
        run_dir.mkdir(parents=True, exist_ok=True)
        write_json_atomic(path, settings)


def _load_codec(bundle: Bundle):
    from ..codec import load_codec

    return load_codec(bundle.codec)


def _load_clap(bundle: Bundle):
    from ..clap.builtin import BuiltinClap

    return BuiltinClap.load(bundle.clap)


def _train(cfg: FinetuneConfig, trainer_kw: dict, start: LatentDiffusion, lora, work: Path,
           say: Callable[[str], None]) -> dict | None:
    """Fit on ``work/cache_train``; on global rank 0 return the summary with the exported ``model``."""
    total = cfg.steps or 1_000_000_000
    train = DiffusionTrainConfig(batch_size=cfg.batch_size, lr=cfg.learning_rate, warmup_steps=cfg.warmup_steps,
                                 total_steps=total, min_lr_ratio=0.1 if cfg.steps else 1.0, ema_decay=cfg.ema_decay,
                                 precision=trainer_kw["precision"], seed=cfg.seed,
                                 checkpoint_every=cfg.checkpoint_every)
    run_cfg = DiffusionRunConfig(model=start.config, train=train)
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    module = FinetuneModule(run_cfg, start, lora)
    # one run folder per method: another method reuses the caches and starts its own training
    run_dir = work / (f"run_lora_r{lora[0]}_a{lora[1] if lora[1] is not None else lora[0]:g}" if lora else "run_full")
    _check_run(run_dir, {"lr": cfg.learning_rate, "batch_size": cfg.batch_size, "warmup_steps": cfg.warmup_steps,
                         "ema_decay": cfg.ema_decay, "seed": cfg.seed, "schedule": "steps" if cfg.steps else "minutes"},
               write=launcher_ranks()[0])
    metrics = CSVMetrics(run_dir / "metrics.csv", every=max(1, min(10, cfg.steps or 10)))
    kw = {k: v for k, v in trainer_kw.items() if k != "precision"}
    trainer = build_trainer(run_dir, max_steps=cfg.steps, max_minutes=cfg.minutes, precision=trainer_kw["precision"],
                            checkpoint_every=cfg.checkpoint_every, callbacks=[metrics], grad_clip=train.grad_clip, **kw)
    ds = StreamingLatentCache(work / "cache_train", None, seed=cfg.seed)
    ds.train_frames = min(start.config.train_frames, ds.frames)
    batch = min(cfg.batch_size, len(ds) // trainer.world_size)
    if batch < 1:
        raise DatasetError(f"{len(ds)} training pairs cannot feed {trainer.world_size} processes; raise --pairs")
    loader = torch.utils.data.DataLoader(ds, batch_size=batch, shuffle=True, drop_last=True,
                                         generator=torch.Generator().manual_seed(cfg.seed), num_workers=cfg.workers,
                                         persistent_workers=cfg.workers > 0)
    trainable = module.trainable_parameters()
    say(f"fine-tuning {cfg.method} ({trainable:,} of {start.num_parameters():,} parameters trainable) on "
        f"{trainer_kw['accelerator']} x {trainer.world_size} process(es), {trainer_kw['precision']}, "
        f"batch {batch} per process, " + (f"{cfg.steps} steps" if cfg.steps else f"{cfg.minutes:g} minutes"))
    if (run_dir / LAST).is_file():
        say(f"resuming from {run_dir / LAST}")
    fit(trainer, module, loader, run_dir, resume=True)
    if not trainer.is_global_zero:
        return None
    done, seconds = session_throughput(module.session_start, trainer.global_step)
    state = torch.load(run_dir / LAST, map_location="cpu", weights_only=True)["state_dict"]
    return {"model": exported_model(state, start.config, lora), "method": cfg.method,
            "steps": int(trainer.global_step), "session_steps": int(done), "seconds": round(seconds, 1),
            "steps_per_s": round(done / seconds, 3),
            "processes": trainer.world_size, "ranks_in_sync": module.ranks_in_sync, "accelerator": trainer_kw["accelerator"],
            "precision": trainer_kw["precision"], "trainable_parameters": trainable,
            "parameters": start.num_parameters(),
            "last_loss": next((r["loss"] for r in reversed(metrics.rows) if "loss" in r), None)}


def _export(src: Bundle, weights: Path, prior: Path | None, out: Path, cfg: FinetuneConfig, summary: dict,
            overwrite: bool) -> None:
    """The new bundle at ``out``: the fine-tuned EDM weights, the grown context ``prior`` (None: the
    source's) and the source's other parts (atomic)."""
    diffusion: dict[str, object] = {"edm": weights}
    if "consistency" in src.diffusion:
        diffusion["consistency"] = src.diffusion["consistency"]
    h = summary["heldout"]
    scores = (f"; held-out denoising loss {h['before']['mean']:.4f} -> {h['after']['mean']:.4f}"
              if h["before"] else "")
    p = summary["prior"]
    prior_note = (f"the context prior's bank holds {p['added_rows']} pairs of these songs beside the source's "
                  f"{p['source_rows']}" if p["refit"] else "the context prior is the source's")
    notes = (f"EDM model fine-tuned ({cfg.method}, {summary['steps']} steps) from {src.root.name} on "
             f"{summary['train_songs']} songs{scores}; {prior_note}. The consistency model and bridge are "
             f"the source bundle's (not fine-tuned). Source notes: {src.notes}")
    save_bundle(out, codec=src.codec, clap=src.clap, diffusion=diffusion, bridge=src.bridge,
                prior=prior or src.prior, pitch_critic=src.pitch_critic, example=src.example or None, notes=notes,
                overwrite=overwrite)
