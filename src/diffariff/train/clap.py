"""``diffariff train clap``: contrastive training of the built-in CLAP on the synthetic corpus.

A run folder holds everything: ``run_config.json`` (model + training recipe), Lightning checkpoints
in ``checkpoints/`` (``last.ckpt``, also written when the run ends, resumes a killed or finished run:
running the same command again continues; Trainer and resume from :mod:`diffariff.train.common`),
CSV logs, the exported ``clap.safetensors`` (EMA weights when enabled) and ``eval.json`` (zero-shot
results on the evaluation split). Heavy imports happen inside :func:`run` so ``diffariff --help``
stays fast.
"""

from __future__ import annotations

import sys
from argparse import Namespace
from pathlib import Path


def _overrides(args: Namespace) -> dict:
    mapping = {
        "max_steps": args.max_steps, "batch_size": args.batch_size, "lr": args.lr,
        "ema_decay": args.ema_decay, "precision": args.precision, "num_workers": args.num_workers,
        "seed": args.seed,
    }
    return {k: v for k, v in mapping.items() if v is not None}


def resolve_run_config(args: Namespace, run_dir: Path):
    """The run config: the run folder's own (resume) or ``--config`` or the defaults, then the
    command-line overrides; written back to ``run_dir/run_config.json``."""
    import dataclasses
    import json

    from ..checkpoint import config_from_dict, config_to_dict, load_config_file
    from ..errors import ConfigError
    from ..fsutil import write_json_atomic
    from .clap_module import ClapRunConfig

    saved = run_dir / "run_config.json"
    if saved.is_file():
        config = load_config_file(ClapRunConfig, saved)
        if args.config:
            given = load_config_file(ClapRunConfig, args.config)
            if given.model != dataclasses.replace(config.model, text_package_version=given.model.text_package_version):
                raise ConfigError(f"{run_dir} holds a run with another model config; use a new --out folder")
    elif args.config:
        config = load_config_file(ClapRunConfig, args.config)
    else:
        config = ClapRunConfig()
    data = config_to_dict(config)
    data["train"].update(_overrides(args))
    config = config_from_dict(ClapRunConfig, json.loads(json.dumps(data)))
    write_json_atomic(saved, config_to_dict(config))
    return config


def run(args: Namespace) -> int:
    """Train (or resume), export ``clap.safetensors`` and evaluate. Returns the exit code."""
    import lightning as L
    from torch.utils.data import DataLoader

    from ..clap.corpus import scan_songs
    from ..clap.evaluate import evaluate_clap, format_clap_report
    from ..clap.text_tower import FrozenTextEncoder
    from ..errors import DatasetError
    from ..fsutil import write_json_atomic
    from ..torchutil import setup_cpu
    from .clap_module import ClapCorpusDataset, ClapLightning, PromptBank
    from .common import build_trainer, cluster_trainer_kwargs, fit

    setup_cpu()
    run_dir = Path(args.out)
    run_dir.mkdir(parents=True, exist_ok=True)
    config = resolve_run_config(args, run_dir)
    cfg = config.train
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    progress = sys.stderr.isatty()

    songs = scan_songs(args.corpus, "train")
    if args.limit_songs:
        songs = songs[: args.limit_songs]
    try:
        valid = scan_songs(args.corpus, "valid")
    except DatasetError:
        valid = []
    bank, labels = PromptBank(), {}
    train_ds = ClapCorpusDataset(songs, config.model, cfg, bank, labels, cfg.max_steps * cfg.batch_size,
                                 cfg.seed, progress=progress)
    val_ds = None
    if valid and cfg.val_samples >= cfg.batch_size:
        val_ds = ClapCorpusDataset(valid, config.model, cfg, bank, labels, cfg.val_samples, cfg.seed + 1)
    features = bank.compute(FrozenTextEncoder(config.model.text_package, cache_size=0), progress=progress)
    print(f"clap: {len(songs)} training songs, {len(train_ds.stem_items)} stems, {len(bank.texts)} distinct "
          f"prompts, {len(labels)} labels", file=sys.stderr)

    module = ClapLightning(config, features)
    module.train_dataset = train_ds
    loader_kw = {"batch_size": cfg.batch_size, "num_workers": cfg.num_workers, "drop_last": True,
                 "persistent_workers": cfg.num_workers > 0}
    train_loader = DataLoader(train_ds, shuffle=False, **loader_kw)
    val_loader = DataLoader(val_ds, shuffle=False, **loader_kw) if val_ds is not None else None
    ckpt_dir = run_dir / "checkpoints"
    trainer = build_trainer(
        run_dir, max_steps=cfg.max_steps, precision=cfg.precision, checkpoint_every=cfg.checkpoint_every,
        grad_clip=cfg.grad_clip or None, progress=progress, checkpoint_dir=ckpt_dir, keep_checkpoints=1,
        val_check_interval=min(cfg.val_every, cfg.max_steps) if val_loader is not None else None,
        check_val_every_n_epoch=None, limit_val_batches=1.0 if val_loader else 0, enable_model_summary=True,
        deterministic=False, **cluster_trainer_kwargs(args, run_dir, cfg.max_steps),
    )
    fit(trainer, module, train_loader, ckpt_dir, resume=True, val_loader=val_loader)  # resumes when last.ckpt exists
    if trainer.global_rank != 0:
        return 0
    model = module.export_model()
    speed = getattr(module, "throughput", {})
    out = model.save(run_dir / "clap.safetensors", extra={"step": int(trainer.global_step),
                                                          "corpus": str(args.corpus), "songs": len(songs),
                                                          "throughput": speed})
    print(f"clap: exported {out} (step {trainer.global_step}; this session {speed.get('steps', 0)} steps, "
          f"{speed.get('clips_per_second', 0.0)} clips/s)", file=sys.stderr)
    if args.eval_split and args.eval_split != "none":
        try:
            result = evaluate_clap(model, args.corpus, args.eval_split, progress=progress)
        except DatasetError as exc:
            print(f"clap: no evaluation ({exc})", file=sys.stderr)
        else:
            write_json_atomic(run_dir / "eval.json", result)
            print(format_clap_report(result))
    return 0
