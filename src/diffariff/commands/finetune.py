"""``diffariff finetune DATA --out BUNDLE``: a bundle adapted to a folder of multitrack songs, in one command.

The library logic is :func:`diffariff.train.finetune.finetune` (imported only when the command runs,
so that ``--help`` stays fast).
"""

from __future__ import annotations

import argparse
import sys

from .options import cli_warnings

EXAMPLES = """examples:
  diffariff finetune my_songs/ --out my_bundle --minutes 30        # then: generate ... --bundle my_bundle
  diffariff finetune my_songs/ --out my_lora --method lora --lora-rank 8 --steps 2000
  diffariff finetune musdb18hq/ --out b2 --from my_bundle --device cuda --devices 4 --strategy ddp
  diffariff finetune data/ --out b3 --device cpu --devices 2 --strategy ddp --steps 200   # 2 CPU processes

DATA: songs as ROOT/<song>/<stem>.wav|flac|ogg|mp3 (mixture.* skipped), a diffariff corpus, MUSDB18-HQ,
Slakh2100, MoisesDB or MedleyDB. Interrupted? Run the same command again: it resumes.
"""


def _devices(text: str) -> int | str:
    if text == "auto":
        return text
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number or 'auto', got {text!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {n}")
    return n


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "finetune", help="adapt a bundle's latent model to your own stems (one command, resumable)",
        description="Survey DATA, hold out a few songs, encode training pairs with the source bundle's codec "
                    "and CLAP, fine-tune its EDM model (all weights or low-rank adapters), score the held-out "
                    "songs before and after, and write a complete bundle at --out.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("data", metavar="DATA", help="dataset folder of multitrack songs")
    p.add_argument("--out", required=True, help="bundle folder to write (refused if it is the source bundle)")
    p.add_argument("--from", dest="source", default="default", metavar="BUNDLE",
                   help="bundle to start from: 'default' (shipped) or a bundle folder")
    length = p.add_mutually_exclusive_group()
    length.add_argument("--minutes", type=float, help="train for this many minutes (default 30)")
    length.add_argument("--steps", type=int, help="train for this many optimiser steps")
    p.add_argument("--method", choices=("full", "lora"), default="full",
                   help="full: every weight; lora: low-rank adapters on attention and MLP layers, merged on export")
    p.add_argument("--lora-rank", type=int, default=8, help="adapter rank (default 8)")
    p.add_argument("--lora-alpha", type=float, help="adapter scale numerator (default: the rank, scale 1)")
    p.add_argument("--lr", type=float, help="peak learning rate (default 1e-4 full, 1e-3 lora)")
    p.add_argument("--batch-size", type=int, default=16, help="pairs per step per process (default 16)")
    p.add_argument("--holdout", type=int, default=2, help="songs held out for the before/after score (default 2)")
    p.add_argument("--holdout-pairs", type=int, default=32, help="held-out pairs scored (default 32)")
    p.add_argument("--eval-pairs", type=int, default=32,
                   help="held-out pairs generated with the source and the new bundle for the before / after "
                   "generation scores (KD, FAD, APA, rhythm and key fit; default 32; 0 skips)")
    p.add_argument("--pairs", type=int, help="training pairs to encode (default: 4 per window of audio, 64..20000)")
    p.add_argument("--prior-pairs", type=int, help="pairs of the training songs added to the bank of the context "
                   "prior (default: as many as --pairs, at most 2000; 0: keep the source's prior)")
    p.add_argument("--layout", default="auto", help="dataset layout (default: detect)")
    p.add_argument("--seed", type=int, default=0, help="seed of the hold-out draw, pairs and training (default 0)")
    d = p.add_argument_group("devices (Lightning)")
    d.add_argument("--device", choices=("auto", "cpu", "cuda", "mps"), default="auto",
                   help="accelerator; auto: cuda, else mps, else cpu")
    d.add_argument("--devices", type=_devices, default="auto", help="devices (processes) per node (default auto)")
    d.add_argument("--num-nodes", type=int, default=1, help="machines (default 1)")
    d.add_argument("--strategy", choices=("auto", "ddp", "fsdp"), default="auto",
                   help="distribution strategy (fsdp: CUDA only)")
    d.add_argument("--precision", default="auto",
                   help="Lightning precision, e.g. 32-true, bf16-mixed, 16-mixed (default auto: bf16/fp16 mixed on "
                        "GPUs, bf16-mixed on CPUs with native bf16, else 32-true)")
    d.add_argument("--workers", type=int, default=0, help="data loader worker processes (default 0)")
    p.add_argument("--work", help="work folder: caches and checkpoints (default .<OUT>.finetune beside --out)")
    p.add_argument("--keep-work", action="store_true", help="keep the work folder after success")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out bundle")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


@cli_warnings
def run(args: argparse.Namespace) -> int:
    from ..train.finetune import DeviceConfig, FinetuneConfig, finetune

    cfg = FinetuneConfig(method=args.method, lora_rank=args.lora_rank, lora_alpha=args.lora_alpha,
                         steps=args.steps, minutes=args.minutes, lr=args.lr, batch_size=args.batch_size,
                         holdout=args.holdout, holdout_pairs=args.holdout_pairs, pairs=args.pairs, seed=args.seed,
                         precision=args.precision, workers=args.workers, eval_pairs=args.eval_pairs,
                         prior_pairs=args.prior_pairs)
    devices = DeviceConfig(args.device, args.devices, args.num_nodes, args.strategy)
    summary = finetune(args.data, args.out, args.source, cfg, devices, layout=args.layout, work=args.work,
                       overwrite=args.overwrite, keep_work=args.keep_work,
                       progress=not args.quiet and sys.stderr.isatty(), log=lambda line: print(line, flush=True))
    if summary is None:  # a worker process of a distributed run: rank 0 reports
        return 0
    for line in report_lines(summary):
        print(line)
    return 0


def report_lines(summary: dict) -> list[str]:
    """The end-of-run report: steps and speed, the held-out table, the bundle written."""
    if summary.get("session_steps", 1) > 0:
        lines = [f"trained {summary['steps']} steps in {summary['seconds']:g} s ({summary['steps_per_s']:g} steps/s, "
                 f"{summary['processes']} process(es) on {summary['accelerator']}); last training loss "
                 f"{summary['last_loss'] if summary['last_loss'] is None else round(summary['last_loss'], 4)}"]
    else:  # a rerun whose training had already reached its length
        lines = [f"trained {summary['steps']} steps (all in an earlier run of this work folder)"]
    h = summary["heldout"]
    if h["before"]:
        lines.append(f"held-out denoising loss, {h['pairs']} pairs of {len(h['songs'])} songs "
                     "(EDM-weighted; 1.0 = a zero-output network; lower is better):")
        lines.append(f"  {'conditioning':<14}{'before':>9}{'after':>9}")
        for name, before in h["before"].items():
            lines.append(f"  {name:<14}{before:>9.4f}{h['after'][name]:>9.4f}")
    else:
        lines.append("no held-out songs (--holdout 0): nothing scored")
    p = summary.get("prior") or {}
    if p.get("refit"):
        lines.append(f"context prior: {p['added_rows']} pairs of the training songs added to the source's "
                     f"{p['source_rows']} bank rows")
    from ..eval.before_after import comparison_lines  # noqa: PLC0415  (keep `--help` fast)

    for key in ("generation", "generation_prior"):
        gen = summary.get(key)
        if not gen:
            continue
        lines.append(f"generated stems, {gen['pairs']} held-out pairs ({gen['setting']}, {gen['sampler']} "
                     f"{gen['steps']} steps; mean ± 95 % interval over {gen['batches']} batches; KD, FAD lower "
                     "is better, the rest higher):")
        lines += comparison_lines(gen, ("before", "after"))
    lines.append(f"bundle written to {summary['out']} (use it with --bundle {summary['out']})")
    return lines
