"""Training utilities shared by every trainer (codec, CLAP, bridge, diffusion):

* :func:`ema_decay` / :func:`ema_update_` - the one definition of the EMA step: the decay warm-up
  decay_n = min(decay, (1 + n) / (10 + n)), and the update of an average from a module of the same
  structure (trainers whose checkpoints hold a plain EMA copy of their model use these directly; an
  average without warm-up, like the codec's consistency teacher, calls ``ema_update_`` with its decay);
* :class:`EMA` - an EMA copy of a module as a submodule with its own update counter, so its weights
  travel in Lightning checkpoints (keys ``<name>.module.*`` and ``<name>.num_updates``);
* :func:`lr_factor` / :func:`adamw_with_schedule` - AdamW with linear warm-up then cosine decay to
  ``min_ratio`` (0 = to zero), stepped per optimiser step;
* :class:`CSVMetrics` - a Lightning callback writing the logged step metrics to ``metrics.csv`` (resumable);
  :func:`write_rows_csv` - the atomic CSV writer behind it, for trainers that log rows of their own;
* :func:`build_trainer` / :func:`fit` - a Lightning Trainer (CPU; precision ``"auto"`` by default: bf16-mixed
  where the CPU has native bf16, else fp32; ``max_time`` in minutes, ``last.ckpt`` every K steps in the run folder or a checkpoint folder) and resuming from it;
* :func:`session_throughput` - steps and seconds of the current ``fit`` call (a resumed run counts its own).
"""

from __future__ import annotations

import copy
import csv
import io
import math
import sys
import time
import warnings
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.utilities.exceptions import SIGTERMException
from torch import nn

from ..errors import ConfigError
from ..fsutil import write_text_atomic
from ..torchutil import resolve_precision

LAST = "last.ckpt"


def ema_decay(decay: float, n: int) -> float:
    """Warmed-up EMA decay at update ``n``: ``min(decay, (1 + n) / (10 + n))``, so early averages are
    not dominated by the random initialisation."""
    return min(decay, (1 + n) / (10 + n))


@torch.no_grad()
def ema_update_(average: nn.Module, model: nn.Module, decay: float) -> None:
    """In place: every parameter of ``average`` <- ``decay * average + (1 - decay) * model`` (in the
    average's dtype), and its buffers <- ``model``'s. Both modules must have the same structure."""
    avg_p = list(average.parameters())
    cur_p = [p.detach().to(a.dtype) for p, a in zip(model.parameters(), avg_p)]
    if avg_p:
        torch._foreach_lerp_(avg_p, cur_p, 1.0 - decay)
    for b_avg, b in zip(average.buffers(), model.buffers()):
        b_avg.copy_(b)


class EMA(nn.Module):
    """EMA copy of ``model`` (``self.module``, frozen, eval mode). Call :meth:`update` after each
    optimiser step. The decay is :func:`ema_decay` of n, the number of updates so far."""

    def __init__(self, model: nn.Module, decay: float = 0.999):
        super().__init__()
        if not 0.0 <= decay < 1.0:
            raise ConfigError(f"EMA decay must be in [0, 1), got {decay}")
        self.decay = float(decay)
        self.module = copy.deepcopy(model).requires_grad_(False).eval()
        self.register_buffer("num_updates", torch.tensor(0, dtype=torch.long))

    def current_decay(self) -> float:
        return ema_decay(self.decay, int(self.num_updates))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        ema_update_(self.module, model, self.current_decay())
        self.num_updates += 1

    def train(self, mode: bool = True) -> EMA:  # the average always stays in eval mode
        super().train(mode)
        self.module.eval()
        return self


def lr_factor(step: int, warmup: int, total: int, min_ratio: float = 0.0) -> float:
    """Learning-rate multiplier at optimiser step ``step``: linear warm-up over ``warmup`` steps
    ((step + 1) / warmup), then cosine from 1 to ``min_ratio`` at ``total`` steps (flat after)."""
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    prog = min(1.0, (step - warmup) / max(1, total - warmup))
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * prog))


