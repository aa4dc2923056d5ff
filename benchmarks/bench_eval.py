"""Evaluation speed: wall time of the Table 1 protocol for N held-out pairs (generation excluded).

    python benchmarks/bench_eval.py --data data/corpus --split test --n 200 [--clap CLAP.safetensors]

Runs :func:`diffariff.eval.protocol.evaluate_generation` with one candidate setting (the true stems at
half level, made by a trivial generator, so they are new audio to embed), the real row and the three
bounds, first with an empty embedding cache (cold), then again on the filled cache (warm: what a
re-run of the report costs). Without ``--clap`` a randomly initialised default-size BuiltinClap is
used (the timing depends on the architecture, not on the weights). Writes the "Evaluation" section
of BENCHMARKS.md with the machine line.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from diffariff.checkpoint import file_sha256  # noqa: E402
from diffariff.clap.builtin import BuiltinClap, ClapConfig  # noqa: E402
from diffariff.eval.cache import CachedEmbedder, EmbeddingCache  # noqa: E402
from diffariff.eval.protocol import GenerationEvalConfig, evaluate_generation  # noqa: E402
from diffariff.torchutil import setup_cpu  # noqa: E402
from machine import machine_line, peak_rss_mb, write_section  # noqa: E402


def _run(clap, cache_dir: Path, model_id: str, data: str, config: GenerationEvalConfig) -> tuple[float, int]:
    embedder = CachedEmbedder(clap, EmbeddingCache(cache_dir, model_id))
    start = time.perf_counter()
    evaluate_generation(embedder, data, config, generators={"ctx": lambda item, s, seed: 0.5 * item["target"]},
                        progress=False)
    return time.perf_counter() - start, embedder.computed


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="data/corpus")
    ap.add_argument("--split", default="test")
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--window-seconds", type=float, default=10.0)
    ap.add_argument("--clap", help="CLAP checkpoint (default: random-init default-size BuiltinClap)")
    ap.add_argument("--no-write", action="store_true", help="print only; leave BENCHMARKS.md alone")
    args = ap.parse_args(argv)
    setup_cpu()
    torch.manual_seed(0)
    clap = BuiltinClap.load(args.clap) if args.clap else BuiltinClap(ClapConfig())
    model_id = file_sha256(args.clap) if args.clap else "random-init-default"
    config = GenerationEvalConfig(n=args.n, seed=0, split=args.split, window_seconds=args.window_seconds)
    with tempfile.TemporaryDirectory(prefix="bench-eval-") as tmp:
        cold, computed = _run(clap, Path(tmp), model_id, args.data, config)
        warm, recomputed = _run(clap, Path(tmp), model_id, args.data, config)
    rows = 5  # real, ctx, random, noise, silence
    body = (
        f"`python benchmarks/bench_eval.py --n {args.n} --split {args.split}` (data {args.data}, "
        f"{args.window_seconds:g}-s pairs, reference draw of {config.m} pairs, {rows} rows, CLAP "
        f"{'checkpoint ' + args.clap if args.clap else 'default size, random init'}).\n\n"
        "| pairs | cold (s) | clips embedded | warm re-run (s) | clips re-embedded | peak RSS (MB) |\n"
        "|---|---|---|---|---|---|\n"
        f"| {args.n} | {cold:.1f} | {computed} | {warm:.1f} | {recomputed} | {peak_rss_mb():.0f} |\n\n"
        f"Machine: {machine_line()}. Generation time is not included."
    )
    print(body)
    if not args.no_write:
        write_section("Evaluation", body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
