"""The context prior: sample the CLAP embedding of a stem that fits a context, from the context alone.

Why: the latent model given only a context (Table 1's "ctx" setting, the null CLAP embedding) must
choose *which* instrument and part to play by itself, and a small model does that poorly: its stems
drift between timbres and score like randomly paired stems on APA (docs/experiments.md, "Context prior"), while the
same model given a CLAP embedding of a plausible target follows the context well. So the choice is
split in two, as DALL-E 2 splits text-to-image into a prior and a decoder:

1. the prior samples an audio-CLAP embedding ``e ~ p(e | CLAP(context mix))``: an instrument and
   role that this context lacks (a bass under drums and keys, a lead over a full band, ...);
2. the latent model generates with ``(context, e)``, guided on both.

The network is the CLAP bridge's diffusion MLP (:class:`~diffariff.priors.bridge.ClapBridge`) with
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
from ..audio_spool import is_spooled
from ..data.songs import ROLES as SOURCE_ROLES
from ..data.synth.styles import ROLES as CORPUS_ROLES
from ..errors import InputError

#: A context at or below this RMS level (dBFS) counts as absent (the pipeline's silence threshold).
SILENCE_DB = -60.0
#: Role vocabulary of :attr:`PriorPairs.role`: the dataset roles, then the built-in corpus's own
#: ("arpeggio", "counter-melody"). Append only: stored parts hold indices into it.
ROLE_NAMES = tuple(dict.fromkeys(SOURCE_ROLES + CORPUS_ROLES))


@dataclasses.dataclass
class PriorPairs:
    """Embedded training pairs: ``context`` ``[N, D]`` (audio-CLAP of the context mix; rows without a
    context hold zeros), ``target`` ``[N, D]`` (audio-CLAP of the target's reference clip),
    ``has_context`` bool ``[N]`` and ``role`` int64 ``[N]``: the target's role as an index into
    :data:`ROLE_NAMES`, -1 when unknown."""

    context: torch.Tensor
    target: torch.Tensor
    has_context: torch.Tensor
    role: torch.Tensor | None = None

    def __post_init__(self) -> None:
        if self.role is None:
            self.role = torch.full((self.target.shape[0],), -1, dtype=torch.long)

    def __len__(self) -> int:
        return int(self.target.shape[0])

    def tensors(self) -> dict[str, torch.Tensor]:
        return {"context": self.context, "target": self.target, "has_context": self.has_context, "role": self.role}

    @classmethod
    def concat(cls, parts: Sequence[PriorPairs]) -> PriorPairs:
        return cls(*(torch.cat([getattr(p, f.name) for p in parts]) for f in dataclasses.fields(cls)))


def embed_pair_items(clap, items: Sequence[dict], sample_rate: int) -> PriorPairs:
    """Embed pair items of :meth:`~diffariff.data.pairs.PairSampler.pair` (``context`` ``[C, N]``,
    ``reference`` ``[C, Nref]`` tensors at ``sample_rate`` Hz; ``target_role`` a role name, optional)
    -> :class:`PriorPairs` of ``len(items)``."""
    if not items:
        raise InputError("no pairs to embed")
    ctx = torch.stack([it["context"] for it in items]).float()
    ref = torch.stack([it["reference"] for it in items]).float()
    has = torch.tensor([not is_silent(c.numpy(), SILENCE_DB) for c in ctx])
    target = clap.embed_audio(ref, sample_rate=sample_rate).float()
    context = torch.zeros_like(target)
    if bool(has.any()):
        context[has] = clap.embed_audio(ctx[has], sample_rate=sample_rate).float()
    role = torch.tensor([role_index(it.get("target_role")) for it in items], dtype=torch.long)
    return PriorPairs(context, target, has, role)


def role_index(name: str | None) -> int:
    """Index of role ``name`` in :data:`ROLE_NAMES`; -1 for None or an unknown role."""
    return ROLE_NAMES.index(name) if name in ROLE_NAMES else -1


def class_index(role: torch.Tensor, ids: Sequence[int]) -> torch.Tensor:
    """Position of each role index of ``role`` ``[N]`` in ``ids`` (int64 ``[N]``), -1 where absent."""
    return torch.tensor([ids.index(r) if r in ids else -1 for r in role.tolist()], dtype=torch.long)


def role_centroids(pairs: PriorPairs, min_count: int = 5) -> tuple[torch.Tensor, list[int]]:
    """Mean target embedding of each role with at least ``min_count`` pairs, L2-normalised: ``[R, D]``
    and the R role indices (into :data:`ROLE_NAMES`) they stand for. A nearest-centroid classifier
    over these names the role of a sampled embedding."""
    rows, ids = [], []
    for r in sorted(set(pairs.role.tolist()) - {-1}):
        mask = pairs.role == r
        if int(mask.sum()) >= min_count:
            rows.append(torch.nn.functional.normalize(pairs.target[mask].mean(0), dim=0))
            ids.append(int(r))
    if not rows:
        raise InputError(f"no role has {min_count} or more pairs")
    return torch.stack(rows), ids


#: Contexts with more CLAP windows than this are embedded window batch by window batch.
LONG_CONTEXT_WINDOWS = 16


def context_embedding(clap, context: np.ndarray | None, sample_rate: int) -> torch.Tensor | None:
    """The prior's condition for a context: audio-CLAP ``[1, D]`` of ``context`` ``[C, N]`` at
    ``sample_rate`` Hz (an array, or a :class:`~diffariff.audio_spool.SpooledAudio`), or None (the null
    condition) for no context or a silent one. A context longer than :data:`LONG_CONTEXT_WINDOWS` CLAP
    windows is embedded a batch of windows at a time (``clap.embed_long_audio``): bounded memory."""
    if context is None or is_silent(context, SILENCE_DB):
        return None
    windows = context.shape[-1] / sample_rate / float(clap.config.window_seconds)
    if is_spooled(context) or (getattr(context, "ndim", 1) == 2 and windows > LONG_CONTEXT_WINDOWS):
        return clap.embed_long_audio(context, sample_rate=sample_rate).float()
    audio = np.asarray(context, dtype=np.float32)
    return clap.embed_audio(audio[None] if audio.ndim == 2 else audio[None, None], sample_rate=sample_rate).float()


def require_context_prior(prior, what: str = "this CLAP bridge") -> None:
    """InputError unless ``prior`` (a :class:`~diffariff.priors.bridge.ClapBridge`) is conditioned on a
    context embedding; ``what`` names it in the message."""
    condition = getattr(prior.config, "condition", "text")
    if condition != "context":
        raise InputError(f"{what} is not a context prior (its condition is '{condition}')")


def default_guidance(prior) -> float:
    """The guidance a context prior samples with when the caller names none: its config's ``guidance``
    (a neighbour prior records the strength it was measured best at), else 1 (plain conditional)."""
    return float(getattr(prior.config, "guidance", 1.0))


def sample_for_context(prior, clap, context: np.ndarray | None, sample_rate: int, *, n: int = 1,
                       seed: int | None = 0, guidance: float | None = None) -> torch.Tensor:
    """``n`` audio-CLAP embeddings ``[n, D]`` (L2-normalised) of stems that fit ``context`` ``[C, N]``
    (None or silent: unconditional samples). ``guidance``: classifier-free guidance on the context
    embedding (1 = plain conditional; None: :func:`default_guidance`)."""
    require_context_prior(prior)
    guidance = default_guidance(prior) if guidance is None else guidance
    cond = context_embedding(clap, context, sample_rate)
    return prior.sample(cond, n_per_text=int(n), seed=seed, guidance=1.0 if cond is None else float(guidance))


def _recall_at(scores: torch.Tensor, k: int) -> float:
    """Share of rows whose diagonal entry is among the row's ``k`` highest scores (``[N, N]``)."""
    top = scores.topk(min(k, scores.shape[1]), dim=1).indices
    return float((top == torch.arange(scores.shape[0]).unsqueeze(1)).any(dim=1).float().mean())


@torch.no_grad()
def evaluate_prior(prior, pairs: PriorPairs, *, samples: int = 4, seed: int = 0,
                   centroids: tuple[torch.Tensor, list[int]] | None = None, guidance: float = 1.0) -> dict:
    """How much the context tells the prior about the target, on held-out pairs with a context.

    For each pair, ``samples`` embeddings are drawn from the prior given the pair's context and as many
    from its unconditional model. Reported per source: mean cosine similarity of a sample to the pair's
    true target embedding (``cos_true``) and to the other pairs' targets (``cos_other``, the chance
    level), and retrieval recall@1 / @10 of the true target among all held-out targets, scored by the
    mean similarity of the pair's samples. A context-blind prior scores the same in both rows.

    With ``centroids`` (:func:`role_centroids` of the *training* pairs), ``role_acc`` is the share of
    samples whose nearest centroid is the true target's role (pairs of a known, centroid-covered role
    only), and ``role_acc_true_target`` the same classifier on the true target embeddings: its ceiling.
    ``guidance``: classifier-free guidance of the context samples (1 = plain conditional).
    """
    keep = pairs.has_context
    if int(keep.sum()) < 2:
        raise InputError("evaluate_prior needs at least 2 held-out pairs with a context")
    require_context_prior(prior)
    ctx, tgt = pairs.context[keep], pairs.target[keep]
    n = ctx.shape[0]
    out = {"pairs": int(n), "samples": int(samples)}
    role = pairs.role[keep]
    if centroids is not None:
        cents, ids = centroids
        true_class = class_index(role, ids)
        known = true_class >= 0
        out["role_pairs"] = int(known.sum())
        out["role_acc_true_target"] = round(float(((tgt[known] @ cents.T).argmax(1) == true_class[known])
                                                  .float().mean()), 4) if bool(known.any()) else None
    for name, cond in (("context", ctx), ("unconditional", None)):
        if cond is None:
            draws = prior.sample(None, n_per_text=n * samples, seed=seed + 1).reshape(n, samples, -1)
        else:
            draws = prior.sample(cond, n_per_text=samples, seed=seed, guidance=float(guidance)).reshape(n, samples, -1)
        sim = torch.einsum("nsd,md->nsm", draws, tgt).mean(dim=1)  # [n, n]: pair i's samples vs target j
        diag = sim.diagonal()
        off = (sim.sum() - diag.sum()) / (n * (n - 1))
        out[name] = {"cos_true": round(float(diag.mean()), 4), "cos_other": round(float(off), 4),
                     "recall@1": round(_recall_at(sim, 1), 4), "recall@10": round(_recall_at(sim, 10), 4)}
        if centroids is not None:
            guess = (draws[known] @ cents.T).argmax(-1)  # [n_known, samples]
            out[name]["role_acc"] = (round(float((guess == true_class[known, None]).float().mean()), 4)
                                     if bool(known.any()) else None)
    return out


def fit_role_classifier(x: torch.Tensor, y: torch.Tensor, classes: int, *, steps: int = 1500, lr: float = 1e-2,
                        l2: float = 1e-4, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Multinomial logistic regression of class ``y`` int64 ``[N]`` (0..classes-1) on ``x`` ``[N, D]``:
    full-batch Adam on cross-entropy + ``l2`` * |W|^2. Returns ``weight`` ``[D, classes]``, ``bias`` ``[classes]``."""
    gen = torch.Generator().manual_seed(int(seed))
    weight = (0.01 * torch.randn(x.shape[1], int(classes), generator=gen)).requires_grad_()
    bias = torch.zeros(int(classes), requires_grad=True)
    opt = torch.optim.Adam([weight, bias], lr=lr)
    with torch.enable_grad():
        for _ in range(int(steps)):
            loss = torch.nn.functional.cross_entropy(x @ weight + bias, y) + l2 * weight.pow(2).sum()
            opt.zero_grad()
            loss.backward()
            opt.step()
    return weight.detach(), bias.detach()


def context_role_probe(train: PriorPairs, held_out: PriorPairs, *, k: int = 25, steps: int = 1500,
                       seed: int = 0) -> dict:
    """How much the context embedding alone says about the target's role: held-out accuracy of a linear
    probe (multinomial logistic regression on the context embedding, trained on ``train``), of a
    ``k``-nearest-neighbour vote (cosine) and of always guessing the majority role. Only pairs with a
    context and a known role count; a prior sampling roles cannot beat the probe by much."""
    def usable(p: PriorPairs) -> tuple[torch.Tensor, torch.Tensor]:
        keep = p.has_context & (p.role >= 0)
        return p.context[keep], p.role[keep]

    x, y_role = usable(train)
    xe, ye_role = usable(held_out)
    if x.shape[0] < 2 or xe.shape[0] < 1:
        raise InputError("the role probe needs training and held-out pairs with a context and a known role")
    roles = sorted(set(y_role.tolist()))
    y, ye = class_index(y_role, roles), class_index(ye_role, roles)
    weight, bias = fit_role_classifier(x, y, len(roles), steps=steps, seed=seed)
    with torch.no_grad():
        linear = float(((xe @ weight + bias).argmax(1) == ye).float().mean())
        linear_train = float(((x @ weight + bias).argmax(1) == y).float().mean())
        nearest = (torch.nn.functional.normalize(xe, dim=1) @ torch.nn.functional.normalize(x, dim=1).T)
        votes = y[nearest.topk(min(int(k), x.shape[0]), dim=1).indices]
        knn = float((torch.mode(votes, dim=1).values == ye).float().mean())
    majority = float((ye == torch.bincount(y).argmax()).float().mean())
    return {"pairs": int(xe.shape[0]), "train_pairs": int(x.shape[0]), "linear": round(linear, 4),
            "linear_train": round(linear_train, 4), f"knn{int(k)}": round(knn, 4), "majority": round(majority, 4)}


def format_prior_report(result: dict) -> str:
    """A Markdown table of :func:`evaluate_prior`'s result."""
    def fmt(value) -> str:
        return "–" if value is None else f"{value:.3f}"

    lines = [f"Context prior on {result['pairs']} held-out pairs ({result['samples']} samples each)", "",
             "| samples from | cos(true target) | cos(other targets) | recall@1 | recall@10 | role accuracy |",
             "|---|---|---|---|---|---|"]
    for name in ("context", "unconditional"):
        r = result[name]
        lines.append(f"| {name} | {r['cos_true']:.3f} | {r['cos_other']:.3f} | {r['recall@1']:.3f} | "
                     f"{r['recall@10']:.3f} | {fmt(r.get('role_acc'))} |")
    if "role_acc_true_target" in result:
        lines += ["", f"Role accuracy of the nearest-centroid classifier on the true targets (its ceiling): "
                      f"{fmt(result['role_acc_true_target'])} over {result['role_pairs']} pairs."]
    return "\n".join(lines)
