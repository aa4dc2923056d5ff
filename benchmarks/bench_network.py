"""Latent network speed: milliseconds per network evaluation of the default DiT (batch 1 and batch 4,
the dual-CFG batch) on a 10-s latent (118 frames), and the paper-size DiT's forward pass: FLOPs
(counted by ``torch.utils.flop_counter``), wall time and achieved FLOP/s against this CPU's matmul peak
measured in the same run (fp32 and bf16, 2048 x 2048).

    python benchmarks/bench_network.py [--bundle PATH] [--no-write]

The default DiT is the bundle's EDM model (the packaged default bundle when it exists, else the small
config of ``configs/diffusion_small.json`` at random initialisation, which has the same cost).
Writes the "Latent network" section of BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import machine_line, publish  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
FRAMES = 118  # 10 s at 48 kHz / 4096


def timed(fn, repeats: int, warmup: int = 2) -> float:
    """Median wall seconds of ``fn()`` over ``repeats`` runs after ``warmup``."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    times.sort()
    return times[len(times) // 2]


def matmul_peak(dtype: torch.dtype, n: int = 2048, repeats: int = 10) -> float:
    """Achieved FLOP/s of an n x n matmul in ``dtype``."""
    a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
    return 2 * n**3 / timed(lambda: a @ b, repeats)


def default_model(bundle: str | None):
    from diffariff.bundle import DEFAULT_BUNDLE, MANIFEST, open_bundle
    from diffariff.diffusion.model import LatentDiffusion, LatentDiffusionConfig

    if bundle is None and (DEFAULT_BUNDLE / MANIFEST).is_file():
        bundle = str(DEFAULT_BUNDLE)
    if bundle is not None:
        b = open_bundle(bundle)
        path = b.diffusion.get("edm") or next(iter(b.diffusion.values()))
        return LatentDiffusion.load(path), f"bundle {path.name}"
    cfg = json.loads((ROOT / "configs" / "diffusion_small.json").read_text())["model"]
    model = LatentDiffusion(LatentDiffusionConfig(net=cfg["net"], net_config=cfg["net_config"]))
    return model, "configs/diffusion_small.json (random weights, same cost)"


def net_inputs(batch: int, frames: int, clap_dim: int) -> tuple:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(batch, 64, frames, generator=g)
    ctx = torch.randn(batch, 64, frames, generator=g)
    clap = torch.nn.functional.normalize(torch.randn(batch, clap_dim, generator=g), dim=-1)
    return x, torch.zeros(batch), ctx, clap


def forward_seconds(net, inputs: tuple, bf16: bool, repeats: int, warmup: int = 2) -> float:
    """Median wall seconds of one forward pass of ``net`` on ``inputs`` (x, c_noise, context, clap)."""
    x, c, ctx, clap = inputs

    def run():
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            net(x, c, context=ctx, clap=clap)
    return timed(run, repeats, warmup)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bundle", default=None, help="bundle whose EDM DiT is timed (default: the packaged one)")
    ap.add_argument("--no-write", action="store_true", help="print only, do not touch BENCHMARKS.md")
    args = ap.parse_args(argv)
    torch.set_flush_denormal(True)
    from diffariff.nets import build_net

    peak32, peak16 = matmul_peak(torch.float32), matmul_peak(torch.bfloat16)
    model, label = default_model(args.bundle)
    net = model.denoiser.net.eval()
    rows = []
    with torch.inference_mode():
        for batch in (1, 4):
            inputs = net_inputs(batch, FRAMES, model.config.clap_dim)
            for dtype in ("fp32", "bf16"):
                sec = forward_seconds(net, inputs, dtype == "bf16", 10)
                rows.append({"net": "default", "batch": batch, "dtype": dtype, "ms": 1000 * sec})
        paper = build_net("dit", json.loads((ROOT / "configs" / "dit_paper.json").read_text())).eval()
        params = sum(p.numel() for p in paper.parameters())
        inputs = net_inputs(1, FRAMES, 512)
        counter = FlopCounterMode(display=False)
        with counter:
            paper(inputs[0], inputs[1], context=inputs[2], clap=inputs[3])
        flops = counter.get_total_flops()
        for dtype in ("fp32", "bf16"):
            sec = forward_seconds(paper, inputs, dtype == "bf16", 3, warmup=1)
            peak = peak16 if dtype == "bf16" else peak32
            rows.append({"net": "paper", "batch": 1, "dtype": dtype, "ms": 1000 * sec, "flops": flops,
                         "achieved": flops / sec, "peak": peak, "params": params})
    for r in rows:
        print(json.dumps(r), flush=True)
    small_params = sum(p.numel() for p in net.parameters())
    lines = [
        f"Measured on: {machine_line()}.",
        f"Matmul peak in this run (2048 x 2048): fp32 {peak32 / 1e9:.0f} GFLOP/s, bf16 {peak16 / 1e9:.0f} GFLOP/s.",
        f"Default DiT: {label}, {small_params / 1e6:.1f} M parameters; input 10 s = {FRAMES} latent frames.",
        "",
        "| network | batch | dtype | ms per evaluation | achieved GFLOP/s | share of matmul peak |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        if r["net"] == "paper":
            name = f"paper DiT ({r['params'] / 1e6:.0f} M, {r['flops'] / 1e9:.0f} GFLOP per forward)"
            extra = f"{r['achieved'] / 1e9:.0f} | {100 * r['achieved'] / r['peak']:.0f} %"
        else:
            name, extra = "default DiT", "- | -"
        lines.append(f"| {name} | {r['batch']} | {r['dtype']} | {r['ms']:.1f} | {extra} |")
    lines += ["", "Batch 4 is one dual-CFG evaluation (conditional, context-only, CLAP-only and unconditional "
                  "passes in one batch); Heun 30 steps = 59 evaluations, consistency 5 steps = 5."]
    publish("Latent network", lines, write=not args.no_write)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
