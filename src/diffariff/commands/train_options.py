"""The options of ``diffariff train MODEL``, one function per trainable model, and :data:`TRAINABLE`,
the table of the models.

Each ``<model>_arguments(parser)`` adds that model's options; the model's trainer,
``diffariff.train.<model>``, takes the parsed options in its ``run(args) -> int``. This module imports
argparse only, so that ``diffariff train -h`` and ``diffariff train MODEL -h`` load no trainer (and no
torch or Lightning).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

#: Stage-1 loss recipes of ``train codec --recipe``: the keys of ``diffariff.train.codec_train_config.RECIPES``, in
#: sorted order (named here so that the options need no torch; tests/train/test_codec_train.py checks them).
CODEC_RECIPES = ("complex", "magphase", "pitch")



def _device_arguments(parser: argparse.ArgumentParser) -> None:
    """Where a Lightning trainer runs: accelerator, devices, nodes, strategy (shared by several trainers)."""
    parser.add_argument("--accelerator", default="cpu", help="Lightning accelerator (default cpu)")
    parser.add_argument("--devices", default="auto", help="Lightning devices (default auto)")
    parser.add_argument("--num-nodes", type=int, default=1, help="Lightning nodes (default 1)")
    parser.add_argument("--strategy", default="auto", help="Lightning strategy, e.g. ddp (default auto)")

def codec_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``diffariff train codec``."""
    parser.add_argument("--data", nargs="+", required=True,
                        help="corpus folders (ROOT/<song>/<stem>.flac or another layout)")
    parser.add_argument("--real", nargs="*", default=[],
                        help="folders of plain mixtures (real recordings; diffariff.data.mixtures)")
    parser.add_argument("--out", default="runs/codec", help="run folder (checkpoints, metrics.csv, export)")
    parser.add_argument("--config", help="codec config JSON (configs/codec_small.json, configs/codec_paper.json); "
                        "with --init in stage 1, the config to train the initial weights in")
    parser.add_argument("--stage", type=int, choices=(1, 2), default=1, help="1: encoder + deterministic decoder; "
                        "2: consistency decoder on frozen latents")
    parser.add_argument("--init", help="an exported codec (.safetensors) to start from: required for stage 2 "
                        "(the stage-1 export); in stage 1 it continues training committed weights")
    parser.add_argument("--recipe", choices=CODEC_RECIPES, default="complex",
                        help="stage-1 loss recipe: complex (complex L1 + MR-STFT), magphase (magnitude and phase scored "
                        "apart + band energies: keeps level and spectral balance) or pitch (magphase + phase "
                        "differences across frames and bins + an 8192-point STFT term + semitone-band "
                        "energies: keeps the notes)")
    parser.add_argument("--freeze-encoder", action="store_true",
                        help="stage 1: train the decoder side only, so existing latents stay valid")
    parser.add_argument("--note-weight", type=float, default=0.0,
                        help="stage 1: weight of the latent note term (a linear read-out of each latent frame "
                        "predicts its semitone-band profile; puts the notes into the latents, changes the "
                        "latent space)")
    parser.add_argument("--note-lr-scale", type=float, default=10.0,
                        help="learning rate of the note term's read-out as a multiple of --lr (default 10)")
    parser.add_argument("--aux-weight", type=float, default=0.0,
                        help="stage 2: weight of a magnitude-only reconstruction term on the consistency "
                        "decoder's output (keeps its level while the consistency curriculum is young)")
    parser.add_argument("--sigma-max", type=float,
                        help="stage 2: the consistency decoder's largest noise level (default: the --init "
                        "codec's, 80; the residual's std is ~0.24, so 80 makes the CT chain span ~330 x sigma_data)")
    parser.add_argument("--energy-weight", type=float, default=0.0,
                        help="stage 2: weight of the energy score of two decodings of each clip (a proper "
                        "scoring rule: rewards samples of the right distribution, not its mean)")
    parser.add_argument("--align-phase", type=int, default=0, metavar="FRAMES",
                        help="stage 2: reconstruct the true spectrogram phase-aligned to the deterministic one "
                        "over FRAMES STFT frames (1: its magnitudes with the deterministic phase), not the raw "
                        "residual, whose phase the latent does not determine (default 0: off)")
    parser.add_argument("--max-minutes", type=float, help="stop after this many minutes")
    parser.add_argument("--max-steps", type=int, help="stop after this many optimiser steps")
    parser.add_argument("--total-steps", type=int, help="length of the LR schedule / CT curriculum "
                        "(default: --max-steps or 20000)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--crop-seconds", type=float, default=2.0)
    parser.add_argument("--lr", type=float, help="peak learning rate (default 3e-4 stage 1, 1e-4 stage 2)")
    parser.add_argument("--eval-every", type=int, default=250, help="held-out evaluation every N steps")
    parser.add_argument("--eval-seconds", type=float, default=3.0, help="length of each held-out clip")
    parser.add_argument("--resume", action="store_true", help="continue from RUN/last.ckpt")
    parser.add_argument("--export", help="where to write the EMA weights (default RUN/codec_ema.safetensors)")
    parser.add_argument("--precision", default="auto", help="Lightning precision (default auto: bf16-mixed where the CPU "
                        "has native bf16, else 32-true; or bf16-mixed, 32-true)")
    parser.add_argument("--seed", type=int, default=0)


