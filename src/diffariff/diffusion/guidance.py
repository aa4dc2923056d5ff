"""Classifier-free guidance with separate strengths for the context and the CLAP condition.

Form (nested CFG, as in Improved Diff-A-Riff): with D(c, e) the denoiser given context c and CLAP embedding e (0 = dropped),

    D = D(0,0) + w_ctx (D(ctx,0) - D(0,0)) + w_clap (D(ctx,clap) - D(ctx,0))
      = (1 - w_ctx) D(0,0) + (w_ctx - w_clap) D(ctx,0) + w_clap D(ctx,clap).

Written as a weighted sum of passes, passes whose weight is 0 are skipped (w = 1/1 -> one pass,
w_ctx = w_clap -> two passes), passes that coincide because a condition is absent are merged, and
all remaining passes go through the network in ONE batched call (the batch is repeated and the
per-sample ``drop_context`` / ``drop_clap`` masks select the conditions).

Rescaled guidance (for unbounded latents; Lin et al. 2024, "Common Diffusion Noise Schedules and
Sample Steps are Flawed", Sec. 3.4): the guided estimate's per-sample standard deviation grows with
the strengths and overshoots the latent range; we rescale it to the std of the fully conditional
estimate D_cond = D(ctx, clap) and blend: D' = phi * D_g * std(D_cond)/std(D_g) + (1 - phi) * D_g.
phi = 0 is plain CFG; phi ~ 0.7 is the paper's recommendation. It is applied on the denoised
(x0) estimate, which is what our EDM denoiser returns.

Guidance in a limited interval (Kynkaanniemi et al. 2024, "Applying Guidance in a Limited Interval
Improves Sample and Distribution Quality in Diffusion Models"): :class:`IntervalGuidance` applies the
guided denoiser only for noise levels ``lo < sigma <= hi`` and the plain conditional one (strengths
1 / 1: a single network pass) elsewhere. Guidance at the highest levels narrows the samples toward a
few modes, and at the lowest it changes little but costs passes; EDM2's interval for data of std 0.5
was (0.28, 5.42], about (0.56, 10.8] for our latents of std 1.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from ..errors import InputError
from .edm import batch_sigma

# A pass is (use_context, use_clap).
Pass = tuple[bool, bool]


def guidance_weights(w_ctx: float, w_clap: float, has_context: bool, has_clap: bool) -> dict[Pass, float]:
    """Weights of the distinct network passes for the nested CFG form, after merging passes that
    are identical because a condition is absent and dropping zero-weight passes."""
    raw = {(False, False): 1.0 - w_ctx, (True, False): w_ctx - w_clap, (True, True): w_clap}
    out: dict[Pass, float] = {}
    for (c, e), w in raw.items():
        key = (c and has_context, e and has_clap)
        out[key] = out.get(key, 0.0) + w
    return {k: w for k, w in out.items() if w != 0.0}


class GuidedDenoiser:
    """Callable ``(x [B, ...], sigma [B]) -> guided D(x) [B, ...]`` for the samplers.

    ``denoiser(x, sigma, context=, clap=, drop_context=, drop_clap=)`` is an EDM/consistency
    denoiser around a net with per-sample drop masks. ``context`` [B, 64, T] and ``clap`` [B, D]
    may be None (absent). ``rescale_phi`` in [0, 1] enables rescaled CFG (see module doc).
    """

    def __init__(
        self,
        denoiser: Callable[..., torch.Tensor],
        context: torch.Tensor | None = None,
        clap: torch.Tensor | None = None,
        w_ctx: float = 1.25,
        w_clap: float = 1.25,
        rescale_phi: float = 0.0,
    ):
        if not 0.0 <= rescale_phi <= 1.0:
            raise InputError(f"rescale_phi must be in [0, 1], got {rescale_phi}")
        self.denoiser = denoiser
        self.context = context
        self.clap = clap
        self.w_ctx = float(w_ctx)
        self.w_clap = float(w_clap)
        self.rescale_phi = float(rescale_phi)
        self.full: Pass = (context is not None, clap is not None)
        self.weights = guidance_weights(self.w_ctx, self.w_clap, *self.full)
        if not self.weights:  # all weights cancelled (cannot happen: they sum to 1) - keep safe
            self.weights = {self.full: 1.0}
        self.passes: list[Pass] = list(self.weights)
        if self.rescale_phi > 0 and self.full not in self.passes:
            self.passes.append(self.full)

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        b = x.shape[0]
        k = len(self.passes)
        sigma = batch_sigma(sigma, x)
        drop_ctx = torch.tensor([not c for c, _ in self.passes], device=x.device).repeat_interleave(b)
        drop_clap = torch.tensor([not e for _, e in self.passes], device=x.device).repeat_interleave(b)
        cond: dict = {}
        if self.context is not None:
            cond["context"] = _repeat(self.context, b, k)
            cond["drop_context"] = drop_ctx
        if self.clap is not None:
            cond["clap"] = _repeat(self.clap, b, k)
            cond["drop_clap"] = drop_clap
        out = self.denoiser(x.repeat(k, *([1] * (x.ndim - 1))), sigma.repeat(k), **cond)
        parts = dict(zip(self.passes, out.split(b, dim=0)))
        guided = sum(w * parts[p] for p, w in self.weights.items())
        if self.rescale_phi > 0:
            guided = rescale_to(guided, parts[self.full], self.rescale_phi)
        return guided


class PerSampleGuidance:
    """Nested CFG for a batch whose samples carry their own conditions: the teacher of *guided*
    consistency distillation, where each training sample has its own drop masks.

    Callable ``(x [B, ...], sigma [B], context=, clap=, drop_context=, drop_clap=) -> [B, ...]`` (the
    denoiser's own signature): sample i gets ``sum_p w_p(i) D_p(x_i)`` with the weights of
    :func:`guidance_weights` for the conditions sample i has. The passes of all samples (1 to 3 each)
    go through ``denoiser`` in one batched call; at strengths 1 / 1 this is the plain conditional
    denoiser.
    """

    def __init__(self, denoiser: Callable[..., torch.Tensor], w_ctx: float, w_clap: float):
        self.denoiser = denoiser
        # pass weights for each (has context, has CLAP) combination: only four exist
        self.weights = {(c, e): guidance_weights(float(w_ctx), float(w_clap), c, e)
                        for c in (False, True) for e in (False, True)}

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor, context: torch.Tensor | None = None,
                 clap: torch.Tensor | None = None, drop_context: torch.Tensor | None = None,
                 drop_clap: torch.Tensor | None = None) -> torch.Tensor:
        b = x.shape[0]
        sigma = batch_sigma(sigma, x)
        has_ctx = _present(context, drop_context, b)
        has_clap = _present(clap, drop_clap, b)
        rows, weights, use_ctx, use_clap = [], [], [], []
        for i in range(b):
            for (c, e), w in self.weights[has_ctx[i], has_clap[i]].items():
                rows.append(i)
                weights.append(w)
                use_ctx.append(c)
                use_clap.append(e)
        idx = torch.tensor(rows, device=x.device)
        cond: dict = {}
        if context is not None:
            cond["context"] = context[idx]
            cond["drop_context"] = ~torch.tensor(use_ctx, device=x.device)
        if clap is not None:
            cond["clap"] = clap[idx]
            cond["drop_clap"] = ~torch.tensor(use_clap, device=x.device)
        out = self.denoiser(x[idx], sigma[idx], **cond).float()
        w = torch.tensor(weights, device=x.device, dtype=out.dtype).reshape(-1, *([1] * (x.ndim - 1)))
        return torch.zeros(x.shape, dtype=out.dtype, device=x.device).index_add_(0, idx, out * w).to(x.dtype)


class IntervalGuidance:
    """Callable ``(x [B, ...], sigma [B] or scalar) -> [B, ...]``: ``guided`` for the samples whose
    noise level lies in ``(lo, hi]``, ``plain`` (the same conditions at strengths 1 / 1) for the rest.
    Only the denoisers some sample needs are called; a batch whose samples straddle the interval (the
    samplers here never make one: they step all samples at one sigma) runs both on the whole batch,
    because the wrapped denoisers hold batch-shaped conditions."""

    def __init__(self, guided: Callable[..., torch.Tensor], plain: Callable[..., torch.Tensor],
                 lo: float, hi: float):
        if not 0.0 <= float(lo) < float(hi):
            raise InputError(f"guidance interval needs 0 <= lo < hi, got ({lo}, {hi}]")
        self.guided, self.plain = guided, plain
        self.lo, self.hi = float(lo), float(hi)

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        s = batch_sigma(sigma, x)
        inside = (s > self.lo) & (s <= self.hi)
        if bool(inside.all()):
            return self.guided(x, s)
        if not bool(inside.any()):
            return self.plain(x, s)
        return torch.where(inside.reshape(-1, *([1] * (x.ndim - 1))), self.guided(x, s), self.plain(x, s))


def _present(cond: torch.Tensor | None, drop: torch.Tensor | None, b: int) -> list[bool]:
    """Per-sample presence of a condition: absent tensor -> all False; else not dropped."""
    if cond is None:
        return [False] * b
    if drop is None:
        return [True] * b
    return [not bool(d) for d in drop.reshape(-1).tolist()]


def _repeat(t: torch.Tensor, b: int, k: int) -> torch.Tensor:
    if t.shape[0] == 1 and b > 1:
        t = t.expand(b, *t.shape[1:])
    if t.shape[0] != b:
        raise InputError(f"condition batch {t.shape[0]} does not match the latent batch {b}")
    return t.repeat(k, *([1] * (t.ndim - 1)))


def rescale_to(guided: torch.Tensor, reference: torch.Tensor, phi: float, eps: float = 1e-8) -> torch.Tensor:
    """Rescale ``guided`` [B, ...] so its per-sample std matches ``reference``'s, blended by ``phi``."""
    dims = tuple(range(1, guided.ndim))
    ratio = reference.std(dim=dims, keepdim=True) / (guided.std(dim=dims, keepdim=True) + eps)
    return phi * guided * ratio + (1 - phi) * guided
