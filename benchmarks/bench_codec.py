"""Codec speed and memory: encode / decode (x real time) and peak RSS for 10 s and 3 min of audio.

    python benchmarks/bench_codec.py [--codec PATH] [--lengths 10 180] [--no-write]

Each (length, operation) runs in its own subprocess so that its peak resident memory is its own. The
input is real rendered music (a corpus song from the built-in generator, looped to the length).
Writes the "Codec" section of BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import command_line, machine_line, peak_rss_mb, write_section  # noqa: E402

DEFAULT_CODEC = Path("src/diffariff/assets/default/codec.safetensors")


def _music(seconds: float) -> np.ndarray:
    """``float32 [1, N]`` of rendered music, ``seconds`` long."""
    from diffariff.audio import load_audio
    from diffariff.data.synth.corpus import render_example

    with tempfile.TemporaryDirectory() as tmp:
        folder = render_example(Path(tmp), seconds=20.0, seed=3)
        audio, _ = load_audio(Path(folder) / "mixture.flac", sample_rate=48_000, channels=1)
    reps = int(np.ceil(seconds * 48_000 / audio.shape[1]))
    return np.tile(audio, (1, reps))[:, : int(seconds * 48_000)]


def worker(codec_path: str, seconds: float, op: str) -> dict:
    """Time one operation in this process; returns seconds, x real time and peak RSS."""
    import torch

    from diffariff.codec import load_codec
    from diffariff.torchutil import setup_cpu

    setup_cpu()
    codec = load_codec(codec_path).eval()
    audio = torch.from_numpy(_music(seconds))[None]
    with torch.inference_mode():
        latents = codec.encode(audio)
        codec.encode(audio[..., : 48_000])  # warm-up of the kernels
        t0 = time.perf_counter()
        if op == "encode":
            codec.encode(audio)
        elif op == "decode":  # the codec's default decoding (synth codec: the synthesiser)
            codec.decode(latents, seed=0)
        elif op == "decode-1step":
            codec.decode(latents, steps=1, seed=0)
        elif op == "decode-deterministic":
            codec.decode(latents, mode="deterministic")
        elif op == "decode-pseudo-stereo":
            codec.decode_pseudo_stereo(latents, width=0.4, seed=0)
        wall = time.perf_counter() - t0
    return {"seconds": seconds, "op": op, "wall": wall, "x_realtime": seconds / wall, "peak_mb": peak_rss_mb()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--codec", default=str(DEFAULT_CODEC))
    ap.add_argument("--lengths", type=float, nargs="+", default=[10.0, 180.0])
    ap.add_argument("--ops", nargs="+", default=None,
                    help="operations (default: encode, decode-1step, decode-deterministic, decode-pseudo-stereo; "
                    "for a synth codec: encode, decode, decode-pseudo-stereo)")
    ap.add_argument("--no-write", action="store_true")
    ap.add_argument("--section", default="Codec",
                    help="BENCHMARKS.md section to write (default 'Codec'; another name keeps the default's table)")
    ap.add_argument("--worker", nargs=3, metavar=("CODEC", "SECONDS", "OP"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.worker[0], float(args.worker[1]), args.worker[2])))
        return 0
    if not Path(args.codec).is_file():
        print(f"bench_codec: no codec at {args.codec} (give --codec PATH)", file=sys.stderr)
        return 2
    if args.ops is None:
        from diffariff.checkpoint import read_checkpoint_metadata

        synth = read_checkpoint_metadata(args.codec).get("kind") == "synth_codec"
        args.ops = (["encode", "decode", "decode-pseudo-stereo"] if synth else
                    ["encode", "decode-1step", "decode-deterministic", "decode-pseudo-stereo"])
    rows = []
    for seconds in args.lengths:
        for op in args.ops:
            out = subprocess.run([sys.executable, __file__, "--worker", args.codec, str(seconds), op],
                                 capture_output=True, text=True, check=True)
            r = json.loads(out.stdout.strip().splitlines()[-1])
            rows.append(r)
            print(f"{seconds:>6.0f} s  {op:<22} {r['wall']:7.2f} s  x{r['x_realtime']:7.1f} real time  "
                  f"peak {r['peak_mb']:.0f} MB", flush=True)
    table = "| audio | operation | wall s | x real time | peak RSS MB |\n|---|---|---|---|---|\n" + "\n".join(
        f"| {r['seconds']:.0f} s | {r['op']} | {r['wall']:.2f} | {r['x_realtime']:.1f} | {r['peak_mb']:.0f} |"
        for r in rows)
    if not args.no_write:
        cmd = command_line("bench_codec.py", argv)
        write_section(args.section, f"Measured on: {machine_line()}.\nCodec: `{args.codec}` (mono, 48 kHz; "
                      "encode and decode run in chunks of the config's `chunk_seconds`).\n"
                      f"Command: `{cmd}`. `decode-1step` is the first codec's consistency decoder; `decode` the "
                      f"synth codec's synthesiser; `decode-pseudo-stereo` decodes twice.\n\n{table}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