def synth_codec_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``diffariff train synth-codec``."""
    parser.add_argument("--data", nargs="*", default=[], help="corpus / multitrack folders (stems and mixtures)")
    parser.add_argument("--real", nargs="*", default=[], help="folders of plain mixtures (real recordings)")
    parser.add_argument("--out", default="runs/synth_codec", help="run folder")
    parser.add_argument("--config", default=None, help="codec config JSON (SynthCodecConfig fields)")
    parser.add_argument("--init", default=None, help="an exported synth codec (.safetensors) to start from (its config; "
                        "--set then changes decoder-side fields only)")
    parser.add_argument("--freeze-encoder", action="store_true",
                        help="with --init: train the decoder side only; the latents, and every latent model, latent "
                        "cache and pitch critic made with the --init codec, stay valid (same codec identity)")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="override codec config fields")
    parser.add_argument("--train-set", nargs="*", default=[], metavar="KEY=VALUE", help="override training fields")
    parser.add_argument("--max-minutes", type=float, default=None)
    parser.add_argument("--max-steps", type=int, default=None)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--resume", action="store_true", help="continue from RUN/last.ckpt")
    parser.add_argument("--export", default=None, help="export path (default RUN/synth_codec.safetensors)")
    parser.add_argument("--fp16", action="store_true", help="export in fp16")
    parser.add_argument("--precision", default="32", help="Lightning precision (32 or bf16-mixed)")


def clap_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``diffariff train clap``."""
    parser.add_argument("--corpus", required=True, help="corpus folder (ROOT/<song>/metadata.json)")
    parser.add_argument("--out", required=True, help="run folder (created; an existing run resumes)")
    parser.add_argument("--config", help="JSON run config {model: ..., train: ...} (e.g. configs/clap_small.json)")
    parser.add_argument("--max-steps", type=int, help="optimizer steps (overrides the config)")
    parser.add_argument("--batch-size", type=int, help="clips per step (overrides the config)")
    parser.add_argument("--lr", type=float, help="peak learning rate (overrides the config)")
    parser.add_argument("--ema-decay", type=float, help="EMA decay, 0 disables (overrides the config)")
    parser.add_argument("--precision", help="Lightning precision: 32-true, bf16-mixed, ... (overrides)")
    parser.add_argument("--num-workers", type=int, help="data-loader workers (overrides the config)")
    parser.add_argument("--seed", type=int, help="random seed (overrides the config)")
    parser.add_argument("--limit-songs", type=int, help="use only the first N training songs")
    parser.add_argument("--eval-split", default="test", help="split for the final zero-shot evaluation "
                        "(default test; 'none' skips it)")
    _device_arguments(parser)


def bridge_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``diffariff train bridge``."""
    parser.add_argument("--clap", required=True, help="CLAP checkpoint (clap.safetensors) whose embeddings to bridge")
    parser.add_argument("--corpus", required=True, help="corpus folder (ROOT/<song>/metadata.json)")
    parser.add_argument("--out", required=True, help="run folder (created)")
    parser.add_argument("--config", help="JSON run config {model: ..., train: ...} (e.g. configs/bridge_small.json)")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    parser.add_argument("--max-minutes", type=float, help="stop (and export) after this much training time")
    parser.add_argument("--max-steps", type=int, help="optimizer steps (overrides the config)")
    parser.add_argument("--batch-size", type=int, help="pairs per step (overrides the config)")
    parser.add_argument("--lr", type=float, help="peak learning rate (overrides the config)")
    parser.add_argument("--seed", type=int, help="random seed (overrides the config)")
    parser.add_argument("--crops-per-stem", type=int, help="audio crops embedded per stem (overrides the config)")
    parser.add_argument("--limit-songs", type=int, help="use only the first N training songs (quick trials)")
    parser.add_argument("--train-split", help="corpus split to train on (default from the config: train)")
    parser.add_argument("--eval-split", help="split for the final evaluation ('none' skips; default: test)")
    parser.add_argument("--export", help="where to write the trained bridge (default RUN_DIR/bridge.safetensors)")
    _device_arguments(parser)


def prior_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``diffariff train prior``."""
    parser.add_argument("--clap", required=True, help="CLAP checkpoint (clap.safetensors) whose embeddings to use")
    parser.add_argument("--corpus", required=True, nargs="+", help="corpus folder(s) (ROOT/<song>/metadata.json)")
    parser.add_argument("--out", required=True, help="run folder (created)")
    parser.add_argument("--config", help="JSON run config {model: ..., train: ...} (e.g. configs/prior_small.json)")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    parser.add_argument("--max-minutes", type=float, help="stop (and export) after this much training time")
    parser.add_argument("--max-steps", type=int, help="optimizer steps (overrides the config)")
    parser.add_argument("--pairs", type=int, help="training draws to embed (overrides the config)")
    parser.add_argument("--eval-pairs", type=int, help="held-out draws to embed (overrides the config)")
    parser.add_argument("--batch-size", type=int, help="pairs per step (overrides the config)")
    parser.add_argument("--lr", type=float, help="peak learning rate (overrides the config)")
    parser.add_argument("--seed", type=int, help="random seed (overrides the config)")
    parser.add_argument("--export", help="where to write the trained prior (default RUN_DIR/prior.safetensors)")
    _device_arguments(parser)


