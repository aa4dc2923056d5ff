"""End-to-end time of ``diffariff generate`` on the shipped example against the generation inside it.

    python benchmarks/bench_command.py [--repeats 3] [--samplers default consistency] [--no-write]

For each sampler (``default``: the bundle's own, the EDM model's DPM++ 2M 25 steps for the default bundle)
it runs the whole command ``diffariff generate EXAMPLE -o OUT`` ``--repeats`` times (wall clock: Python
start-up, imports, input checks, model loading, the tempo analysis for the sidecar, generation, writing),
and, in a separate process each time, the generation alone as the command runs it
(``Accompanist.generate_to_files`` on the same file and request, after the models are loaded; the first
call of the process, as in the command). The ratio of the medians is what a user pays on top of the
generation. Writes the "Command end to end" section of BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import command_line, machine_line, publish  # noqa: E402

EXAMPLE = Path(__file__).resolve().parent.parent / "src" / "diffariff" / "assets" / "default" / "example_context.flac"

#: the generation alone, timed inside a process that has already loaded what the command loads
GENERATION_ONLY = """
import sys, time
from pathlib import Path
from diffariff.pipeline import Accompanist
from diffariff.request import GenerationRequest
sampler = None if sys.argv[1] == "default" else sys.argv[1]
acc = Accompanist.from_pretrained("default", for_sampler=sampler)
req = GenerationRequest(sampler=sampler, seed=0, progress=False)
t0 = time.perf_counter()
acc.generate_to_files(Path(sys.argv[2]), [Path(sys.argv[3])], req)
print(time.perf_counter() - t0)
"""


def command_seconds(sampler: str, out: Path) -> float:
    """Wall seconds of one ``diffariff generate`` run on the example."""
    argv = [sys.executable, "-m", "diffariff.cli", "generate", str(EXAMPLE), "-o", str(out), "--overwrite",
            "--seed", "0", "--quiet"]
    if sampler != "default":
        argv += ["--sampler", sampler]
    t0 = time.perf_counter()
    subprocess.run(argv, check=True, capture_output=True)
    return time.perf_counter() - t0


def generation_seconds(sampler: str, out: Path) -> float:
    """Seconds of the generation alone (models already loaded), in a fresh process."""
    done = subprocess.run([sys.executable, "-c", GENERATION_ONLY, sampler, str(EXAMPLE), str(out)], check=True,
                          capture_output=True, text=True)
    return float(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--samplers", nargs="+", default=["default", "consistency"])
    ap.add_argument("--no-write", action="store_true", help="print the section without writing BENCHMARKS.md")
    args = ap.parse_args(argv)
    lines = [f"Measured on: {machine_line()}. Model: default bundle; input: its 10-s example context.",
             f"Command: `{command_line('bench_command.py', argv)}`.",
             "Command = `diffariff generate EXAMPLE -o OUT` wall clock, everything included; generation = the same "
             "generation (`generate_to_files`) timed after loading, first call of its process; medians of "
             f"{args.repeats} runs.", "",
             "| sampler | command s | generation s | command / generation |", "|---|---|---|---|"]
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "stem.wav"
        for sampler in args.samplers:
            whole = statistics.median(command_seconds(sampler, out) for _ in range(args.repeats))
            gen = statistics.median(generation_seconds(sampler, out) for _ in range(args.repeats))
            name = "default (dpmpp_2m 25)" if sampler == "default" else sampler
            lines.append(f"| {name} | {whole:.2f} | {gen:.2f} | {whole / gen:.2f} |")
            print(lines[-1], flush=True)
    lines += ["", "What the command spends beside the generation (imports, the sidecar's tempo analysis, start-up and "
              "exit) is broken down in docs/experiments.md (\"A command's fixed costs\")."]
    publish("Command end to end", lines, write=not args.no_write)
    return 0


if __name__ == "__main__":
    sys.exit(main())
