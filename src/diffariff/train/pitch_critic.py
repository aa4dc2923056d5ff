"""``diffariff train pitch-critic``: fit a :class:`~diffariff.codec.pitch_critic.PitchCritic` to a synth
codec's pitch-class energies on the latents of one or more latent caches.

Data: whole rows (10-s windows) of the caches' target stems and context mixes, each seen clean or with
Gaussian noise of a random level (``--max-noise`` times the per-channel latent std) so that the critic
is right near the latents as well as on them (harmony guidance reads the sampler's estimates). The
codec computes the targets once, before training (about 0.3 s per window on two CPU cores; ``--examples``
keeps them in a file for the next run). With ``--grad-rows N`` the first N training windows also carry the
gradient of their harmonic fit to their own context's chroma through the codec, and each step adds
``--grad-weight`` x (1 - cosine) between the critic's gradient and it (double backpropagation): matching
values alone does not make the gradients match. A plain CPU loop (a 1 M-parameter net on cached
examples needs no distributed training). The last ``--held-out`` rows are never trained on; on them the
report gives what guidance depends on:

* ``log_l1``: mean absolute error of the log powers (nepers; within 70 dB of each window's loudest),
* ``fit_r``: correlation across windows of the harmonic fit to the window's context chroma computed
  from the critic vs from the codec (:func:`diffariff.pipeline.harmony.harmonic_fit`),
* ``grad_cos``: cosine between the two fits' gradients with respect to the latents (the direction
  guidance moves in), median over windows.
"""

from __future__ import annotations

import math
import sys
import time
from argparse import Namespace
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import save_file

from ..errors import InputError

#: Log powers this far (nepers of power; 16 = 70 dB) below a window's loudest class are not fitted.
FIT_RANGE = 16.0


def _fit_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Smooth L1 of log powers ``[B, 12, T]``, both lifted to a floor ``FIT_RANGE`` below each item's peak."""
    floor = target.amax(dim=(1, 2), keepdim=True) - FIT_RANGE
    return F.smooth_l1_loss(torch.maximum(pred, floor), torch.maximum(target, floor))


@torch.no_grad()
def codec_log_energy(codec, latents: torch.Tensor, batch: int = 8) -> torch.Tensor:
    """The codec's log pitch-class powers ``[N, 12, T]`` of latents ``[N, D, T]`` (codec units)."""
    out = [codec.pitch_class_energy(latents[a: a + batch]).clamp_min(1e-30).log() for a in range(0, len(latents), batch)]
    return torch.cat(out)


def make_examples(codec, latents: torch.Tensor, std: torch.Tensor, max_noise: float, seed: int) -> tuple:
    """Noisy copies of ``latents`` ``[N, D, T]`` (a third clean, the rest with noise of a level uniform in
    (0, ``max_noise``] x ``std`` ``[D]``) and the codec's log energies of them: (inputs, targets)."""
    g = torch.Generator().manual_seed(seed)
    level = torch.rand(len(latents), 1, 1, generator=g) * max_noise
    level[torch.rand(len(latents), generator=g) < 1 / 3] = 0.0
    noisy = latents + level * std.reshape(1, -1, 1) * torch.randn(latents.shape, generator=g)
    return noisy, codec_log_energy(codec, noisy)


def codec_fit_gradients(codec, latents: torch.Tensor, chroma: torch.Tensor) -> torch.Tensor:
    """The gradient ``[N, D, T]`` of each window's harmonic fit to its context ``chroma`` ``[N, 12, T]``
    through the codec's pitch-class energy, with respect to the latents ``[N, D, T]`` (codec units): the
    direction harmony guidance moves a window in, which the critic's gradient is trained to follow."""
    from ..pipeline.harmony import harmonic_fit

    out = torch.zeros_like(latents)
    for i in range(len(latents)):
        y = latents[i: i + 1].clone().requires_grad_(True)
        (out[i: i + 1],) = torch.autograd.grad(harmonic_fit(codec.pitch_class_energy(y), chroma[i: i + 1]).sum(), y)
    return out


