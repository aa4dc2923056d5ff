"""The context prior: sample the CLAP embedding of a stem that fits a context, from the context alone.

Why: the latent model given only a context (Table 1's "ctx" setting, the null CLAP embedding) must
choose *which* instrument and part to play by itself, and a small model does that poorly: its stems
drift between timbres and score like randomly paired stems on APA (MODEL_CARD, session 10), while the
same model given a CLAP embedding of a plausible target follows the context well. So the choice is
split in two, as DALL-E 2 splits text-to-image into a prior and a decoder:

1. the prior samples an audio-CLAP embedding ``e ~ p(e | CLAP(context mix))``: an instrument and
   role that this context lacks (a bass under drums and keys, a lead over a full band, ...);
2. the latent model generates with ``(context, e)``, guided on both.

The network is the CLAP bridge's diffusion MLP (:class:`~diffariff.clap.bridge.ClapBridge`) with
``condition="context"``: it is conditioned on the audio-CLAP embedding of the context mix instead of a
text embedding. A silent or absent context uses the learned null embedding, i.e. the prior's
unconditional model (also trained with probability ``p_uncond``), which samples CLAP_A*-like
embeddings.

Training pairs (:func:`build_prior_pairs`): draws of :class:`~diffariff.data.pairs.PairSampler` (a
random song, non-vocal target and window; the context a random subset of the other stems), embedded
once: the context mix over the window and the target's *reference clip* (another segment of the same
stem, the clip the latent model's CLAP_A condition was trained on). Part ``k`` of the draws uses
``context_probabilities[k % len]`` as the chance that each other stem joins the context, so sparse
contexts (one or two stems) and nearly complete mixes (a producer asking for the one missing part)
are both covered.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
import torch

from ..audio import is_silent
from ..errors import InputError

#: A context at or below this RMS level (dBFS) counts as absent (the pipeline's silence threshold).
SILENCE_DB = -60.0


@dataclasses.dataclass
class PriorPairs:
    """Embedded training pairs: ``context`` ``[N, D]`` (audio-CLAP of the context mix; rows without a
    context hold zeros), ``target`` ``[N, D]`` (audio-CLAP of the target's reference clip) and
    ``has_context`` bool ``[N]``."""

    context: torch.Tensor
    target: torch.Tensor
    has_context: torch.Tensor

    def __len__(self) -> int:
        return int(self.target.shape[0])

    def tensors(self) -> dict[str, torch.Tensor]:
        return {"context": self.context, "target": self.target, "has_context": self.has_context}

    @classmethod
    def concat(cls, parts: Sequence[PriorPairs]) -> PriorPairs:
        return cls(*(torch.cat([getattr(p, f.name) for p in parts]) for f in dataclasses.fields(cls)))


def embed_pair_items(clap, items: Sequence[dict], sample_rate: int) -> PriorPairs:
    """Embed pair items of :meth:`~diffariff.data.pairs.PairSampler.pair` (``context`` ``[C, N]``,
    ``reference`` ``[C, Nref]`` tensors at ``sample_rate`` Hz) -> :class:`PriorPairs` of ``len(items)``."""
    if not items:
        raise InputError("no pairs to embed")
    ctx = torch.stack([it["context"] for it in items]).float()
    ref = torch.stack([it["reference"] for it in items]).float()
    has = torch.tensor([not is_silent(c.numpy(), SILENCE_DB) for c in ctx])
    target = clap.embed_audio(ref, sample_rate=sample_rate).float()
    context = torch.zeros_like(target)
    if bool(has.any()):
        context[has] = clap.embed_audio(ctx[has], sample_rate=sample_rate).float()
    return PriorPairs(context, target, has)


def context_embedding(clap, context: np.ndarray | None, sample_rate: int) -> torch.Tensor | None:
    """The prior's condition for a context: audio-CLAP ``[1, D]`` of ``context`` ``[C, N]`` at
    ``sample_rate`` Hz, or None (the null condition) for no context or a silent one."""
    if context is None or is_silent(np.asarray(context), SILENCE_DB):
        return None
    audio = np.asarray(context, dtype=np.float32)
    return clap.embed_audio(audio[None] if audio.ndim == 2 else audio[None, None], sample_rate=sample_rate).float()


def sample_for_context(prior, clap, context: np.ndarray | None, sample_rate: int, *, n: int = 1,
                       seed: int | None = 0, guidance: float = 1.0) -> torch.Tensor:
    """``n`` audio-CLAP embeddings ``[n, D]`` (L2-normalised) of stems that fit ``context`` ``[C, N]``
    (None or silent: unconditional samples). ``guidance``: classifier-free guidance on the context
    embedding (1 = plain conditional)."""
    if getattr(prior.config, "condition", "text") != "context":
        raise InputError("this CLAP bridge is not a context prior (its condition is "
                         f"'{prior.config.condition}')")
    cond = context_embedding(clap, context, sample_rate)
    return prior.sample(cond, n_per_text=int(n), seed=seed, guidance=1.0 if cond is None else float(guidance))


def _recall_at(scores: torch.Tensor, k: int) -> float:
    """Share of rows whose diagonal entry is among the row's ``k`` highest scores (``[N, N]``)."""
    top = scores.topk(min(k, scores.shape[1]), dim=1).indices
    return float((top == torch.arange(scores.shape[0]).unsqueeze(1)).any(dim=1).float().mean())


@torch.no_grad()
def evaluate_prior(prior, pairs: PriorPairs, *, samples: int = 4, seed: int = 0) -> dict:
    """How much the context tells the prior about the target, on held-out pairs with a context.

    For each pair, ``samples`` embeddings are drawn from the prior given the pair's context and as many
    from its unconditional model. Reported per source: mean cosine similarity of a sample to the pair's
    true target embedding (``cos_true``) and to the other pairs' targets (``cos_other``, the chance
    level), and retrieval recall@1 / @10 of the true target among all held-out targets, scored by the
    mean similarity of the pair's samples. A context-blind prior scores the same in both rows.
    """
    keep = pairs.has_context
    if int(keep.sum()) < 2:
        raise InputError("evaluate_prior needs at least 2 held-out pairs with a context")
    ctx, tgt = pairs.context[keep], pairs.target[keep]
    n = ctx.shape[0]
    out = {"pairs": int(n), "samples": int(samples)}
    for name, cond in (("context", ctx), ("unconditional", None)):
        if cond is None:
            draws = prior.sample(None, n_per_text=n * samples, seed=seed + 1).reshape(n, samples, -1)
        else:
            draws = prior.sample(cond, n_per_text=samples, seed=seed).reshape(n, samples, -1)
        sim = torch.einsum("nsd,md->nsm", draws, tgt).mean(dim=1)  # [n, n]: pair i's samples vs target j
        diag = sim.diagonal()
        off = (sim.sum() - diag.sum()) / (n * (n - 1))
        out[name] = {"cos_true": round(float(diag.mean()), 4), "cos_other": round(float(off), 4),
                     "recall@1": round(_recall_at(sim, 1), 4), "recall@10": round(_recall_at(sim, 10), 4)}
    return out


def format_prior_report(result: dict) -> str:
    """A Markdown table of :func:`evaluate_prior`'s result."""
    lines = [f"Context prior on {result['pairs']} held-out pairs ({result['samples']} samples each)", "",
             "| samples from | cos(true target) | cos(other targets) | recall@1 | recall@10 |", "|---|---|---|---|---|"]
    for name in ("context", "unconditional"):
        r = result[name]
        lines.append(f"| {name} | {r['cos_true']:.3f} | {r['cos_other']:.3f} | {r['recall@1']:.3f} | {r['recall@10']:.3f} |")
    return "\n".join(lines)
