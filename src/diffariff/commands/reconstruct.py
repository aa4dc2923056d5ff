"""``diffariff reconstruct IN -o OUT``: a file through a codec (encode + decode), to hear what it keeps.

The output has the input's length and sample rate (the codec works at 48 kHz; other rates are resampled
in and out). A mono codec's output is mono unless ``--width`` asks for the pseudo-stereo image that
generation uses (two decodings, :mod:`diffariff.codec.stereo`). The codec comes from a bundle
(``--bundle``, default: the shipped one) or a checkpoint (``--codec``, either codec kind; ``v2`` names the
shipped synth codec).
Inputs and the output path are checked before any model loads; the output never replaces the input
unless ``--overwrite`` is given.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import InputError
from ..fsutil import check_output_path
from .options import add_overwrite, cli_warnings

CODEC_RATE = 48_000


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("reconstruct", help="encode and decode an audio file with the codec (hear the codec)")
    p.add_argument("input", type=Path, help="audio file (wav, flac, ogg, mp3)")
    p.add_argument("-o", "--out", type=Path, required=True, help="output file (.wav or .flac)")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--bundle", default=None, help="model bundle whose codec to use (default: the shipped one)")
    src.add_argument("--codec", default=None,
                     help="a codec checkpoint (.safetensors) instead of a bundle, or 'v2': the shipped synth codec")
    p.add_argument("--width", type=float, default=0.0, help="pseudo-stereo width in [0, 1] (default 0: mono)")
    p.add_argument("--seed", type=int, default=0, help="decoder seed (default 0)")
    add_overwrite(p, "the input file")
    p.set_defaults(func=run)


@cli_warnings
def run(args: argparse.Namespace) -> int:
    from ..audio import check_audio_file, load_audio, resample, save_audio

    if not 0.0 <= args.width <= 1.0:
        raise InputError(f"--width must be in [0, 1], got {args.width}")
    check_output_path(args.out, [args.input], args.overwrite)
    check_audio_file(args.input)  # missing, unreadable, truncated, NaN...: one line before any model
    _check_codec_source(args)
    audio, sr = load_audio(args.input, sample_rate=None, channels=None, max_seconds=None)
    codec = _open_codec(args)
    import torch

    x = resample(audio, sr, CODEC_RATE) if sr != CODEC_RATE else audio
    y = codec.reconstruct(torch.from_numpy(x)[None], seed=args.seed, width=args.width)[0].numpy()
    if sr != CODEC_RATE:
        y = resample(y, CODEC_RATE, sr)
    y = y[:, : audio.shape[1]]
    save_audio(args.out, y, sr)
    print(f"{args.input} -> {args.out} ({audio.shape[1] / sr:.2f} s, {sr} Hz, {y.shape[0]} channel(s))")
    return 0


def _check_codec_source(args: argparse.Namespace) -> None:
    """The codec checkpoint exists, or the bundle is valid (headers only), before anything loads."""
    if args.codec is not None:
        from ..bundle import codec_path

        args.codec = codec_path(args.codec)
        if not args.codec.is_file():
            raise InputError(f"--codec {args.codec}: no such file")
        return
    from ..bundle import open_bundle

    open_bundle(args.bundle or "default")


def _open_codec(args: argparse.Namespace):
    from ..codec import load_codec

    if args.codec is not None:
        if not args.codec.is_file():
            raise InputError(f"--codec {args.codec}: no such file")
        return load_codec(args.codec)
    from ..bundle import open_bundle

    return load_codec(open_bundle(args.bundle or "default").codec)
