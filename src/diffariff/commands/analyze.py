"""``diffariff analyze AUDIO``: tempo, meter, first downbeat and bar count of a mix
(:mod:`diffariff.timing`), as text or (``--json``) as a machine-readable dict."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from .options import add_timing, cli_warnings, timing_overrides

HELP = "tempo, meter and downbeats of an audio file"
EXAMPLES = """examples:
  diffariff analyze song.wav
  diffariff analyze song.wav --json > grid.json
  diffariff analyze song.wav --meter 6/8          (the tracker's meter was wrong: find the rest under 6/8)

Tempo is in quarter notes per minute for every meter (a 6/8 bar is three quarter notes long), as in a
DAW. Bars are numbered from 1 at the first downbeat."""


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("analyze", help=HELP, epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter,
                              description="Detect the tempo, meter and downbeats of AUDIO.")
    p.add_argument("audio", type=Path, help="audio file (wav / flac / ogg / mp3)")
    p.add_argument("--json", action="store_true", help="print a JSON dict (with every beat and downbeat time)")
    p.add_argument("--max-seconds", type=float, default=1800.0, help="refuse longer files (default 1800)")
    add_timing(p, bars=False, sidecar=False)
    p.set_defaults(func=run_analyze)


@cli_warnings
def run_analyze(args: argparse.Namespace) -> int:
    from ..audio import check_audio_file, load_audio
    from ..errors import AudioTooLongError
    from ..timing.tempo import analyze_audio

    overrides = timing_overrides(args)
    sr, _, seconds = check_audio_file(args.audio)
    if seconds > args.max_seconds:
        raise AudioTooLongError(f"{args.audio}: {seconds:.1f} s is longer than the limit of {args.max_seconds:g} s")
    audio, sr = load_audio(args.audio, max_seconds=args.max_seconds)
    grid = analyze_audio(audio, sr, bpm=overrides["bpm"], meter=overrides["meter"], downbeat_s=overrides["downbeat"])
    duration = audio.shape[1] / sr
    if args.json:
        print(json.dumps({"file": str(args.audio), **grid.to_dict(duration, sample_rate=sr)}))
        return 0
    given = {k for k, v in overrides.items() if v is not None}
    tag = {k: " (given)" if k in given else "" for k in ("bpm", "meter", "downbeat")}
    print(f"tempo           {grid.bpm:.2f} bpm (quarter notes per minute){tag['bpm']}")
    print(f"meter           {grid.meter_name}{tag['meter']}")
    print(f"first downbeat  {grid.first_downbeat_s:.3f} s = sample {round(grid.first_downbeat_s * sr)} at "
          f"{sr} Hz{tag['downbeat']}")
    print(f"bars            {grid.bar_count(duration)} whole bars of {grid.bar_seconds:.3f} s in {duration:.2f} s")
    return 0
