"""Peak memory of ``diffariff generate`` against context length: the CLI's streamed path
(``Accompanist.generate_to_files``: windowed sampling, chunked decode, spooled two-pass write) from a
context file on disk to a 24-bit stem file, for both samplers, at 10 s, 3 min, 10 min and 30 min.

    python benchmarks/bench_memory.py [--bundle PATH] [--lengths 10 180 600 1800] [--edm-steps 30]
        [--conditions reference prior] [--no-write]

Each case runs in its own process, so the peak resident memory (``ru_maxrss``) is that case's. The
context file is written before the case starts (a synthetic chord progression, 16-bit stereo at 48 kHz).
``--edm-steps`` / ``--consistency-steps``: the samplers' steps (memory does not depend on them: one
window is sampled at a time, so fewer steps measure the same peak in less time; the section says which
were used).
``--conditions``: ``reference`` (a 5-s CLAP reference clip) and / or ``prior`` (no prompt: the context
prior embeds the whole context, as a plain ``diffariff generate CONTEXT -o OUT`` does).
Writes the "Generation memory" section of BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_generate import synthetic_context  # noqa: E402
from machine import command_line, machine_line, peak_rss_mb, publish  # noqa: E402

SR = 48_000
BLOCK_SECONDS = 60.0


def write_context(path: Path, seconds: float) -> None:
    """A synthetic context of ``seconds`` written a minute at a time (16-bit stereo WAV)."""
    with sf.SoundFile(str(path), "w", SR, 2, subtype="PCM_16") as f:
        done = 0.0
        k = 0
        while done < seconds:
            part = min(BLOCK_SECONDS, seconds - done)
            f.write(synthetic_context(part, seed=k).T)
            done += part
            k += 1


def run_case(bundle: str, sampler: str, steps: int, context: str, out: str, condition: str = "reference") -> dict:
    import torch

    from diffariff.pipeline import Accompanist

    torch.set_num_threads(2)
    acc = Accompanist.from_pretrained(bundle, for_sampler=sampler)  # what the command loads
    load_mb = peak_rss_mb()
    t0 = time.perf_counter()
    reference = synthetic_context(5.0, seed=99) if condition == "reference" else None
    samples = acc.generate_to_files(context, [out], reference=reference, sampler=sampler,
                                    steps=steps, seed=0, max_seconds=None)
    return {"sampler": sampler, "steps": steps, "condition": acc.last_condition or "none",
            "seconds": samples / SR, "wall_s": time.perf_counter() - t0,
            "load_mb": load_mb, "peak_mb": peak_rss_mb(), "windows": len(acc.last_windows)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bundle", default="default", help="bundle folder (default: the packaged one)")
    ap.add_argument("--lengths", type=float, nargs="+", default=[10.0, 180.0, 600.0, 1800.0],
                    help="context lengths (seconds)")
    ap.add_argument("--edm-steps", type=int, default=30, help="EDM sampling steps (memory does not depend on them)")
    ap.add_argument("--consistency-steps", type=int, default=5,
                    help="consistency sampling steps (memory does not depend on them)")
    ap.add_argument("--samplers", nargs="+", choices=("consistency", "dpmpp_2m", "heun"),
                    default=["consistency", "dpmpp_2m"])
    ap.add_argument("--conditions", nargs="+", choices=("reference", "prior"), default=["reference", "prior"],
                    help="CLAP condition: a reference clip, and / or none (the context prior)")
    ap.add_argument("--no-write", action="store_true", help="print only, do not touch BENCHMARKS.md")
    ap.add_argument("--one", nargs=5, metavar=("SAMPLER", "STEPS", "CONTEXT", "OUT", "CONDITION"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.one:
        sampler, steps, context, out, condition = args.one
        print(json.dumps(run_case(args.bundle, sampler, int(steps), context, out, condition)))
        return 0

    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-mem-") as tmp:
        for seconds in args.lengths:
            context = Path(tmp) / f"ctx_{seconds:g}.wav"
            write_context(context, seconds)
            for sampler in args.samplers:
                for condition in args.conditions:
                    steps = args.consistency_steps if sampler == "consistency" else args.edm_steps
                    out = Path(tmp) / "stem.wav"
                    cmd = [sys.executable, __file__, "--bundle", args.bundle, "--one", sampler, str(steps),
                           str(context), str(out), condition]
                    res = subprocess.run(cmd, check=True, capture_output=True, text=True)
                    row = json.loads(res.stdout.strip().splitlines()[-1])
                    print(row, flush=True)
                    rows.append(row)
                    out.unlink(missing_ok=True)
            context.unlink()
    lines = [
        f"Measured on: {machine_line()}. Model: bundle {args.bundle}.",
        f"Command: `{command_line('bench_memory.py', argv)}`. `diffariff generate`'s path: context file ->",
        "a context longer than a minute spooled to a temporary file -> windowed sampling (condition: a 5-s CLAP",
        "reference clip, or none: the context prior; dual CFG 1.25 / 1.25; harmony guidance 0.2, the default) -> key lock -> chunked pseudo-stereo",
        "decode into a spool file -> 24-bit stem file written block by block. Peak RSS per process (models",
        "included; `after load`: the peak once the bundle is loaded). EDM steps do not change the peak (one",
        "window at a time), so the cases may run with fewer steps than the defaults; their wall time is then not the",
        "default one (the Generation section has those).",
        "",
        "| sampler | steps | condition | context | windows | wall s | after load MB | peak RSS MB |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| {r['sampler']} | {r['steps']} | {r['condition']} | {r['seconds']:g} s | {r['windows']} | "
                     f"{r['wall_s']:.1f} | {r['load_mb']:.0f} | {r['peak_mb']:.0f} |")
    publish("Generation memory", lines, write=not args.no_write)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
