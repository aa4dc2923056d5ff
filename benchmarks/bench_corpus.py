"""Corpus rendering speed: seconds of audio rendered per wall-clock second.

    python benchmarks/bench_corpus.py --songs 4 --seconds 10 --jobs 1 --renderer both
    python benchmarks/bench_corpus.py --source pieces --songs 8 --seconds 30 --jobs 2

Renders K songs into a temporary folder (deleted afterwards unless --keep) and prints a markdown row
per renderer for BENCHMARKS.md (and, with --variety, the variety statistics of the corpus): song
seconds per wall second and multitrack seconds (song seconds x stems) per wall second, with the
machine (CPU model, cores) and the date.

Renderers of the procedural corpus: ``engine`` is corpus.py as it is (in-process FluidSynth,
:func:`diffariff.data.synth.engine.render_midi_engine`, each soundfont loaded once per worker, only
the song's length rendered); ``cli`` renders the very same songs with the command-line renderer
(:func:`diffariff.data.synth.render.render_midi`, one ``fluidsynth`` process per stem, the soundfont
loaded every time) swapped in, for comparison.
``--source pieces`` measures the pieces corpus (music21 / MIDI pieces, always the engine).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

from diffariff.data.synth import corpus as corpus_module
from diffariff.data.synth.corpus import build_corpus
from diffariff.data.synth.render import render_midi
from diffariff.data.synth.stats import corpus_stats, format_stats

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import command_line, machine_line, write_section  # noqa: E402

HEADER = ("| source | renderer | songs x seconds | jobs | stems | wall s | song s / wall s | stem s / wall s |\n"
          "|---|---|---|---|---|---|---|---|")


def _measure(out: Path, args: argparse.Namespace, renderer: str) -> tuple[float, int, int]:
    """Render the corpus into ``out`` with ``renderer``; (wall seconds, songs, stems). A pieces corpus
    gives whole pieces' windows, so its song count can exceed ``--songs`` a little."""
    t0 = time.perf_counter()
    if args.source == "pieces":
        from diffariff.data.pieces.build import build_pieces_corpus

        paths = build_pieces_corpus(out, songs=args.songs, seconds=args.seconds, seed=args.seed, jobs=args.jobs,
                                    progress=False)
    else:
        original = corpus_module.render_midi_engine
        if renderer == "cli":  # forked workers inherit the swap

            def render_cli(midi, soundfont, sample_rate, *, reverb=True, seconds=None):
                return render_midi(midi, soundfont, sample_rate, reverb=reverb)

            corpus_module.render_midi_engine = render_cli
        try:
            paths = build_corpus(out, songs=args.songs, seconds=args.seconds, seed=args.seed, jobs=args.jobs,
                                 soundfont=args.soundfont, progress=False)
        finally:
            corpus_module.render_midi_engine = original
    wall = time.perf_counter() - t0
    stems = sum(len(json.loads((p / "metadata.json").read_text())["stems"]) for p in paths)
    if args.variety:
        print(format_stats(corpus_stats(out)))
    return wall, len(paths), stems


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--songs", type=int, default=4)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--soundfont", default=None)
    ap.add_argument("--source", choices=("procedural", "pieces"), default="procedural")
    ap.add_argument("--renderer", choices=("cli", "engine", "both"), default="engine",
                    help="procedural corpus: the in-process engine (corpus.py's own), the FluidSynth command "
                         "line swapped in, or both")
    ap.add_argument("--keep", default=None, help="render into this folder and keep it")
    ap.add_argument("--variety", action="store_true", help="also print the corpus variety statistics")
    ap.add_argument("--no-write", action="store_true", help="print only; do not rewrite BENCHMARKS.md")
    args = ap.parse_args(argv)
    renderers = ["engine"] if args.source == "pieces" else {
        "both": ["cli", "engine"]}.get(args.renderer, [args.renderer])
    rows = []
    for renderer in renderers:
        out = Path(args.keep) / renderer if args.keep else Path(tempfile.mkdtemp(prefix="bench-corpus-"))
        try:
            wall, songs, stems = _measure(out, args, renderer)
        finally:
            if not args.keep:
                shutil.rmtree(out, ignore_errors=True)
        song_s, stem_s = songs * args.seconds, stems * args.seconds
        print(f"{args.source}/{renderer}: {song_s:g} song seconds ({stems} stems) in {wall:.1f} s wall")
        rows.append(f"| {args.source} | {renderer} | {songs} x {args.seconds:g} | {args.jobs} | {stems} "
                    f"| {wall:.1f} | {song_s / wall:.2f} | {stem_s / wall:.2f} |")
    table = HEADER + "\n" + "\n".join(rows)
    print(table)
    if not args.no_write:
        cmd = command_line("bench_corpus.py", argv)
        title = "Corpus rendering" if args.source == "procedural" else "Pieces corpus rendering"
        write_section(title, f"Measured on: {machine_line()}.\nCommand: `{cmd}`. `cli`: one FluidSynth process "
                      "per stem (the soundfont is loaded per stem); `engine`: in-process FluidSynth, each "
                      "soundfont loaded once per worker.\n\n" + table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