def adamw_with_schedule(
    module: nn.Module, lr: float, total_steps: int, warmup_steps: int = 1000, betas: tuple[float, float] = (0.9, 0.999),
    weight_decay: float = 0.01, min_ratio: float = 0.0, split_decay: bool = True,
    extra_groups: Sequence[dict] = (),
) -> dict:
    """``configure_optimizers`` result: AdamW over the trainable parameters of ``module`` with
    :func:`lr_factor` stepped per step. ``split_decay``: two parameter groups, no weight decay on
    biases, norms and other 0-/1-D parameters; else one group, ``weight_decay`` on everything.
    ``extra_groups``: further AdamW parameter groups (each a dict with ``params`` and its own ``lr`` /
    ``weight_decay``), on the same schedule."""
    if lr <= 0 or total_steps < 1 or warmup_steps < 0:
        raise ConfigError(f"need lr > 0, total_steps >= 1, warmup_steps >= 0; got {lr}, {total_steps}, {warmup_steps}")
    params = [p for p in module.parameters() if p.requires_grad]
    if split_decay:
        groups = [{"params": [p for p in params if p.ndim >= 2], "weight_decay": weight_decay},
                  {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0}]
    else:
        groups = [{"params": params, "weight_decay": weight_decay}]
    groups += [{**g, "params": list(g["params"])} for g in extra_groups]
    opt = torch.optim.AdamW([g for g in groups if g["params"]], lr=lr, betas=tuple(betas))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, warmup_steps, total_steps, min_ratio))
    return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


class CSVMetrics(L.Callback):
    """Every ``every`` optimiser steps, append a row to ``path``: step, epoch, lr, seconds since the
    start, ``samples_per_s`` (batch items per second since the previous row) and every float metric
    logged with ``self.log(..., on_step=True)``. Rows are kept in the Lightning checkpoint; on resume
    the file is rewritten (atomically) from them, so it never holds steps the run lost. A new column
    triggers an atomic rewrite with the widened header."""

    def __init__(self, path: str | Path, every: int = 10):
        if every < 1:
            raise ConfigError(f"metrics interval must be >= 1 step, got {every}")
        self.path = Path(path)
        self.every = int(every)
        self.rows: list[dict] = []
        self.columns: list[str] = []
        self._t0 = time.monotonic()
        self._last: tuple[float, int] | None = None
        self._items = 0

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self._items += _batch_len(batch)
        step = int(trainer.global_step)
        if step % self.every:
            return
        now = time.monotonic()
        row: dict = {"step": step, "epoch": int(trainer.current_epoch)}
        if trainer.optimizers:
            row["lr"] = float(trainer.optimizers[0].param_groups[0]["lr"])
        row["seconds"] = round(now - self._t0, 2)
        if self._last is not None and now > self._last[0]:
            row["samples_per_s"] = round(self._items / (now - self._last[0]), 3)
        self._last, self._items = (now, step), 0
        for key, value in trainer.callback_metrics.items():
            if key.endswith("_epoch"):
                continue
            v = float(value)
            if math.isfinite(v):
                row[key.removesuffix("_step")] = v
        self.append(row)

    def append(self, row: dict) -> None:
        self.rows.append(row)
        new = [k for k in row if k not in self.columns]
        if new or not self.path.is_file():
            self.columns += new
            self._rewrite()
            return
        with self.path.open("a", encoding="utf-8", newline="") as f:
            csv.DictWriter(f, fieldnames=self.columns).writerow(row)

    def _rewrite(self) -> None:
        write_rows_csv(self.path, self.rows, self.columns)

    def state_dict(self) -> dict:
        return {"rows": self.rows, "columns": self.columns}

    def load_state_dict(self, state: dict) -> None:
        self.rows = list(state.get("rows", []))
        self.columns = list(state.get("columns", []))
        self._rewrite()


def write_rows_csv(path: str | Path, rows: list[dict], columns: list[str] | None = None) -> None:
    """Write ``rows`` (dicts) to the CSV file ``path`` atomically: header ``columns`` (default: every
    key of the rows, in first-seen order), an empty cell where a row lacks a column."""
    if columns is None:
        columns = list(dict.fromkeys(k for r in rows for k in r))
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=columns)
    w.writeheader()
    w.writerows(rows)
    write_text_atomic(path, buf.getvalue())


def _batch_len(batch) -> int:
    if isinstance(batch, torch.Tensor):
        return int(batch.shape[0])
    if isinstance(batch, dict):
        batch = next(iter(batch.values()), None)
        return _batch_len(batch) if batch is not None else 0
    if isinstance(batch, list | tuple) and batch:
        return _batch_len(batch[0])
    return 0


