"""``diffariff train diffusion``: train the latent diffusion model on a latent cache (or several, read as one).

Modes: ``edm`` (EDM loss, log-normal sigmas) or ``consistency`` (iCT consistency training from scratch,
or distillation from an EDM teacher given with ``--teacher``; the student then starts from the
teacher's weights and normalisation; ``--distill-guidance W_CTX W_CLAP`` makes the teacher step a
nested-CFG step at those strengths, per sample with its own conditions, so that the student samples
the guided model in one network pass per step instead of two or three). ``--init CHECKPOINT``
warm-starts a new run from a trained model (its architecture, normalisation and weights; a fresh
optimiser and lr schedule), e.g. to continue training on a grown cache; with ``--init-new-latents``
the cache may come from another codec (e.g. a retrained one whose latents correlate with the old
ones): the weights are kept, the normalisation is re-measured (a distillation student takes its
teacher's) and the cache's codec id adopted. ``--grow-depth N`` deepens an ``--init`` DiT to N blocks
that compute exactly its function (gated-off copies, :mod:`diffariff.nets.grow`), so more capacity is
trained from the trained model instead of from scratch.

Conditions per sample (documented defaults, tune them):
* the CLAP condition is the **audio** embedding of the reference clip with probability ``p_audio``
  (0.7), else the **text** embedding of the target's tag prompt, so the model answers to both;
* the context is dropped with probability ``p_drop_context`` (0.3) and the CLAP condition with
  probability ``p_drop_clap`` (0.3), independently: the model learns p(x), p(x|ctx), p(x|clap) and
  p(x|ctx, clap) (all four needed by the nested CFG at sampling time; about 9 % of samples are
  unconditional). The Diff-A-Riff summary mentions 50 %; 0.3 keeps more fully-conditioned samples.
* with ``--context-chroma`` (model config ``context_chroma``) the context also carries its chroma, read
  from the cache's ``context_chroma`` rows (a cache without them is refused before training starts),
  and it is dropped with the context. With ``--init`` a model without the chroma inputs is widened to
  take them (zero weights: the run starts from exactly the --init model's function).

Before the first step the latent normalisation (``--norm global`` or ``channel``, from the cache's
target statistics) is fixed and ``sigma_data`` is measured on the normalised cache; both go to
``RUN/run_config.json`` and into the exported model. Randomness of step k (sigmas, noise, dropout,
CLAP choice) comes from a generator seeded by (seed, k), so a resumed run draws what the
uninterrupted run would have. Outputs in the run folder: ``last.ckpt`` (every ``checkpoint_every``
steps and at the end), ``metrics.csv`` (loss, loss per noise band, lr, samples/s), and the EMA
weights as a fp16 ``latent-diffusion`` checkpoint (``diffusion_ema.safetensors`` or ``--export``).
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys
from argparse import Namespace
from dataclasses import dataclass, field
from pathlib import Path

import lightning as L
import torch

from ..checkpoint import config_to_dict, load_config_file
from ..codec.pitch_critic import PitchCritic, load_pitch_critic
from ..data.latents import LatentCacheDataset, check_model_fits_cache
from ..diffusion.consistency import ConsistencyConfig, consistency_loss
from ..diffusion.edm import edm_loss, edm_training_estimate, edm_weighted_mse, measure_sigma_data
from ..diffusion.guidance import PerSampleGuidance
from ..diffusion.model import LatentDiffusion, LatentDiffusionConfig
from ..errors import ConfigError, InputError
from ..fsutil import write_json_atomic
from ..nets.grow import grow_dit_state, widen_context_state
from ..torchutil import seeded_generator, setup_cpu
from .common import EMA, CSVMetrics, adamw_with_schedule, build_trainer, fit
from .pitch_loss import pitch_class_loss

#: standard-normal quartiles: band edges at p_mean + p_std * q split the training sigmas into 4 equal bands
_QUARTILES = (-0.6745, 0.0, 0.6745)
#: network sizes that come from the cache (codec latent channels, CLAP dimension), not from the config
_SIZED_BY_DATA = ("latent_channels", "context_channels", "clap_dim")
#: the network used when no --config is given (the DiT of configs/dit_small.json, ~5 M parameters)
SMALL_DIT = {"width": 256, "depth": 6, "heads": 4, "mlp_ratio": 4.0, "cond_dim": 256, "noise_emb_dim": 512,
             "pos": "dpb", "qkv_dwconv_kernel": 3, "dpb_dim": 64, "dpb_log_distance": True}


@dataclass
class DiffusionTrainConfig:
    """Optimisation and conditioning settings (``"train"`` section of ``configs/diffusion_small.json``)."""

    batch_size: int = 32
    lr: float = 3e-4
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 0.01
    warmup_steps: int = 1000
    total_steps: int = 100_000
    min_lr_ratio: float = 0.0
    grad_clip: float = 1.0
    ema_decay: float = 0.999
    p_drop_context: float = 0.3
    p_drop_clap: float = 0.3
    p_audio: float = 0.7
    normalization: str = "global"
    checkpoint_every: int = 500
    log_every: int = 10
    precision: str = "auto"  # bf16-mixed where the CPU has native bf16, else 32-true (torchutil)
    seed: int = 0
    # consistency mode (iCT curriculum over total_steps)
    ct_s0: int = 10
    ct_s1: int = 1280
    ct_p_mean: float = -1.1
    ct_p_std: float = 2.0
    # guided distillation: the teacher step uses nested CFG at these strengths (1, 1 = unguided)
    distill_guidance: tuple[float, float] = (1.0, 1.0)
    # EDM mode: weight of the pitch-class term read through a pitch critic (train/pitch_loss.py; 0 = off)
    pitch_loss_weight: float = 0.0
    pitch_loss_window: int = 5

    def __post_init__(self) -> None:
        for name in ("p_drop_context", "p_drop_clap", "p_audio"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if len(self.distill_guidance) != 2 or min(self.distill_guidance) <= 0:
            raise ConfigError(f"distill_guidance must be two strengths > 0, got {self.distill_guidance}")
        if self.normalization not in ("global", "channel"):
            raise ConfigError(f"normalization must be 'global' or 'channel', got '{self.normalization}'")
        if self.pitch_loss_weight < 0 or self.pitch_loss_window < 1 or self.pitch_loss_window % 2 == 0:
            raise ConfigError("pitch_loss_weight must be >= 0 and pitch_loss_window an odd number of frames >= 1")
        if self.batch_size < 1 or self.lr <= 0 or self.total_steps < 1:
            raise ConfigError("need batch_size >= 1, lr > 0 and total_steps >= 1")


@dataclass
class DiffusionRunConfig:
    """What a run folder's ``run_config.json`` holds: the model config (with measured statistics) and
    the training settings."""

    model: LatentDiffusionConfig = field(default_factory=lambda: LatentDiffusionConfig(net_config=dict(SMALL_DIT)))
    train: DiffusionTrainConfig = field(default_factory=DiffusionTrainConfig)


class DiffusionModule(L.LightningModule):
    """Lightning module: the LatentDiffusion being trained, its EMA, the optional EDM teacher and the
    optional pitch critic of the pitch-class term (both frozen, neither part of the run's state)."""

    def __init__(self, run_config: DiffusionRunConfig, teacher: LatentDiffusion | None = None,
                 pitch_critic: PitchCritic | None = None):
        super().__init__()
        self.run_config = run_config
        self.tcfg = run_config.train
        self.model = LatentDiffusion(run_config.model)
        self.model.train()
        self.ema = EMA(self.model, self.tcfg.ema_decay)
        self.teacher = teacher.requires_grad_(False).eval() if teacher is not None else None
        if self.teacher is not None and self.teacher.config.mode != "edm":
            raise InputError("--teacher must be an EDM-mode latent diffusion checkpoint")
        t = self.tcfg
        if t.pitch_loss_weight > 0:
            if pitch_critic is None:
                raise ConfigError("pitch_loss_weight > 0 needs a pitch critic (--pitch-critic)")
            if run_config.model.mode != "edm":
                raise ConfigError("the pitch-class term is for EDM training (a student follows its teacher)")
            if pitch_critic.config.latent_dim != run_config.model.latent_channels:
                raise ConfigError(f"the pitch critic reads {pitch_critic.config.latent_dim} latent channels, the "
                                  f"model has {run_config.model.latent_channels}")
            fitted, cached = pitch_critic.config.codec_id, run_config.model.codec_id
            if fitted and cached and fitted != cached:
                raise ConfigError(f"the pitch critic was fitted to codec {fitted}, the latents are {cached}'s")
        # a plain attribute list, not a submodule: the critic stays out of the run's state and optimiser
        self._critic = [pitch_critic.requires_grad_(False).eval()] if t.pitch_loss_weight > 0 else []
        self.last_terms: dict[str, torch.Tensor] = {}
        # guided distillation: the teacher step calls this wrapper instead of the teacher's denoiser
        # (a plain object, not a submodule, so the teacher stays out of the run's state)
        guided = self.teacher is not None and tuple(t.distill_guidance) != (1.0, 1.0)
        self.guided_teacher = PerSampleGuidance(self.teacher.denoiser, *t.distill_guidance) if guided else None
        self.ct_config = ConsistencyConfig(
            sigma_data=run_config.model.sigma_data, sigma_min=run_config.model.sigma_min,
            sigma_max=run_config.model.sigma_max, rho=run_config.model.rho, p_mean=t.ct_p_mean, p_std=t.ct_p_std,
            s0=t.ct_s0, s1=t.ct_s1, total_steps=t.total_steps, distill=teacher is not None)
        if run_config.model.mode == "edm":
            p_mean, p_std = run_config.model.p_mean, run_config.model.p_std
        else:
            p_mean, p_std = t.ct_p_mean, t.ct_p_std
        self.band_edges = [math.exp(p_mean + p_std * q) for q in _QUARTILES]

    def state_dict(self, *args, **kwargs):  # the frozen teacher is not part of the run's state
        return {k: v for k, v in super().state_dict(*args, **kwargs).items() if not k.startswith("teacher.")}

    def load_state_dict(self, state_dict, strict: bool = True, **kwargs):
        if self.teacher is not None:
            state_dict = {**state_dict, **{f"teacher.{k}": v for k, v in self.teacher.state_dict().items()}}
        return super().load_state_dict(state_dict, strict=strict, **kwargs)

    def generator(self, step: int) -> torch.Generator:
        """The random source of training step ``step`` (depends on seed and step only)."""
        return seeded_generator(self.tcfg.seed * 1_000_003 + int(step), self.device)

    def conditions(self, batch: dict, g: torch.Generator) -> dict:
        """Denoiser keyword arguments for a batch: the context input (normalised context latents, and
        the context chroma for a ``context_chroma`` model), per-sample CLAP choice (audio with
        probability p_audio, else text) and independent drop masks [B] (bool; a dropped context drops
        its chroma too)."""
        b = batch["target"].shape[0]
        r = torch.rand(3, b, generator=g, device=self.device)
        use_audio = r[0] < self.tcfg.p_audio
        clap = torch.where(use_audio[:, None], batch["clap_audio"], batch["clap_text"])
        chroma = batch.get("context_chroma") if self.model.config.context_chroma else None
        return {"context": self.model.context_input(batch["context"], chroma), "clap": clap,
                "drop_context": r[1] < self.tcfg.p_drop_context, "drop_clap": r[2] < self.tcfg.p_drop_clap}

    def loss(self, batch: dict, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-sample losses [B] and their noise levels [B] for training step ``step``."""
        g = self.generator(step)
        x0 = self.model.normalize(batch["target"])
        cond = self.conditions(batch, g)
        if self.run_config.model.mode == "edm" and self._critic:
            denoised, sigma = edm_training_estimate(self.model.denoiser, x0, cond, generator=g)
            mse = edm_weighted_mse(denoised, x0, sigma, self.model.denoiser.sigma_data)
            critic = self._critic[0].to(x0.device)
            pitch = pitch_class_loss(critic, self.model.denormalize(denoised), batch["target"],
                                     self.tcfg.pitch_loss_window)
            self.last_terms = {"mse_loss": mse.float().mean().detach(), "pitch_loss": pitch.float().mean().detach()}
            return mse + self.tcfg.pitch_loss_weight * pitch, sigma
        if self.run_config.model.mode == "edm":
            return edm_loss(self.model.denoiser, x0, cond, generator=g)
        teacher = self.guided_teacher or (self.teacher.denoiser if self.teacher is not None else None)
        return consistency_loss(self.model.denoiser, x0, step, self.ct_config, cond, g, teacher)

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        per_sample, sigma = self.loss(batch, int(self.global_step))
        per_sample = per_sample.float()
        loss = per_sample.mean()
        self.log("loss", loss, on_step=True, on_epoch=False, prog_bar=True)
        for name, value in self.last_terms.items():  # the loss's parts, when it has several
            self.log(name, value, on_step=True, on_epoch=False)
        band = torch.bucketize(sigma.float(), torch.tensor(self.band_edges, device=sigma.device))
        for k in range(len(self.band_edges) + 1):
            sel = band == k
            if bool(sel.any()):
                self.log(f"loss_band{k}", per_sample[sel].mean().detach(), on_step=True, on_epoch=False)
        return loss

    def on_train_batch_end(self, outputs, batch, batch_idx) -> None:
        self.ema.update(self.model)

    def on_train_epoch_start(self) -> None:
        loader = self.trainer.train_dataloader
        ds = getattr(loader, "dataset", None)
        if hasattr(ds, "set_epoch"):
            ds.set_epoch(self.current_epoch)

    def configure_optimizers(self):
        t = self.tcfg
        return adamw_with_schedule(self.model, t.lr, t.total_steps, min(t.warmup_steps, t.total_steps // 10 or 1),
                                   t.betas, t.weight_decay, t.min_lr_ratio)

    def export(self, path: str | Path, extra: dict | None = None) -> Path:
        """The EMA weights as a fp16 ``latent-diffusion`` checkpoint."""
        return self.ema.module.save(path, fp16=True, extra={"step": int(self.global_step), **(extra or {})})


def measure_normalisation(dataset: LatentCacheDataset, how: str) -> tuple[tuple[float, ...], tuple[float, ...], float]:
    """(latent_mean, latent_std, sigma_data): the cache's target statistics (global: one value each;
    channel: 64 each, std floored at 10 % of the global std so that near-constant channels are not
    blown up) and the element std of the normalised full-length target latents."""
    stats = dataset.manifest["stats"]
    if how == "global":
        mean, std = (float(stats["mean"]),), (max(float(stats["std"]), 1e-6),)
    else:
        floor = 0.1 * float(stats["std"])
        mean = tuple(float(v) for v in stats["channel_mean"])
        std = tuple(max(float(v), floor, 1e-6) for v in stats["channel_std"])
    m = torch.tensor(mean).reshape(1, -1, 1)
    s = torch.tensor(std).reshape(1, -1, 1)
    target = dataset.tensors["target"]
    sigma_data = measure_sigma_data((target[i:i + 256].float() - m) / s for i in range(0, target.shape[0], 256))
    return mean, std, float(sigma_data)


def load_run_config(path: str | Path | None) -> DiffusionRunConfig:
    """A ``{"model": {...}, "train": {...}}`` JSON file (or the defaults when None)."""
    return DiffusionRunConfig() if path is None else load_config_file(DiffusionRunConfig, path)


# ----------------------------------------------------------------------------------------------- CLI
def _overrides(cfg: DiffusionRunConfig, args: Namespace) -> DiffusionRunConfig:
    t = {k: v for k, v in {"batch_size": args.batch_size, "lr": args.lr, "seed": args.seed,
                           "normalization": args.norm, "checkpoint_every": args.checkpoint_every,
                           "precision": args.precision, "total_steps": args.total_steps,
                           "p_drop_context": args.p_drop_context, "p_drop_clap": args.p_drop_clap,
                           "distill_guidance": tuple(args.distill_guidance) if args.distill_guidance else None,
                           "pitch_loss_weight": getattr(args, "pitch_loss", None),
                           }.items() if v is not None}
    if "total_steps" not in t and args.max_steps:
        t["total_steps"] = int(args.max_steps)
    m = {k: v for k, v in {"mode": args.mode, "train_frames": args.train_frames, "p_mean": args.p_mean,
                           "p_std": args.p_std, "context_chroma": getattr(args, "context_chroma", None),
                           }.items() if v is not None}
    if args.teacher:
        m["mode"] = "consistency"
    elif args.distill_guidance:
        raise ConfigError("--distill-guidance needs --teacher (it sets the teacher step's guidance)")
    try:
        return DiffusionRunConfig(model=dataclasses.replace(cfg.model, **m), train=dataclasses.replace(cfg.train, **t))
    except (TypeError, ValueError) as exc:
        raise ConfigError(str(exc)) from None


def prepare_run(args: Namespace) -> tuple[DiffusionRunConfig, LatentCacheDataset, LatentDiffusion | None,
                                          LatentDiffusion | None]:
    """Resolve the run config (a resumed run keeps its stored one), open the cache, load the teacher.

    Returns ``(config, dataset, teacher, start)``: ``start`` is the model whose weights a new run
    begins from (the ``--init`` checkpoint, else the teacher when distilling, else None). With both,
    a distillation continues from an earlier student, of any architecture: the normalisation must match."""
    run_dir = Path(args.out)
    stored = run_dir / "run_config.json"
    teacher = LatentDiffusion.load(args.teacher) if args.teacher else None
    if args.resume and stored.is_file():
        cfg = load_run_config(stored)  # schedules and measured statistics stay as stored
        ds = LatentCacheDataset(args.cache, cfg.model.train_frames, seed=cfg.train.seed)
        check_cache_has_chroma(cfg.model, ds, args.cache)
        return cfg, ds, teacher, None
    cfg = _overrides(load_run_config(args.config), args)
    ds = LatentCacheDataset(args.cache, None, seed=cfg.train.seed)
    man = ds.manifest
    frames = min(cfg.model.train_frames, ds.frames)
    start = LatentDiffusion.load(args.init) if args.init else teacher
    if teacher is not None:
        check_model_fits_cache(teacher.config, man, "--teacher")
    if args.init_new_latents:
        if not args.init:
            raise ConfigError("--init-new-latents needs --init (the model trained on the other latents)")
        if int(man["latent_channels"]) != start.config.latent_channels:
            raise ConfigError(f"--init has {start.config.latent_channels} latent channels, the cache "
                              f"{man['latent_channels']}")
        if teacher is not None:  # a student takes its teacher's normalisation
            mean, std, sigma_data = teacher.config.latent_mean, teacher.config.latent_std, teacher.config.sigma_data
        else:
            mean, std, sigma_data = measure_normalisation(ds, cfg.train.normalization)
        moved = LatentDiffusion(dataclasses.replace(start.config, latent_mean=mean, latent_std=std,
                                                    sigma_data=round(sigma_data, 5), codec_id=man.get("codec_id", "")))
        moved.load_state_dict(start.state_dict())  # the network's weights; normalisation buffers from the new config
        start = moved
    if args.init:
        check_model_fits_cache(start.config, man, "--init")
    if args.grow_depth is not None:
        if not args.init:
            raise ConfigError("--grow-depth needs --init (the trained DiT to deepen)")
        start = grow_depth(start, args.grow_depth)
    if getattr(args, "context_chroma", None) and start is not None and not start.config.context_chroma:
        if not args.init:
            raise ConfigError("--context-chroma: the --teacher takes no context chroma, so its student cannot")
        start = add_context_chroma(start)
    if teacher is not None and args.init:
        # the student may have another architecture (e.g. a 6-block student of a 10-block teacher: the
        # teacher is only called as a denoiser), but it must work in the teacher's normalised latent space
        # and take the teacher's conditions
        same = ("latent_mean", "latent_std", "sigma_data", "latent_channels", "clap_dim", "context_chroma")
        bad = [k for k in same if getattr(teacher.config, k) != getattr(start.config, k)]
        if bad:
            raise ConfigError(f"--init and --teacher differ in {', '.join(bad)}")
    if start is not None:
        # only a guided teacher bakes guidance in: training on data (EDM or iCT) learns the unguided model
        distilled = tuple(cfg.train.distill_guidance) if teacher is not None else (1.0, 1.0)
        noise = {k: getattr(cfg.model, k) for k in ("p_mean", "p_std") if getattr(args, k, None) is not None}
        model = dataclasses.replace(start.config, mode="consistency" if teacher is not None else cfg.model.mode,
                                    train_frames=frames, distilled_guidance=distilled, **noise)
    else:
        mean, std, sigma_data = measure_normalisation(ds, cfg.train.normalization)
        net_config = {k: v for k, v in cfg.model.net_config.items() if k not in _SIZED_BY_DATA}
        model = dataclasses.replace(cfg.model, net_config=net_config, latent_mean=mean, latent_std=std, sigma_data=round(sigma_data, 5),
                                    clap_dim=ds.clap_dim, latent_channels=int(man["latent_channels"]),
                                    codec_id=man.get("codec_id", ""), clap_id=man.get("clap_id", ""),
                                    train_frames=frames)
    check_cache_has_chroma(model, ds, args.cache)
    cfg = DiffusionRunConfig(model=model, train=cfg.train)
    run_dir.mkdir(parents=True, exist_ok=True)
    write_json_atomic(stored, config_to_dict(cfg))
    ds.train_frames = frames
    return cfg, ds, teacher, start


def grow_depth(model: LatentDiffusion, depth: int) -> LatentDiffusion:
    """``model`` (a DiT) deepened to ``depth`` blocks with the same output (:mod:`diffariff.nets.grow`)."""
    if model.config.net != "dit":
        raise ConfigError(f"--grow-depth applies to a DiT, the --init model is a '{model.config.net}'")
    old = int(model.config.net_config["depth"])
    state = grow_dit_state(model.state_dict(), old, int(depth))
    grown = LatentDiffusion(dataclasses.replace(model.config, net_config={**model.config.net_config, "depth": int(depth)}))
    grown.load_state_dict(state)
    return grown


def add_context_chroma(model: LatentDiffusion) -> LatentDiffusion:
    """``model`` with the context chroma added to its context input (``context_chroma``), computing the
    same function: the new inputs have zero weights (:func:`diffariff.nets.grow.widen_context_state`)."""
    cfg = dataclasses.replace(model.config, context_chroma=True)
    wide = LatentDiffusion(cfg)
    wide.load_state_dict(widen_context_state(model.state_dict(), cfg.latent_channels, model.config.context_channels,
                                             cfg.context_channels))
    return wide


def check_cache_has_chroma(model: LatentDiffusionConfig, ds: LatentCacheDataset, caches) -> None:
    """ConfigError (one line, before any training) when ``model`` takes the context chroma and the
    cache(s) ``caches`` read as ``ds`` do not all store it."""
    if model.context_chroma and not ds.has_context_chroma:
        names = [str(c) for c in caches] if isinstance(caches, (list, tuple)) else [str(caches)]
        which = f"the cache {names[0]} stores none" if len(names) == 1 else \
            f"not every cache of {' '.join(names)} stores it"
        raise ConfigError(f"the model takes the context chroma (--context-chroma), but {which} (built before it "
                          "existed or with --no-context-chroma); rebuild it with `diffariff latents build`")


def run(args: Namespace) -> int:
    setup_cpu()
    cfg, ds, teacher, start = prepare_run(args)
    t = cfg.train
    L.seed_everything(t.seed, workers=True, verbose=False)
    run_dir = Path(args.out)
    critic = load_pitch_critic(args.pitch_critic) if getattr(args, "pitch_critic", None) else None
    if critic is not None and cfg.train.pitch_loss_weight == 0:
        raise ConfigError("--pitch-critic is read only with --pitch-loss W > 0")
    module = DiffusionModule(cfg, teacher, critic)
    if start is not None and not (args.resume and (run_dir / "last.ckpt").is_file()):
        module.model.load_state_dict(start.state_dict())  # distillation / warm start from these weights
        module.ema.module.load_state_dict(start.state_dict())
    if len(ds) < 1:
        raise InputError(f"{' '.join(args.cache)}: the latent cache is empty")
    loader = torch.utils.data.DataLoader(ds, batch_size=min(t.batch_size, len(ds)), shuffle=True, drop_last=True,
                                         generator=torch.Generator().manual_seed(t.seed), num_workers=0)
    metrics = CSVMetrics(run_dir / "metrics.csv", every=t.log_every)
    trainer = build_trainer(run_dir, max_steps=args.max_steps or t.total_steps,
                            max_minutes=args.max_minutes, precision=t.precision,
                            checkpoint_every=t.checkpoint_every, callbacks=[metrics], grad_clip=t.grad_clip)
    fit(trainer, module, loader, run_dir, args.resume)
    out = Path(args.export) if args.export else run_dir / "diffusion_ema.safetensors"
    module.export(out)
    rates = [r["samples_per_s"] for r in metrics.rows if "samples_per_s" in r]
    summary = {"mode": cfg.model.mode, "steps": int(module.global_step), "export": str(out),
               "sigma_data": cfg.model.sigma_data, "parameters": module.model.num_parameters(),
               "last_loss": next((r["loss"] for r in reversed(metrics.rows) if "loss" in r), None),
               "samples_per_s": round(sum(rates) / len(rates), 3) if rates else None}
    print(json.dumps(summary), flush=True)
    print(f"exported EMA weights to {out}", file=sys.stderr)
    return 0
