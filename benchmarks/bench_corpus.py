"""Corpus rendering speed: seconds of audio rendered per wall-clock second.

    python benchmarks/bench_corpus.py --songs 4 --seconds 10 --jobs 1

Renders K songs into a temporary folder (deleted afterwards unless --keep) and prints a markdown row
for BENCHMARKS.md (and, with --variety, the variety statistics of the corpus): song seconds per wall second and multitrack seconds (song seconds x stems) per wall
second, with the machine (CPU model, cores) and the date.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

from diffariff.data.synth.corpus import build_corpus
from diffariff.data.synth.stats import corpus_stats, format_stats

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import command_line, machine_line, write_section  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--songs", type=int, default=4)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--soundfont", default=None)
    ap.add_argument("--keep", default=None, help="render into this folder and keep it")
    ap.add_argument("--variety", action="store_true", help="also print the corpus variety statistics")
    ap.add_argument("--no-write", action="store_true", help="print only; do not rewrite BENCHMARKS.md")
    args = ap.parse_args(argv)
    out = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench-corpus-"))
    try:
        t0 = time.perf_counter()
        paths = build_corpus(out, songs=args.songs, seconds=args.seconds, seed=args.seed, jobs=args.jobs,
                             soundfont=args.soundfont, progress=False)
        wall = time.perf_counter() - t0
        stems = sum(len(json.loads((p / "metadata.json").read_text())["stems"]) for p in paths)
        if args.variety:
            print(format_stats(corpus_stats(out)))
    finally:
        if not args.keep:
            shutil.rmtree(out, ignore_errors=True)
    song_s = args.songs * args.seconds
    stem_s = stems * args.seconds
    summary = f"rendered {args.songs} songs x {args.seconds:g} s ({stems} stems) in {wall:.1f} s wall"
    table = (
        "| songs x seconds | jobs | stems | wall s | song s / wall s | stem s / wall s |\n"
        "|---|---|---|---|---|---|\n"
        f"| {args.songs} x {args.seconds:g} | {args.jobs} | {stems} | {wall:.1f} | {song_s / wall:.2f} "
        f"| {stem_s / wall:.2f} |"
    )
    print(summary)
    print(table)
    if not args.no_write:
        cmd = command_line("bench_corpus.py", argv)
        write_section("Corpus rendering", f"Measured on: {machine_line()}.\nCommand: `{cmd}`. "
                      "Each stem is one FluidSynth process (the soundfont is loaded per stem).\n\n" + table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
