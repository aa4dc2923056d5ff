"""``diffariff demo``: the README's first command.

When the default model bundle is installed (``diffariff/assets/default/manifest.json``) it generates an
accompaniment stem for the shipped example context and writes the stem and the mix. Until then it
renders an example multitrack song with the corpus generator and prints where its stems are.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from ..fsutil import check_output_dir, check_output_paths
from .options import cli_warnings

#: The demo's prompt: the shipped example context (drums + piano of a held-out rock song) has no bass.
DEMO_PROMPT = "warm fingered electric bass"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("demo", help="run the README demo (accompaniment, or example stems)")
    parser.add_argument("--out", type=Path, default=Path("out/demo"), help="output folder (default: out/demo)")
    parser.add_argument("--seed", type=int, default=7, help="random seed (default: 7)")
    parser.add_argument("--seconds", type=float, default=10.0, help="example length in seconds (default: 10)")
    parser.add_argument("--text", default=DEMO_PROMPT, help=f"text prompt (default: '{DEMO_PROMPT}')")
    parser.set_defaults(func=run)


@cli_warnings
def run(args: argparse.Namespace) -> int:
    from ..bundle import DEFAULT_BUNDLE, MANIFEST  # torch: loaded only when the demo runs

    check_output_dir(args.out)  # before any rendering or model work
    if (DEFAULT_BUNDLE / MANIFEST).is_file():
        return _accompany(args)
    return _render_example(args)


def _render_example(args: argparse.Namespace) -> int:
    from ..data.synth.corpus import render_example

    folder = render_example(args.out, seconds=args.seconds, seed=args.seed)
    stems = sorted(p for p in Path(folder).glob("*.flac"))
    print("No default model bundle is installed yet, so the demo renders an example multitrack song")
    print(f"({args.seconds:.0f} s, 48 kHz stereo) with the corpus generator in {folder}:")
    for p in stems:
        print(f"  {p}")
    print(f"  {Path(folder) / 'metadata.json'} (key, tempo, instruments and tags)")
    return 0


def _accompany(args: argparse.Namespace) -> int:
    from ..audio import load_audio, save_audio
    from ..bundle import open_bundle
    from ..pipeline import Accompanist

    bundle = open_bundle("default")
    text = args.text
    if bundle.example and bundle.example.get("context"):
        context_path = bundle.example["context"]
    else:
        from ..data.synth.corpus import render_example

        folder = Path(render_example(args.out / "example", seconds=args.seconds, seed=args.seed))
        context_path = folder / "mixture.flac"
    context_out, stem_out, mix_out = check_output_paths(
        [args.out / "context.wav", args.out / "stem.wav", args.out / "mix.wav"], [context_path])
    t0 = time.perf_counter()
    context, sr = load_audio(context_path, sample_rate=48_000, channels=2)
    acc = Accompanist.from_pretrained("default")
    stem = acc.generate(context, sample_rate=sr, text=text, seed=args.seed)[0]
    seconds = time.perf_counter() - t0
    context_saved = save_audio(context_out, context, 48_000)  # beside the stem, to hear one without the other
    stem_path = save_audio(stem_out, stem, 48_000)
    mix_path = save_audio(mix_out, acc.mix(context, stem), 48_000)
    print(f"Generated a '{text}' stem for {context_path} in {seconds:.1f} s:")
    print(f"  context: {context_saved}")
    print(f"  stem:    {stem_path}")
    print(f"  mix:     {mix_path}")
    return 0
