"""Generation speed and memory: real-time factor (wall seconds per second of audio) and peak resident
memory of ``Accompanist.generate`` for 10-s and 3-min contexts, EDM (DPM++ 2M 25 steps, the shipped default,
and Heun 30 steps) and consistency (5 steps), each with its model's own guidance strengths, conditioned on a CLAP reference clip or, context only, on the context prior's
choice (when the bundle has a prior; its own cost, one CLAP embedding of the context and the prior's
sampling, is timed apart as ``prior s``).

    python benchmarks/bench_generate.py [--bundle PATH] [--lengths 10 180] [--harmony default 0]
        [--precision auto fp32] [--no-write]

``--bundle`` defaults to the packaged default bundle when it exists, else a tiny randomly initialised
bundle is built in a temporary folder and the section says so (its numbers measure the pipeline's
overheads: codec, windowing, guidance, not a real model). Each case runs in its own process so that
peak memory is per case. ``--harmony``: harmony guidance strengths to time (``default``: the pipeline's,
0.2 with a synth codec; ``0``: off); ``--precision``: the networks' arithmetic (``auto``: bf16 where
native). Writes the "Generation" section of BENCHMARKS.md.
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
from machine import command_line, machine_line, peak_rss_mb, publish  # noqa: E402

SR = 48_000
CASES = (("edm", "dpmpp_2m", 25), ("edm", "heun", 30), ("consistency", "consistency", 5))


def synthetic_context(seconds: float, seed: int = 0) -> np.ndarray:
    """A stereo float32 [2, N] chord progression with note envelopes (deterministic)."""
    rng = np.random.default_rng(seed)
    n = int(round(seconds * SR))
    t = np.arange(n) / SR
    out = np.zeros(n)
    beat = 0.5
    for k in range(int(np.ceil(seconds / beat))):
        root = 110.0 * 2 ** (rng.integers(0, 12) / 12)
        start = int(k * beat * SR)
        seg = slice(start, min(n, start + int(beat * SR)))
        env = np.exp(-3 * (t[seg] - t[start]))
        for ratio in (1.0, 1.26, 1.5, 2.0):
            out[seg] += 0.08 * env * np.sin(2 * np.pi * root * ratio * t[seg])
    return np.stack([out, 0.9 * out]).astype(np.float32)


def run_case(bundle: str, mode: str, sampler: str, steps: int, seconds: float, condition: str = "reference",
             harmony: str = "default", precision: str = "auto") -> dict:
    import torch

    from diffariff.pipeline import Accompanist

    torch.set_num_threads(2)
    t0 = time.perf_counter()
    acc = Accompanist.from_pretrained(bundle)
    load_s = time.perf_counter() - t0
    ctx = synthetic_context(seconds)
    ref = synthetic_context(5.0, seed=1) if condition == "reference" else None
    prior_s = None
    if condition == "prior":
        t0 = time.perf_counter()
        acc.context_condition(ctx, seed=0)
        prior_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    strength = None if harmony == "default" else float(harmony)
    out = acc.generate(ctx, reference=ref, sampler=sampler, steps=steps, seed=0, harmony=strength, precision=precision)
    model_config = acc.model_for(sampler)[0].config
    wall = time.perf_counter() - t0
    if acc.last_condition != condition:
        raise RuntimeError(f"expected a {condition} condition, the pipeline used {acc.last_condition}")
    return {"mode": mode, "sampler": sampler, "steps": steps, "seconds": seconds, "condition": condition,
            "guidance": f"{model_config.w_ctx:g} / {model_config.w_clap:g}",
            "harmony": acc.harmony_strength(acc_request(strength)), "precision": precision,
            "load_s": load_s, "prior_s": prior_s, "wall_s": wall, "rtf": wall / seconds, "peak_mb": peak_rss_mb(),
            "windows": len(acc.last_windows), "shape": list(out.shape)}


def acc_request(harmony: float | None):
    from diffariff.request import GenerationRequest

    return GenerationRequest(harmony=harmony)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bundle", default=None, help="bundle folder (default: the packaged one, else a tiny one)")
    ap.add_argument("--lengths", type=float, nargs="+", default=[10.0, 180.0], help="context lengths (seconds)")
    ap.add_argument("--no-write", action="store_true", help="print only, do not touch BENCHMARKS.md")
    ap.add_argument("--conditions", nargs="+", choices=("reference", "prior"), default=["reference", "prior"],
                    help="CLAP conditions to time (prior: only with a bundle that has a context prior)")
    ap.add_argument("--harmony", nargs="+", default=["default"],
                    help="harmony guidance strengths ('default': the pipeline's; 0: off)")
    ap.add_argument("--precision", nargs="+", default=["auto"], choices=("auto", "bf16", "fp32"),
                    help="the networks' arithmetic ('auto': bf16 where the CPU computes it natively)")
    ap.add_argument("--one", nargs=7, metavar=("MODE", "SAMPLER", "STEPS", "SECONDS", "CONDITION", "HARMONY", "PRECISION"),
                    help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.one:
        mode, sampler, steps, seconds, condition, harmony, precision = args.one
        print(json.dumps(run_case(args.bundle, mode, sampler, int(steps), float(seconds), condition, harmony,
                                  precision)))
        return 0

    from diffariff.bundle import DEFAULT_BUNDLE, MANIFEST, open_bundle
    from diffariff.testing import make_tiny_bundle

    tmp = None
    label = ""
    bundle = args.bundle
    if bundle is None and (DEFAULT_BUNDLE / MANIFEST).is_file():
        bundle = str(DEFAULT_BUNDLE)
        label = "default bundle"
    if bundle is None:
        tmp = tempfile.TemporaryDirectory(prefix="bench-gen-")
        bundle = str(make_tiny_bundle(Path(tmp.name) / "tiny", train_frames=117).root)
        label = "TINY random bundle (no default bundle yet): pipeline overheads only"
    label = label or f"bundle {bundle}"
    opened = open_bundle(bundle)
    conditions = [c for c in args.conditions if c != "prior" or opened.prior is not None]
    rows = []
    try:
        for mode, sampler, steps in CASES:
            if mode not in opened.modes:
                print(f"skipping {mode}: not in the bundle", file=sys.stderr)
                continue
            for condition in conditions:
                for harmony in args.harmony:
                    for precision in args.precision:
                        for seconds in args.lengths:
                            cmd = [sys.executable, __file__, "--bundle", bundle, "--one", mode, sampler, str(steps),
                                   str(seconds), condition, harmony, precision]
                            res = subprocess.run(cmd, check=True, capture_output=True, text=True)
                            row = json.loads(res.stdout.strip().splitlines()[-1])
                            print(row, flush=True)
                            rows.append(row)
    finally:
        if tmp is not None:
            tmp.cleanup()
    lines = [
        f"Measured on: {machine_line()}. Model: {label}.",
        f"Command: `{command_line('bench_generate.py', argv)}`.",
        "Generate = encode context + CLAP condition + sampling (dual CFG at the model's own strengths, context /",
        "CLAP in the table; harmony guidance at the",
        "strength in the table: 0.2 is the default, 0 off; through the bundle's pitch critic when it has one) + key",
        "lock + pseudo-stereo decode; precision: the networks' arithmetic (auto = bf16 where the CPU has it natively);",
        "the CLAP condition is a 5-s reference clip's embedding (`reference`) or, context only, the context",
        "prior's sample (`prior`: included in generate s; `prior s` times one draw alone, called before generate).",
        "RTF = wall seconds per second of audio (< 1 is faster than real time); peak RSS per process.",
        "",
        "| sampler | steps | guidance | condition | harmony | precision | context | windows | load s | prior s | generate s | RTF | peak RSS MB |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        prior_s = "–" if r["prior_s"] is None else f"{r['prior_s']:.2f}"
        lines.append(f"| {r['sampler']} | {r['steps']} | {r['guidance']} | {r['condition']} | {r['harmony']:g} | {r['precision']} | {r['seconds']:g} s | "
                     f"{r['windows']} | "
                     f"{r['load_s']:.1f} | {prior_s} | {r['wall_s']:.1f} | {r['rtf']:.2f} | {r['peak_mb']:.0f} |")
    publish("Generation", lines, write=not args.no_write)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
