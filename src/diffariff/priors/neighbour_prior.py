"""The neighbour prior: a context prior that picks the missing part's role, then a real stem of that role.

Why: the diffusion context prior (:mod:`diffariff.priors.context_prior`) names the role of
the part a full context lacks no better than always guessing the commonest role (role accuracy 0.21 of
its samples, majority 0.24), while a linear probe on the same context embedding names it 0.55 of the
time, and the best any rule could do from the exact set of roles in the context is 0.68 (argmax) /
0.57 (sampling the true posterior) on the corpus's song plans. The information is in the condition;
the diffusion MLP does not use it. This prior splits the choice the way the data is made:

1. **role**: a linear classifier (multinomial logistic regression on the context's audio-CLAP
   embedding, trained with cross-entropy on the embedded training pairs) gives ``p(role | context)``;
   a role is sampled from ``p_g(role) ∝ p(role)^(1-g) * p(role | context)^g`` — the classifier-free
   guidance rule in log space: ``g = 0`` samples the marginal, ``g = 1`` the plain posterior, ``g > 1``
   sharpens it toward the most likely role;
2. **stem**: among the training pairs whose target has that role, the ``k`` whose contexts are most
   similar (cosine) to the query context; one is drawn with probability ``softmax(cos / temperature)``
   and its target's reference-clip embedding is returned. Similar contexts share style, tempo and
   register, so the stem's timbre follows the song (a bank row is a real embedding, on the manifold
   the latent model was trained on, not a sample that may fall between instruments).

Without a context it samples a uniformly random bank row's target (the marginal). It has the diffusion
prior's interface (``config.condition == "context"``, :meth:`NeighbourPrior.sample`), so
:func:`~diffariff.priors.context_prior.sample_for_context`, :func:`~diffariff.priors.context_prior.evaluate_prior`,
the bundle and the Accompanist use either.

Tensors (fp16 on disk): ``context`` ``[N, D]`` and ``target`` ``[N, D]`` (L2-normalised audio-CLAP
embeddings of the bank's context mixes and target reference clips), ``role`` int64 ``[N]`` (class
index into ``config.roles``), the classifier's ``weight`` ``[D, R]`` and ``bias`` ``[R]`` and the
marginal ``role_prior`` ``[R]``.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import torch

from ..checkpoint import config_from_dict, file_sha256, load_checkpoint, save_checkpoint
from ..errors import ConfigError, InputError
from ..torchutil import seeded_generator
from .context_prior import ROLE_NAMES, PriorPairs, class_index, fit_role_classifier

KIND = "neighbour-prior"


@dataclasses.dataclass
class NeighbourPriorConfig:
    """``dim``: CLAP embedding width; ``k``: neighbours (of the sampled role) a stem is drawn from;
    ``temperature``: softmax temperature over their cosine similarities to the query context;
    ``route_by_role``: sample a role first (False: the ``k`` nearest contexts of any role);
    ``guidance``: the role guidance ``g`` used when a caller names none
    (:func:`~diffariff.priors.context_prior.default_guidance`);
    ``roles``: the role indices (into :data:`~diffariff.priors.context_prior.ROLE_NAMES`) the
    classifier's classes stand for; ``clap_sha256``: the CLAP file the bank was embedded with;
    ``condition``: always ``"context"`` (what marks a context prior)."""

    dim: int = 512
    k: int = 16
    temperature: float = 0.05
    route_by_role: bool = True
    guidance: float = 4.0
    roles: tuple[int, ...] = ()
    clap_sha256: str = ""
    condition: str = "context"

    def __post_init__(self) -> None:
        if self.dim < 1 or self.k < 1 or not self.temperature > 0 or not self.guidance >= 0:
            raise ConfigError("need dim >= 1, k >= 1, temperature > 0 and guidance >= 0")
        if self.condition != "context":
            raise ConfigError(f"a neighbour prior is conditioned on 'context', not '{self.condition}'")
        if any(not 0 <= r < len(ROLE_NAMES) for r in self.roles):
            raise ConfigError(f"roles must index ROLE_NAMES (0..{len(ROLE_NAMES) - 1})")


class NeighbourPrior(torch.nn.Module):
    """A context prior made of a role classifier and a bank of embedded training pairs (module doc)."""

    def __init__(self, config: NeighbourPriorConfig, context: torch.Tensor, target: torch.Tensor, role: torch.Tensor,
                 weight: torch.Tensor, bias: torch.Tensor, role_prior: torch.Tensor) -> None:
        super().__init__()
        n, d = target.shape
        r = len(config.roles)
        shapes = {"context": (context.shape, (n, d)), "weight": (weight.shape, (d, r)), "bias": (bias.shape, (r,)),
                  "role": (role.shape, (n,)), "role_prior": (role_prior.shape, (r,))}
        bad = [f"{k} {tuple(have)} (expected {want})" for k, (have, want) in shapes.items() if tuple(have) != want]
        if d != config.dim or bad or n < 1 or r < 1:
            raise ConfigError(f"neighbour prior tensors do not fit its config (dim {config.dim}, {r} roles): "
                              + ", ".join(bad or [f"target {tuple(target.shape)}"]))
        if int(role.min()) < 0 or int(role.max()) >= r:
            raise ConfigError("every bank row needs a role among config.roles")
        self.config = config
        norm = torch.nn.functional.normalize
        self.register_buffer("context", norm(context.float(), dim=1))
        self.register_buffer("target", norm(target.float(), dim=1))
        self.register_buffer("role", role.long())
        self.register_buffer("weight", weight.float())
        self.register_buffer("bias", bias.float())
        self.register_buffer("role_prior", role_prior.float() / role_prior.float().sum())
        #: bool [R]: roles with at least one bank row (derived, not stored)
        self.in_bank = torch.bincount(self.role, minlength=r) > 0

    # ---- building ----------------------------------------------------------------------------------

    @classmethod
    def build(cls, pairs: PriorPairs, config: NeighbourPriorConfig | None = None, *, max_rows: int | None = None,
              classifier_steps: int = 1500, seed: int = 0) -> NeighbourPrior:
        """A prior from embedded training pairs: the rows with a context and a known role (at most
        ``max_rows`` of them, a seeded subset) form the bank; the classifier is fitted on all of them.
        ``config.roles`` is set to the roles present."""
        config = config or NeighbourPriorConfig(dim=int(pairs.target.shape[1]))
        keep = pairs.has_context & (pairs.role >= 0)
        if int(keep.sum()) < 2:
            raise InputError("a neighbour prior needs at least 2 pairs with a context and a known role")
        ctx = torch.nn.functional.normalize(pairs.context[keep].float(), dim=1)
        tgt, role_ids = pairs.target[keep].float(), pairs.role[keep]
        roles = sorted(set(role_ids.tolist()))
        y = class_index(role_ids, roles)
        weight, bias = fit_role_classifier(ctx, y, len(roles), steps=classifier_steps, seed=seed)
        role_prior = torch.bincount(y, minlength=len(roles)).float()
        if max_rows is not None and ctx.shape[0] > max_rows:
            rows = torch.randperm(ctx.shape[0], generator=torch.Generator().manual_seed(int(seed)))[:int(max_rows)]
            rows = rows.sort().values
            ctx, tgt, y = ctx[rows], tgt[rows], y[rows]
        config = dataclasses.replace(config, dim=int(tgt.shape[1]), roles=tuple(int(r) for r in roles))
        return cls(config, ctx, tgt, y, weight, bias, role_prior)

    def bank_pairs(self) -> PriorPairs:
        """The bank as :class:`~diffariff.priors.context_prior.PriorPairs` (roles as indices into
        ``ROLE_NAMES``, every row with a context): what :meth:`build` takes, so a bank can be grown with
        more pairs and rebuilt (its classifier refitted on all rows)."""
        roles = torch.as_tensor(self.config.roles, dtype=torch.long)[self.role]
        return PriorPairs(self.context, self.target, torch.ones(len(roles), dtype=torch.bool), roles)

    # ---- sampling ----------------------------------------------------------------------------------

    def role_probabilities(self, context: torch.Tensor, guidance: float = 1.0) -> torch.Tensor:
        """``p_g(role | context)`` ``[B, R]`` for context embeddings ``[B, D]`` (module doc, step 1); roles
        without a bank row (possible in a ``max_rows`` subset) get probability 0."""
        log_post = torch.log_softmax(torch.nn.functional.normalize(context.float(), dim=1) @ self.weight + self.bias, 1)
        log_prior = torch.log(self.role_prior.clamp_min(1e-12))
        logits = (1.0 - guidance) * log_prior + guidance * log_post
        return torch.softmax(logits.masked_fill(~self.in_bank, float("-inf")), dim=1)

    @torch.no_grad()
    def sample(self, context: torch.Tensor | None, *, n_per_text: int = 1, guidance: float = 1.0,
               seed: int | None = 0) -> torch.Tensor:
        """Audio-CLAP embeddings of fitting stems.

        Args:
            context: audio-CLAP embeddings of context mixes ``[B, D]``, or None (then B = 1: samples
                of the bank's marginal).
            n_per_text: samples per context; rows ``i * n .. (i + 1) * n - 1`` belong to context ``i``.
            guidance: strength on the context's role posterior (1 = plain posterior, 0 = the marginal).
            seed: same seed, same inputs -> same output (None = fresh randomness).
        Returns: L2-normalised embeddings ``[B * n_per_text, D]`` float32 (real bank rows).
        """
        if n_per_text < 1:
            raise InputError(f"n_per_text must be >= 1, got {n_per_text}")
        if not guidance >= 0:
            raise InputError(f"guidance must be >= 0, got {guidance}")
        gen = seeded_generator(seed)
        n = int(n_per_text)
        if context is None:
            rows = torch.randint(0, self.target.shape[0], (n,), generator=gen)
            return self.target[rows].clone()
        context = context.float()
        if context.ndim != 2 or context.shape[1] != self.config.dim:
            raise InputError(f"context embeddings must be [B, {self.config.dim}], got {tuple(context.shape)}")
        query = torch.nn.functional.normalize(context, dim=1)
        sims = query @ self.context.T  # [B, N]
        if self.config.route_by_role:
            chosen = torch.multinomial(self.role_probabilities(query, guidance), n, replacement=True, generator=gen)
        else:
            chosen = torch.full((query.shape[0], n), -1, dtype=torch.long)
        out = []
        for b in range(query.shape[0]):
            for c in chosen[b].tolist():
                s = sims[b] if c < 0 else sims[b].masked_fill(self.role != c, float("-inf"))
                top = s.topk(min(self.config.k, int(torch.isfinite(s).sum()))).indices
                pick = torch.multinomial(torch.softmax(s[top] / self.config.temperature, 0), 1, generator=gen)
                out.append(self.target[top[pick]])
        return torch.cat(out).clone()

    # ---- persistence -------------------------------------------------------------------------------

    def save(self, path: str | os.PathLike, extra: dict | None = None) -> Path:
        """Write the bank, the classifier and the config to one fp16 ``.safetensors`` file (atomically)."""
        return save_checkpoint(path, self.state_dict(), kind=KIND, config=self.config, extra=extra, dtype=torch.float16)

    @classmethod
    def load(cls, path: str | os.PathLike) -> NeighbourPrior:
        """Rebuild a prior saved with :meth:`save`. Raises CheckpointError / ConfigError."""
        ckpt = load_checkpoint(path, kind=KIND)
        config = config_from_dict(NeighbourPriorConfig, ckpt.config)
        t = ckpt.tensors
        try:
            return cls(config, t["context"], t["target"], t["role"], t["weight"], t["bias"], t["role_prior"]).eval()
        except KeyError as exc:
            raise ConfigError(f"{path}: neighbour prior lacks tensor {exc}") from None

    def check_clap(self, clap_path: str | os.PathLike) -> bool:
        """True when the CLAP checkpoint at ``clap_path`` is the one the bank was embedded with (or
        the prior does not record one)."""
        return not self.config.clap_sha256 or file_sha256(clap_path) == self.config.clap_sha256

    def num_parameters(self) -> int:
        """Stored numbers (the bank and the classifier; nothing is trained by gradient but the classifier)."""
        return sum(b.numel() for b in self.buffers())
