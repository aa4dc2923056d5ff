"""``diffariff corpus``: render the built-in synthetic multitrack corpus."""

from __future__ import annotations

import argparse

from .corpus import build_corpus


def _run(args: argparse.Namespace) -> int:
    paths = build_corpus(args.out, songs=args.songs, seconds=args.seconds, seed=args.seed, jobs=args.jobs,
                         soundfont=args.soundfont, progress=not args.quiet, start=args.start)
    print(f"{len(paths)} songs in {args.out}")
    return 0


def register(subparsers) -> None:
    """Add the ``corpus`` sub-command."""
    p = subparsers.add_parser(
        "corpus", help="render the synthetic multitrack corpus (procedural songs, FluidSynth stems)",
        description="Render procedural songs stem by stem with FluidSynth into OUT/song_XXXXX/ "
                    "(<stem>.flac, mixture.flac, metadata.json). Resumable: complete songs are skipped.",
    )
    p.add_argument("--songs", type=int, required=True, help="number of songs to render")
    p.add_argument("--seconds", type=float, default=30.0, help="length of every song in seconds (default 30)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--soundfont", default=None,
                   help="GM soundfont (.sf2) for every song (default: the installed ones in turn)")
    p.add_argument("--jobs", type=int, default=1, help="parallel rendering processes (default 1)")
    p.add_argument("--seed", type=int, default=0, help="corpus seed (default 0)")
    p.add_argument("--start", type=int, default=0, help="index of the first song (default 0)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_run)