def neighbour_prior_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``diffariff train neighbour-prior``."""
    parser.add_argument("--pairs", required=True, nargs="+",
                        help="embedded pairs folder(s) of `train prior` runs (RUN/pairs); the first one's held-out "
                             "draws score the prior")
    parser.add_argument("--out", required=True, help="the prior file to write (e.g. runs/neighbour_prior.safetensors)")
    parser.add_argument("--k", type=int, default=16, help="neighbours of the sampled role a stem is drawn from (16)")
    parser.add_argument("--temperature", type=float, default=0.05,
                        help="softmax temperature over the neighbours' context similarities (0.05)")
    parser.add_argument("--guidance", type=float, default=4.0,
                        help="role guidance the prior samples with by default (4; 1 = the plain posterior)")
    parser.add_argument("--no-role-routing", action="store_true",
                        help="draw from the k nearest contexts of any role (no role classifier step)")
    parser.add_argument("--max-rows", type=int, help="keep at most this many bank rows (a seeded subset)")
    parser.add_argument("--classifier-steps", type=int, default=1500, help="full-batch steps of the role classifier")
    parser.add_argument("--samples", type=int, default=4, help="held-out samples per pair for the report (4)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (0)")
    parser.add_argument("--overwrite", action="store_true", help="replace --out if it exists")


def diffusion_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``diffariff train diffusion``."""
    parser.add_argument("--cache", required=True, nargs="+",
                        help="latent cache folder(s) (`diffariff latents build`); several are read as one data set")
    parser.add_argument("--out", required=True, help="run folder (checkpoints, metrics.csv, export)")
    parser.add_argument("--config", help="JSON config {model, train} (e.g. configs/diffusion_small.json)")
    parser.add_argument("--mode", choices=("edm", "consistency"), help="training mode (default: the config's)")
    parser.add_argument("--teacher", help="EDM latent-diffusion checkpoint to distil from (consistency mode)")
    parser.add_argument("--init", help="start a new run from this latent-diffusion checkpoint's weights and "
                                       "normalisation (fresh optimiser and schedules); with --teacher: continue a "
                                       "distillation from this student")
    parser.add_argument("--init-new-latents", action="store_true",
                        help="with --init: the cache was built with another codec than the --init model's; keep the "
                             "weights, re-measure the latent normalisation on this cache and take its codec id "
                             "(latent channels and CLAP must still match); with --teacher the student takes the "
                             "teacher's normalisation")
    parser.add_argument("--grow-depth", type=int, metavar="N",
                        help="with --init (a DiT): deepen it to N blocks before training; the new blocks are gated-off "
                        "copies of their neighbours, so training starts from exactly the --init model's output")
    parser.add_argument("--max-minutes", type=float, help="stop after this many minutes")
    parser.add_argument("--max-steps", type=int,
                        help="stop after this many optimiser steps in total (default: the schedule's total steps; "
                             "past them the learning rate is 0)")
    parser.add_argument("--total-steps", type=int, help="length of the lr / consistency schedules (default config)")
    parser.add_argument("--batch-size", type=int, help="sequences per step")
    parser.add_argument("--lr", type=float, help="peak learning rate")
    parser.add_argument("--train-frames", type=int, help="training window in latent frames (<= cached length)")
    parser.add_argument("--norm", choices=("global", "channel"), help="latent normalisation (default: global)")
    parser.add_argument("--context-chroma", action="store_true", default=None,
                        help="feed the model the context's chroma (12 pitch classes per latent frame, stored in the "
                             "cache) beside the context latents; with --init a model without it is widened (zero "
                             "weights for the new inputs: it starts from exactly the --init model's output)")
    parser.add_argument("--p-drop-context", type=float, help="probability of dropping the context (default 0.3)")
    parser.add_argument("--p-drop-clap", type=float, help="probability of dropping the CLAP condition (default 0.3)")
    parser.add_argument("--p-mean", type=float, help="mean of log(sigma) of the EDM training noise levels (default "
                                                     "the config's, or the --init model's)")
    parser.add_argument("--p-std", type=float, help="std of log(sigma) of the EDM training noise levels")
    parser.add_argument("--distill-guidance", type=float, nargs=2, metavar=("W_CTX", "W_CLAP"),
                        help="guided distillation: the teacher step uses nested CFG at these strengths, and the "
                             "student samples them in one pass (default 1 1: unguided)")
    parser.add_argument("--pitch-critic", help="EDM mode: pitch critic fitted to the cache's codec (`diffariff train "
                        "pitch-critic`); with --pitch-loss W > 0 each step adds W x the pitch-class error of the "
                        "denoiser's clean estimate against the target, read through it (pass it again on --resume)")
    parser.add_argument("--pitch-loss", type=float, metavar="W",
                        help="weight of the pitch-class term (default: the config's, 0 = off)")
    parser.add_argument("--checkpoint-every", type=int, help="steps between last.ckpt saves")
    parser.add_argument("--precision", help="Lightning precision (default: the config's; 'auto' = bf16-mixed where "
                        "the CPU has native bf16, else 32-true)")
    parser.add_argument("--seed", type=int, help="training seed")
    parser.add_argument("--resume", action="store_true", help="continue from RUN/last.ckpt")
    parser.add_argument("--export", help="EMA export path (default RUN/diffusion_ema.safetensors)")


