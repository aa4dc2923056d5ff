"""``diffariff latents build ...``: encode training pairs once into a latent cache (see
:mod:`diffariff.data.latents`), so the diffusion model trains without running codec or CLAP."""

from __future__ import annotations

import argparse
import sys


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("latents", help="pre-encode training pairs into a latent cache")
    sub = parser.add_subparsers(dest="latents_command", metavar="ACTION")
    b = sub.add_parser(
        "build",
        help="encode N (context, target, reference) pairs with the codec and CLAP (resumable)",
        description="Encode N training pairs of a multitrack dataset with the codec and CLAP into "
                    "safetensors shards. Re-running skips complete shards; --pairs may grow.",
    )
    b.add_argument("--codec", required=True, help="codec checkpoint (.safetensors)")
    b.add_argument("--clap", required=True, help="CLAP checkpoint (.safetensors)")
    b.add_argument("--data", required=True, help="dataset folder (corpus, MUSDB18-HQ, Slakh2100, ...)")
    b.add_argument("--out", required=True, help="cache folder")
    b.add_argument("--layout", default="auto", help="dataset layout (default: auto-detect)")
    b.add_argument("--split", default="train", help="dataset split, or 'all' (default: train)")
    b.add_argument("--pairs", type=int, default=10_000, help="number of pairs to encode (default 10000)")
    b.add_argument("--window-seconds", type=float, default=10.0, help="pair window length (default 10)")
    b.add_argument("--reference-seconds", type=float, default=None,
                   help="CLAP reference clip length (default: the window length)")
    b.add_argument("--context-probability", type=float, default=0.5,
                   help="chance that each other stem joins the context (default 0.5)")
    b.add_argument("--seed", type=int, default=0, help="pair seed (default 0)")
    b.add_argument("--shard-size", type=int, default=256, help="pairs per shard file (default 256)")
    b.add_argument("--batch-size", type=int, default=8, help="pairs encoded per forward pass (default 8)")
    b.add_argument("--no-context-chroma", action="store_true",
                   help="store no context chroma (12 pitch classes per latent frame, for latent models trained "
                        "with --context-chroma); needed to grow a cache built before the chroma existed")
    b.add_argument("--worker", default="0/1", metavar="I/N",
                   help="build only shards k with k %% N == I, to share one cache between N processes "
                        "(default 0/1)")
    b.add_argument("--quiet", action="store_true", help="no progress bar")
    b.set_defaults(func=run_build)
    t = sub.add_parser(
        "transpose",
        help="copy a cache with each pitched target moved to another key and the context chroma rolled with it",
        description="Copy a latent cache of the synth codec with every pitched target transposed by a random "
                    "-5..+6 semitones (decoded with shifted oscillator rows, encoded again) and the context "
                    "chroma rolled to match; the context latents stay, so the chroma is the one cue for the "
                    "target's key. Train on it beside the original cache. Re-running skips complete shards.",
    )
    t.add_argument("--codec", required=True, help="the synth codec the cache was built with (.safetensors)")
    t.add_argument("--cache", required=True, help="latent cache to copy")
    t.add_argument("--out", required=True, help="folder of the transposed copy")
    t.add_argument("--seed", type=int, default=0, help="seed of the transpositions (default 0)")
    t.add_argument("--shards", type=int, default=None, help="copy only the first N shards (default: all)")
    t.add_argument("--batch-size", type=int, default=8, help="targets per decode / encode pass (default 8)")
    t.add_argument("--worker", default="0/1", metavar="I/N",
                   help="copy only shards k with k %% N == I, to share the work between N processes (default 0/1)")
    t.add_argument("--quiet", action="store_true", help="no line per shard")
    t.set_defaults(func=run_transpose)
    parser.set_defaults(func=lambda args: (parser.print_help(), 2)[1])


def run_build(args: argparse.Namespace) -> int:
    from ..clap.builtin import BuiltinClap
    from ..codec import load_codec
    from ..data.latents import CacheRecipe, Encoders, build_latent_cache
    from ..data.sources import open_dataset
    from ..diffusion.model import model_identity

    recipe = CacheRecipe(pairs=args.pairs, seed=args.seed, shard_size=args.shard_size,
                         window_seconds=args.window_seconds, reference_seconds=args.reference_seconds,
                         context_probability=args.context_probability,
                         split=None if args.split == "all" else args.split, layout=args.layout,
                         context_chroma=not args.no_context_chroma)
    wid, nworkers = _worker(args.worker)
    songs = open_dataset(args.data, layout=args.layout, split=recipe.split)
    codec = load_codec(args.codec)
    clap = BuiltinClap.load(args.clap)
    encoders = Encoders(codec, clap, model_identity(args.codec), model_identity(args.clap))
    bar = not args.quiet and sys.stderr.isatty()
    log = None if args.quiet or bar else _shard_logger(recipe.num_shards)
    manifest = build_latent_cache(encoders, songs, args.out, recipe, batch_size=args.batch_size,
                                  data_root=str(args.data), progress=bar, worker=(wid, nworkers), on_shard=log)
    if manifest is None:
        print(f"worker {wid}/{nworkers} done; the manifest is written when every worker has finished")
        return 0
    print(f"latent cache {args.out}: {manifest['pairs']} pairs in {manifest['shards']} shards, "
          f"{manifest['frames']} latent frames each; target latent std {manifest['stats']['std']:.4f}")
    return 0


def run_transpose(args: argparse.Namespace) -> int:
    from ..codec import load_codec
    from ..data.latent_transpose import transpose_cache
    from ..diffusion.model import model_identity

    worker = _worker(args.worker)
    codec = load_codec(args.codec)
    log = None if args.quiet else _shard_logger(10**9, total_known=False)
    manifest = transpose_cache(codec, args.cache, args.out, seed=args.seed, batch_size=args.batch_size,
                               codec_id=model_identity(args.codec), worker=worker, max_shards=args.shards,
                               on_shard=log)
    if manifest is None:
        print(f"worker {worker[0]}/{worker[1]} done; the manifest is written when every shard is complete")
        return 0
    fit = manifest["transpose_fit"]
    kept = "" if fit["mean"] is None else (f"; pitch-class profile of the moved targets vs the rolled originals: "
                                           f"mean r {fit['mean']:.3f}, median {fit['median']:.3f} over "
                                           f"{fit['pitched_rows']} pitched rows")
    print(f"transposed cache {args.out}: {manifest['pairs']} pairs in {manifest['shards']} shards{kept}")
    return 0


def _worker(text: str) -> tuple[int, int]:
    """``"I/N"`` -> (I, N); InputError unless 0 <= I < N."""
    from ..errors import InputError

    try:
        wid, nworkers = (int(x) for x in text.split("/"))
    except ValueError:
        raise InputError(f"--worker must look like 0/2, got {text!r}") from None
    if not 0 <= wid < nworkers:
        raise InputError(f"--worker I/N needs 0 <= I < N, got {text!r}")
    return wid, nworkers


def _shard_logger(shards: int, total_known: bool = True):
    """One stderr line per shard written, for logs (a progress bar needs a terminal)."""
    import time

    start = time.monotonic()

    def log(k: int) -> None:
        of = f"/{shards}" if total_known else ""
        print(f"shard {k + 1}{of} written ({time.monotonic() - start:.0f} s)", file=sys.stderr, flush=True)

    return log
