"""``diffariff demo``: the README's first command.

With a default model bundle installed it generates an accompaniment for the shipped example context;
until the models exist it renders an example multitrack song with the corpus generator and prints
where its stems are.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("demo", help="run the README demo (example song -> stems)")
    parser.add_argument("--out", type=Path, default=Path("out/demo"), help="output folder (default: out/demo)")
    parser.add_argument("--seed", type=int, default=7, help="random seed (default: 7)")
    parser.add_argument("--seconds", type=float, default=10.0, help="example length in seconds (default: 10)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..data.synth.corpus import render_example

    folder = render_example(args.out, seconds=args.seconds, seed=args.seed)
    stems = sorted(p for p in Path(folder).glob("*.flac"))
    print(f"Rendered an example multitrack song ({args.seconds:.0f} s, 48 kHz stereo) in {folder}:")
    for p in stems:
        print(f"  {p}")
    print(f"  {Path(folder) / 'metadata.json'} (key, tempo, instruments and tags)")
    return 0
