"""``diffariff corpus``: render the built-in synthetic multitrack corpus (procedural songs, real pieces,
or both)."""

from __future__ import annotations

import argparse

from ...errors import InputError

SOURCES = ("procedural", "pieces", "all")


def _procedural_soundfont(args: argparse.Namespace) -> str | None:
    """The one soundfont of the procedural corpus: --soundfont, or a single --soundfonts path."""
    if args.soundfonts in (None, "all"):
        return args.soundfont
    paths = [p for p in args.soundfonts.split(",") if p]
    if args.soundfont is not None or len(paths) != 1:
        raise InputError("the procedural corpus renders each song with one soundfont: give --soundfont PATH "
                         "(or --soundfonts with one path, or all for the installed ones in turn)")
    from .render import check_not_reserved

    if not args.allow_reserved_soundfonts:
        check_not_reserved(paths[0])
    return paths[0]


def _run(args: argparse.Namespace) -> int:
    from .corpus import build_corpus  # imported here: `diffariff corpus --help` loads no rendering code

    paths = []
    if args.source in ("procedural", "all"):
        extra = {"produce": True} if args.produce else {}  # build_corpus's production chain (corpus.py)
        paths += build_corpus(args.out, songs=args.songs, seconds=args.seconds, seed=args.seed, jobs=args.jobs,
                              soundfont=_procedural_soundfont(args), progress=not args.quiet, start=args.start,
                              **extra)
    if args.source in ("pieces", "all"):
        from ..pieces.build import build_pieces_corpus
        from ..pieces.inventory import file_refs

        if args.soundfont is not None and args.soundfonts is None:
            args.soundfonts = args.soundfont
        holdout = tuple(h for h in (args.holdout_composers or "").split(",") if h.strip())
        refs = file_refs(args.piece_files.split(",")) if args.piece_files else None
        paths += build_pieces_corpus(args.out, songs=args.songs, seconds=args.seconds, seed=args.seed,
                                     jobs=args.jobs, soundfonts=args.soundfonts, progress=not args.quiet,
                                     max_windows=args.windows_per_piece, holdout=holdout, refs=refs,
                                     allow_reserved=args.allow_reserved_soundfonts)
    print(f"{len(paths)} songs in {args.out}")
    return 0


def register(subparsers) -> None:
    """Add the ``corpus`` sub-command."""
    p = subparsers.add_parser(
        "corpus", help="render the synthetic multitrack corpus (procedural songs and/or real pieces, FluidSynth stems)",
        description="Render songs stem by stem with FluidSynth into OUT/song_XXXXX/ (<stem>.flac,\n"
                    "mixture.flac, metadata.json). Resumable: complete songs are skipped.\n"
                    "  --source procedural  generated songs (song_00000 ...), the default\n"
                    "  --source pieces      bar-aligned windows of real pieces (music21's corpus without Bach,\n"
                    "                       the MIDI files of openttd-openmsx and planetblupi-music-midi), each\n"
                    "                       part a stem with its own instrument and soundfont (song_1000000 ...)\n"
                    "  --source all         both, --songs of each",
        epilog="examples:\n  diffariff corpus --songs 200 --seconds 45 --out data/corpus --jobs 2\n"
               "  diffariff corpus --source pieces --songs 2000 --seconds 30 --out data/pieces --jobs 2 "
               "--holdout-composers Mozart\n"
               "  diffariff corpus --source pieces --piece-files a.mid,b.mid --songs 10 --out data/mine",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--songs", type=int, required=True,
                   help="number of songs to render (pieces: windows; whole pieces are rendered, so a few more)")
    p.add_argument("--seconds", type=float, default=30.0, help="length of every song in seconds (default 30)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--source", choices=SOURCES, default="procedural",
                   help="procedural songs (default), real pieces, or all (both)")
    p.add_argument("--soundfont", default=None,
                   help="GM soundfont (.sf2) for every song (default: the installed ones in turn)")
    p.add_argument("--soundfonts", default=None,
                   help="pieces: 'all' (default: every installed training soundfont, drawn per stem; drum-only "
                        "banks for drums) or PATH,PATH,...; MuseScore_General* is reserved for evaluation")
    p.add_argument("--windows-per-piece", type=int, default=4,
                   help="pieces: at most this many windows of one piece (default 4)")
    p.add_argument("--holdout-composers", default=None,
                   help="pieces: comma-separated composers or collections whose pieces all go to the test split")
    p.add_argument("--piece-files", default=None,
                   help="pieces: render these MIDI / MusicXML / ABC files (comma-separated) instead of the inventory")
    p.add_argument("--allow-reserved-soundfonts", action="store_true",
                   help="accept MuseScore_General* in --soundfonts (held-out EVALUATION corpora only)")
    p.add_argument("--produce", action="store_true",
                   help="procedural songs: mix each like a producer's session (EQ, dynamics, effects, room)")
    p.add_argument("--jobs", type=int, default=1, help="parallel rendering processes (default 1)")
    p.add_argument("--seed", type=int, default=0, help="corpus seed (default 0)")
    p.add_argument("--start", type=int, default=0, help="index of the first procedural song (default 0)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_run)
