"""Peak memory of ``diffariff generate`` against context length: the CLI's streamed path
(``Accompanist.generate_to_files``: windowed sampling, chunked decode, spooled two-pass write) from a
context file on disk to a 24-bit stem file, for both samplers, at 10 s, 3 min, 10 min and 30 min.
With ``--commands``, the peak of whole commands instead (``diffariff generate | inpaint | vary |
arrange``, and ``generate --bars`` / ``--loop-bars`` as ``bars`` / ``loop-bars``, run as they are typed,
each in its own process).

    python benchmarks/bench_memory.py [--bundle PATH] [--lengths 10 180 600 1800] [--edm-steps 30]
        [--conditions reference prior] [--no-write]
    python benchmarks/bench_memory.py --commands generate inpaint vary arrange [--lengths 10 180 600]
        [--command-steps 1] [--no-write]

Each case runs in its own process, so the peak resident memory (``ru_maxrss``) is that case's. The
context file is written before the case starts (a synthetic chord progression, 16-bit stereo at 48 kHz).
``--edm-steps`` / ``--consistency-steps``: the samplers' steps (memory does not depend on them: one
window is sampled at a time, so fewer steps measure the same peak in less time; the section says which
were used).
``--conditions``: ``reference`` (a 5-s CLAP reference clip) and / or ``prior`` (no prompt: the context
prior embeds the whole context, as a plain ``diffariff generate CONTEXT -o OUT`` does).
Writes the "Generation memory" section of BENCHMARKS.md.

``--commands``: each command runs as ``python -m diffariff.cli COMMAND ...`` with the default sampler
at ``--command-steps`` steps (1 by default; the peak does not depend on them), ``--seed 0 --quiet``,
the bundle and ``--max-seconds`` above the length. The context is the synthetic one above; the stem of
``inpaint`` / ``vary`` is another synthetic progression of the same length (seed offset 1000).
``inpaint`` regenerates the middle 5 s; ``vary`` uses ``--strength 0.5``; ``arrange`` builds two parts
(``--part bass --part "warm pad"``) on the context. The peak is the child's ``ru_maxrss``
(:func:`os.wait4`), so it includes imports, the sidecar's tempo analysis, loading and writing.
Writes the "Command memory" section of BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import os
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


COMMANDS = ("generate", "inpaint", "vary", "arrange", "bars", "loop-bars")
#: the bar grid given to ``bars`` / ``loop-bars`` (2-s bars)
GRID = ["--bpm", "120", "--meter", "4/4", "--downbeat", "0"]
#: seed offset of the synthetic stem of ``inpaint`` / ``vary`` (another chord progression)
STEM_SEED = 1000
#: length of the span ``inpaint`` regenerates (seconds, centred)
INPAINT_SECONDS = 5.0


def write_context(path: Path, seconds: float, seed: int = 0) -> None:
    """A synthetic context of ``seconds`` written a minute at a time (16-bit stereo WAV); ``seed``
    offsets the progression (a different one per value)."""
    with sf.SoundFile(str(path), "w", SR, 2, subtype="PCM_16") as f:
        done = 0.0
        k = 0
        while done < seconds:
            part = min(BLOCK_SECONDS, seconds - done)
            f.write(synthetic_context(part, seed=seed + k).T)
            done += part
            k += 1


def command_argv(command: str, seconds: float, context: Path, stem: Path, out: Path, bundle: str,
                 steps: int) -> list[str]:
    """The ``diffariff COMMAND ...`` arguments of one case (module doc); ``out`` is a folder."""
    common = ["--bundle", bundle, "--steps", str(steps), "--seed", "0", "--quiet", "--overwrite",
              "--max-seconds", f"{max(600.0, seconds + 1.0):g}"]
    if command == "generate":
        return ["generate", str(context), "-o", str(out / "stem.wav"), *common]
    if command == "inpaint":
        a = max(0.0, seconds / 2 - INPAINT_SECONDS / 2)
        return ["inpaint", str(stem), str(context), "--start", f"{a:g}",
                "--end", f"{min(seconds, a + INPAINT_SECONDS):g}", "-o", str(out / "stem.wav"), *common]
    if command == "vary":
        return ["vary", str(stem), str(context), "--strength", "0.5", "-o", str(out / "stem.wav"), *common]
    if command == "bars":  # generate --bars: four bars in the middle
        first = max(1, int(seconds / 4))
        return ["generate", str(context), "--bars", f"{first}:{first + 3}", *GRID, "-o", str(out / "stem.wav"), *common]
    if command == "loop-bars":  # generate --loop-bars 4: a 4-bar loop over the whole context
        return ["generate", str(context), "--loop-bars", "4", *GRID, "-o", str(out / "stem.wav"), *common]
    if command == "arrange":
        return ["arrange", str(context), "--part", "bass", "--part", "warm pad", "-o", str(out / "song"), *common]
    raise ValueError(f"unknown command {command}")


def command_peak_mb(argv: list[str]) -> float:
    """Run ``python -m diffariff.cli ARGV`` to the end; its peak resident memory (MB, ``ru_maxrss`` of
    the child from :func:`os.wait4`). RuntimeError with the command's last error line if it fails."""
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen([sys.executable, "-m", "diffariff.cli", *argv], stdout=subprocess.DEVNULL, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode:
            err.seek(0)
            lines = err.read().decode(errors="replace").strip().splitlines() or ["(no output)"]
            raise RuntimeError(f"diffariff {argv[0]} failed ({proc.returncode}): {lines[-1]}")
    return usage.ru_maxrss / 1024.0


def run_commands(args: argparse.Namespace, argv: list[str] | None) -> int:
    """The ``--commands`` benchmark (module doc): one row per command and length."""
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-mem-") as tmp:
        for seconds in args.lengths:
            context, stem = Path(tmp) / f"ctx_{seconds:g}.wav", Path(tmp) / f"stem_{seconds:g}.wav"
            write_context(context, seconds)
            write_context(stem, seconds, seed=STEM_SEED)
            for command in args.commands:
                out = Path(tmp) / "out"
                out.mkdir(exist_ok=True)
                peak = command_peak_mb(command_argv(command, seconds, context, stem, out, args.bundle,
                                                    args.command_steps))
                row = {"command": command, "seconds": seconds, "peak_mb": peak}
                print(row, flush=True)
                rows.append(row)
                for p in sorted(out.rglob("*"), reverse=True):
                    p.rmdir() if p.is_dir() else p.unlink()
            context.unlink()
            stem.unlink()
    lines = [
        f"Measured on: {machine_line()}. Model: bundle {args.bundle}.",
        f"Command: `{command_line('bench_memory.py', argv)}`. Each command runs in its own process as typed",
        f"(`python -m diffariff.cli ...`, default sampler, {args.command_steps} step(s), seed 0, sidecar and tempo",
        "analysis included) on a synthetic 16-bit 48 kHz stereo context (and, for inpaint / vary, a synthetic stem",
        f"of the same length); inpaint regenerates the middle {INPAINT_SECONDS:g} s, vary uses strength 0.5, arrange",
        "builds two parts, bars = `generate --bars` of four middle bars, loop-bars = `generate --loop-bars 4`",
        "(both at 120 bpm 4/4). Peak RSS of the whole process (imports and models included).",
        "",
        "| command | " + " | ".join(f"{s:g} s" for s in args.lengths) + " |",
        "|---|" + "---|" * len(args.lengths),
    ]
    for command in args.commands:
        peaks = [f"{r['peak_mb']:.0f}" for s in args.lengths for r in rows if r["command"] == command and r["seconds"] == s]
        lines.append(f"| {command} | " + " | ".join(peaks) + " |")
    publish("Command memory", lines, write=not args.no_write)
    return 0


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
    ap.add_argument("--commands", nargs="+", choices=COMMANDS, default=None,
                    help="measure these whole commands (run as subprocesses) instead of generate_to_files")
    ap.add_argument("--command-steps", type=int, default=1,
                    help="with --commands: sampling steps (memory does not depend on them)")
    ap.add_argument("--no-write", action="store_true", help="print only, do not touch BENCHMARKS.md")
    ap.add_argument("--one", nargs=5, metavar=("SAMPLER", "STEPS", "CONTEXT", "OUT", "CONDITION"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.one:
        sampler, steps, context, out, condition = args.one
        print(json.dumps(run_case(args.bundle, sampler, int(steps), context, out, condition)))
        return 0
    if args.commands:
        return run_commands(args, argv)

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
        "reference clip, or none: the context prior; dual CFG at the model's own strengths; harmony guidance 0.2, the default) -> key lock -> chunked pseudo-stereo",
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