def build_trainer(
    run_dir: str | Path, *, max_steps: int | None = None, max_minutes: float | None = None,
    precision: str = "auto", checkpoint_every: int = 500, callbacks: list | None = None,
    grad_clip: float | None = 1.0, progress: bool | None = None, checkpoint_dir: str | Path | None = None,
    keep_checkpoints: int = 0, **trainer_kwargs,
) -> L.Trainer:
    """A CPU Lightning Trainer that saves ``last.ckpt`` every ``checkpoint_every`` steps in
    ``checkpoint_dir`` (default ``run_dir``), plus the ``keep_checkpoints`` latest step checkpoints.

    Stops at ``max_steps`` or after ``max_minutes`` (whichever first; at least one must be given).
    ``progress`` None: a bar only on a terminal. Extra keyword arguments go to ``L.Trainer`` and win
    over the defaults (e.g. ``accelerator``, ``devices``, ``strategy``, ``logger`` on a cluster)."""
    if not max_steps and not max_minutes:
        raise ConfigError("give --max-steps or --max-minutes")
    if checkpoint_every < 1:
        raise ConfigError(f"checkpoint interval must be >= 1 step, got {checkpoint_every}")
    run = Path(run_dir)
    run.mkdir(parents=True, exist_ok=True)
    ckpt = L.pytorch.callbacks.ModelCheckpoint(dirpath=Path(checkpoint_dir or run), save_last=True,
                                               save_top_k=int(keep_checkpoints),
                                               every_n_train_steps=int(checkpoint_every))
    kwargs = dict(accelerator="cpu", devices=1, precision=resolve_precision(precision), logger=False,
                  callbacks=[ckpt, *(callbacks or [])], max_steps=int(max_steps) if max_steps else -1,
                  max_time=timedelta(minutes=float(max_minutes)) if max_minutes else None,
                  enable_progress_bar=sys.stderr.isatty() if progress is None else progress,
                  enable_model_summary=False, num_sanity_val_steps=0, log_every_n_steps=1,
                  gradient_clip_val=grad_clip, max_epochs=-1)
    kwargs.update(trainer_kwargs)
    return L.Trainer(**kwargs)


def cluster_trainer_kwargs(args, run_dir: str | Path, max_steps: int) -> dict:
    """:func:`build_trainer` keyword arguments of the commands with the flags ``--accelerator``,
    ``--devices``, ``--num-nodes`` and ``--strategy`` (``args``): those flags, Lightning's CSV logs in
    ``run_dir/logs/version_N/metrics.csv`` (a row every min(10, ``max_steps``) steps) and ``run_dir``
    as Lightning's default root folder."""
    from lightning.pytorch.loggers import CSVLogger

    return dict(accelerator=args.accelerator, devices=args.devices, num_nodes=args.num_nodes, strategy=args.strategy,
                logger=CSVLogger(str(run_dir), name="logs", flush_logs_every_n_steps=50),
                default_root_dir=str(run_dir), log_every_n_steps=min(10, int(max_steps)))


def resume_path(run_dir: str | Path, resume: bool) -> Path | None:
    """``run_dir/last.ckpt`` when ``resume`` and it exists, else None."""
    p = Path(run_dir) / LAST
    return p if resume and p.is_file() else None


#: Lightning warnings that every diffariff trainer triggers on purpose (regular expressions of the message):
#: a resumed run writes into its own non-empty folder, step-based runs over endless loaders stop mid-epoch,
#: EMA copies and distillation teachers stay in eval mode, and Lightning's use of a torch API that torch
#: 2.13 deprecates.
EXPECTED_LIGHTNING_NOTICES = (
    r"Checkpoint directory .* exists and is not empty",
    r"You're resuming from a checkpoint that ended before the epoch ended",
    r"Found \d+ module\(s\) in eval mode",
    r"`isinstance\(treespec, LeafSpec\)` is deprecated",
)


def fit(trainer: L.Trainer, module: L.LightningModule, loader, run_dir: str | Path, resume: bool,
        val_loader=None) -> None:
    """``trainer.fit`` (resuming from ``run_dir/last.ckpt`` when asked and present; pass the checkpoint
    folder as ``run_dir`` when it is another one), then save ``last.ckpt`` so a run stopped by
    ``max_time``, ``max_steps`` or SIGTERM (``kill PID``) continues exactly from where it ended.

    Lightning turns SIGTERM into a ``SystemExit`` subclass; here it ends the fit like a time limit,
    so the caller still exports its weights. Lightning's notices that do not apply to diffariff's trainers
    (:data:`EXPECTED_LIGHTNING_NOTICES`) are not shown."""
    ckpt = resume_path(run_dir, resume)
    try:
        with warnings.catch_warnings():
            for message in EXPECTED_LIGHTNING_NOTICES:
                warnings.filterwarnings("ignore", message=message)
            trainer.fit(module, loader, val_loader, ckpt_path=str(ckpt) if ckpt else None)
    except SIGTERMException:
        print(f"stopped by SIGTERM at step {trainer.global_step}; saving {LAST}", file=sys.stderr)
    trainer.save_checkpoint(str(Path(run_dir) / LAST))


def session_throughput(start: tuple[float, int] | None, step: int) -> tuple[int, float]:
    """(optimiser steps, seconds) since ``start`` = (``time.perf_counter()``, global step) was taken
    in ``on_train_start``; a module that never started counts (0, ~0)."""
    t0, step0 = start if start is not None else (time.perf_counter(), int(step))
    return int(step) - step0, max(time.perf_counter() - t0, 1e-9)