def _gradient_loss(critic, latents: torch.Tensor, chroma: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean ``1 - cos`` between the critic's harmonic-fit gradients and the codec's ``target`` (both
    ``[B, D, T]``); rows whose target is zero (silent context or stem) are left out."""
    from ..pipeline.harmony import harmonic_fit

    y = latents.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(harmonic_fit(critic(y).exp(), chroma).sum(), y, create_graph=True)
    keep = target.flatten(1).norm(dim=1) > 0
    if not bool(keep.any()):
        return g.sum() * 0.0
    return (1 - F.cosine_similarity(g.flatten(1)[keep], target.flatten(1)[keep], dim=1)).mean()


def evaluate(critic, codec, latents: torch.Tensor, chroma: torch.Tensor, targets: torch.Tensor) -> dict:
    """The module doc's held-out figures for windows ``latents`` ``[N, D, T]`` with context ``chroma``
    ``[N, 12, T]`` and the codec's log energies ``targets``."""
    from ..pipeline.harmony import harmonic_fit

    critic.eval()
    with torch.no_grad():
        pred = critic(latents)
    floor = targets.amax(dim=(1, 2), keepdim=True) - FIT_RANGE
    log_l1 = float((torch.maximum(pred, floor) - torch.maximum(targets, floor)).abs().mean())
    fits_codec, fits_critic, cosines = [], [], []
    for i in range(len(latents)):
        if float(chroma[i].amax()) <= 0:
            continue
        grads = []
        for energy, fits in ((codec.pitch_class_energy, fits_codec), (critic.energy, fits_critic)):
            y = latents[i: i + 1].clone().requires_grad_(True)
            fit = harmonic_fit(energy(y), chroma[i: i + 1])
            (g,) = torch.autograd.grad(fit.sum(), y)
            grads.append(g.flatten())
            fits.append(float(fit.detach()))
        if float(grads[0].norm()) > 0 and float(grads[1].norm()) > 0:
            cosines.append(float(F.cosine_similarity(grads[0], grads[1], dim=0)))
    a, b = torch.tensor(fits_codec), torch.tensor(fits_critic)
    fit_r = float(torch.corrcoef(torch.stack([a, b]))[0, 1]) if len(a) > 2 else float("nan")
    return {"windows": len(latents), "log_l1": log_l1, "fit_r": fit_r,
            "grad_cos": float(torch.tensor(cosines).median()) if cosines else float("nan"),
            "grad_cos_q10": float(torch.tensor(cosines).quantile(0.1)) if cosines else float("nan")}


def run(args: Namespace) -> int:
    """Build the examples, train the critic, report on the held-out rows and save it."""
    from ..codec import load_codec
    from ..codec.pitch_critic import PitchCritic, PitchCriticConfig, save_pitch_critic
    from ..data.latents import CHROMA_KEY, LatentCacheDataset
    from ..diffusion.model import model_identity
    from ..fsutil import atomic_path
    from ..pipeline.harmony import harmonic_fit  # noqa: F401  (every import before the long work starts)
    from ..torchutil import setup_cpu

    setup_cpu()
    out = Path(args.out)
    if out.exists() and not args.overwrite:
        raise InputError(f"{out} exists (pass --overwrite to replace it)")
    if args.steps < 1 or args.batch < 1 or args.rows < 2 or not 1 <= args.held_out < args.rows:
        raise InputError("need --steps >= 1, --batch >= 1, --rows >= 2 and 1 <= --held-out < --rows")
    codec = load_codec(args.codec)
    if not getattr(codec, "can_transpose", False):
        raise InputError(f"{args.codec}: a pitch critic needs the synth codec (oscillator bank)")
    for p in codec.parameters():
        p.requires_grad_(False)
    data = LatentCacheDataset(args.cache, full_length=True)
    if not data.has_context_chroma:
        raise InputError("the caches hold no context chroma (build them with a current `diffariff latents build`)")
    g = torch.Generator().manual_seed(args.seed)
    order = torch.randperm(len(data), generator=g)[: args.rows]
    held, train_rows = order[: args.held_out], order[args.held_out:]
    t = data.tensors
    std = t["target"][train_rows].float().std(dim=(0, 2))
    mean = t["target"][train_rows].float().mean(dim=(0, 2))
    start = time.perf_counter()
    # targets and (for a quarter of the rows) context mixes, each clean or noisy
    n_ctx = len(train_rows) // 4
    train_latents = torch.cat([t["target"][train_rows].float(), t["context"][train_rows[:n_ctx]].float()])
    stored = Path(args.examples) if args.examples else None
    recipe = f"{[str(c) for c in args.cache]}|{args.rows}|{args.held_out}|{args.max_noise}|{args.seed}"
    if stored is not None and stored.is_file():
        with safe_open(str(stored), framework="pt") as f:
            if (f.metadata() or {}).get("recipe") != recipe:
                raise InputError(f"{stored} holds examples of other settings (delete it or give another --examples)")
            x_train, y_train, x_held, y_held = (f.get_tensor(k).float() for k in ("x_train", "y_train", "x_held", "y_held"))
    else:
        x_train, y_train = make_examples(codec, train_latents, std, args.max_noise, args.seed)
        x_held, y_held = make_examples(codec, t["target"][held].float(), std, args.max_noise, args.seed + 1)
        if stored is not None:
            with atomic_path(stored) as tmp:
                save_file({"x_train": x_train.half(), "y_train": y_train, "x_held": x_held.half(), "y_held": y_held},
                          str(tmp), metadata={"recipe": recipe})
    n_grad = min(args.grad_rows, len(train_rows))
    if n_grad:  # guidance directions of noisy training targets with their own contexts' chroma
        x_grad = x_train[:n_grad]
        c_grad = t[CHROMA_KEY][train_rows[:n_grad]].float()
        g_grad = codec_fit_gradients(codec, x_grad, c_grad)
    print(f"pitch critic: {len(x_train)} training / {len(x_held)} held-out windows of {x_train.shape[-1]} frames, "
          f"codec energies in {time.perf_counter() - start:.0f} s", file=sys.stderr)

    config = PitchCriticConfig(latent_dim=int(x_train.shape[1]), width=args.width, blocks=args.blocks,
                               codec_id=model_identity(args.codec))
    critic = PitchCritic(config)
    critic.set_normalisation(mean, std)
    opt = torch.optim.AdamW(critic.parameters(), lr=args.lr, weight_decay=1e-4)
    frames = min(args.frames, x_train.shape[-1])
    for step in range(args.steps):
        critic.train()
        lr = args.lr * 0.5 * (1 + math.cos(math.pi * step / args.steps))
        for group in opt.param_groups:
            group["lr"] = lr
        idx = torch.randint(0, len(x_train), (args.batch,), generator=g)
        s = int(torch.randint(0, x_train.shape[-1] - frames + 1, (1,), generator=g))
        loss = _fit_loss(critic(x_train[idx, :, s:s + frames]), y_train[idx, :, s:s + frames])
        if n_grad:
            j = torch.randint(0, n_grad, (max(1, args.batch // 4),), generator=g)
            loss = loss + args.grad_weight * _gradient_loss(critic, x_grad[j], c_grad[j], g_grad[j])
        opt.zero_grad()
        loss.backward()
        opt.step()
        if (step + 1) % max(1, args.steps // 10) == 0:
            print(f"step {step + 1}/{args.steps}  loss {float(loss.detach()):.4f}  lr {lr:.2e}", file=sys.stderr)
    extra = {"caches": [str(c) for c in args.cache], "steps": args.steps, "rows": args.rows,
             "grad_rows": n_grad, "max_noise": args.max_noise}
    save_pitch_critic(critic, out, extra=extra)  # kept even if the report below fails
    report = evaluate(critic, codec, x_held, t[CHROMA_KEY][held].float(), y_held)
    save_pitch_critic(critic, out, extra={**extra, "held_out": report})
    print("held out: " + "  ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in report.items()))
    print(f"wrote {out}", file=sys.stderr)
    return 0