#: model name -> (its trainer module, the function adding its options, one-line help), in help order.
def pitch_critic_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``diffariff train pitch-critic``."""
    parser.add_argument("--codec", required=True, help="the synth codec whose pitch-class energies are fitted")
    parser.add_argument("--cache", required=True, nargs="+", help="latent cache folder(s) made with that codec")
    parser.add_argument("--out", required=True, help="the critic file to write (e.g. runs/pitch_critic.safetensors)")
    parser.add_argument("--rows", type=int, default=2000, help="cache rows used, held-out ones included (2000)")
    parser.add_argument("--held-out", type=int, default=150, help="rows kept for the report (150)")
    parser.add_argument("--max-noise", type=float, default=0.7,
                        help="largest noise added to a window, in latent standard deviations (0.7)")
    parser.add_argument("--examples", help="a file to keep the codec's energies of the training windows in and "
                                           "reuse on a later run with the same caches and settings")
    parser.add_argument("--grad-rows", type=int, default=0,
                        help="training windows whose harmonic-fit gradient through the codec the critic's gradient "
                             "is also fitted to (0: values only)")
    parser.add_argument("--grad-weight", type=float, default=1.0, help="weight of that gradient loss (1)")
    parser.add_argument("--steps", type=int, default=3000, help="optimiser steps (3000)")
    parser.add_argument("--batch", type=int, default=32, help="windows per step (32)")
    parser.add_argument("--frames", type=int, default=128, help="latent frames per training crop (128)")
    parser.add_argument("--width", type=int, default=192, help="hidden channels (192)")
    parser.add_argument("--blocks", type=int, default=4, help="residual blocks (4)")
    parser.add_argument("--lr", type=float, default=2e-3, help="peak learning rate, cosine decay (2e-3)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (0)")
    parser.add_argument("--overwrite", action="store_true", help="replace --out if it exists")


TRAINABLE: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None], str]] = {
    "codec": ("diffariff.train.codec", codec_arguments,
              "the consistency autoencoder (audio <-> 64-channel latents)"),
    "synth-codec": ("diffariff.train.synth_codec", synth_codec_arguments,
                    "the synth codec (codec v2): latents -> oscillator bank + noise, pitch by construction"),
    "clap": ("diffariff.train.clap", clap_arguments, "the built-in audio/text CLAP embedding model"),
    "bridge": ("diffariff.train.bridge", bridge_arguments,
               "the text-to-audio CLAP embedding bridge (diffusion MLP)"),
    "prior": ("diffariff.train.prior", prior_arguments,
              "the context prior: a fitting stem's CLAP embedding from the context"),
    "neighbour-prior": ("diffariff.train.neighbour_prior", neighbour_prior_arguments,
                        "the neighbour context prior: a role classifier and a bank of embedded pairs"),
    "pitch-critic": ("diffariff.train.pitch_critic", pitch_critic_arguments,
                     "the pitch critic: the synth codec's pitch-class energies, fast (harmony guidance)"),
    "diffusion": ("diffariff.train.diffusion", diffusion_arguments,
                  "the latent diffusion model (EDM or consistency)"),
}
