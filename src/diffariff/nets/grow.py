"""Deepen a trained DiT without changing what it computes (function-preserving growth).

A DiT block adds ``gate * f(modulate(norm(x)))`` to its input twice (attention, MLP), and its AdaLN-Zero
projection gives the gates. A block whose two gate rows are zero is the identity, whatever its other
weights. So a network of depth ``D`` becomes one of depth ``N > D`` that returns exactly the same output:
the ``D`` trained blocks keep their order and weights, and each new block is a copy of the trained block
just before it with its gates zeroed. The copy (rather than a random block) gives the new block's
attention and MLP weights that already work on the residual stream at that depth, so it contributes
something sensible as soon as training opens its gates (the stacking idea of progressive growing).

Placement spreads the new blocks evenly: block ``i`` of the grown network copies trained block
``floor(i D / N)``; the first occurrence of each source is the trained block itself.

Widening the context input (:func:`widen_context_state`) is the same idea for a new input: a DiT or
1-D U-Net whose context has ``Cc`` channels becomes one with ``Cc + k`` (e.g. the 12 chroma channels of
a ``context_chroma`` latent model) whose input projection sees the new channels through zero weights,
so it computes exactly the trained function until training opens them.
"""

from __future__ import annotations

import re

import torch

from ..errors import ConfigError
from .dit import DiTBlock

#: state-dict key of a DiT block parameter: (prefix up to ``blocks.``, block index, rest of the key)
_BLOCK_KEY = re.compile(r"^(.*\bblocks\.)(\d+)(\..+)$")
#: indices of the gate chunks of a block's AdaLN projection
_GATES = tuple(i for i, name in enumerate(DiTBlock.ADA_CHUNKS) if name.startswith("gate"))


def growth_plan(old_depth: int, new_depth: int) -> list[tuple[int, bool]]:
    """For each block of the grown network: (index of the trained block it copies, True when it is
    a new, gated-off copy). ``old_depth >= 1``, ``new_depth >= old_depth``."""
    if old_depth < 1 or new_depth < old_depth:
        raise ConfigError(f"a DiT of depth {old_depth} can only grow to a depth >= {old_depth}, got {new_depth}")
    plan, seen = [], set()
    for i in range(new_depth):
        src = i * old_depth // new_depth
        plan.append((src, src in seen))
        seen.add(src)
    return plan


def grow_dit_state(state: dict[str, torch.Tensor], old_depth: int, new_depth: int) -> dict[str, torch.Tensor]:
    """The state dict of a DiT (or of a module holding one: any ``...blocks.<i>.`` keys) of depth
    ``old_depth`` -> that of depth ``new_depth`` computing the same function (module docstring).

    Non-block tensors are passed through. A new block's ``ada.proj`` weight ``[6 W, cond]`` and bias
    ``[6 W]`` get their two gate chunks zeroed; every tensor is a copy, never shared with ``state``."""
    blocks: dict[int, dict[str, tuple[str, torch.Tensor]]] = {}
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        m = _BLOCK_KEY.match(key)
        if m is None:
            out[key] = value.clone()
        else:
            blocks.setdefault(int(m.group(2)), {})[m.group(3)] = (m.group(1), value)
    if sorted(blocks) != list(range(old_depth)):
        raise ConfigError(f"expected DiT blocks 0..{old_depth - 1} in the state dict, found {sorted(blocks)}")
    for i, (src, gated_off) in enumerate(growth_plan(old_depth, new_depth)):
        for rest, (prefix, value) in blocks[src].items():
            value = value.clone()
            if gated_off and rest.startswith(".ada.proj."):
                width = value.shape[0] // len(DiTBlock.ADA_CHUNKS)
                for g in _GATES:
                    value[g * width: (g + 1) * width] = 0
            out[f"{prefix}{i}{rest}"] = value
    return out


#: state-dict key suffixes of the context input: the learned null context [Cc] and the first layer
#: (DiT ``proj_in`` [W, C + Cc + 1], U-Net ``conv_in`` [W, C + Cc + 1, k]: inputs on dim 1)
_NULL_CONTEXT = "context_in.null_context"
_INPUT_LAYERS = ("proj_in.weight", "conv_in.weight")


def widen_context_state(state: dict[str, torch.Tensor], latent_channels: int, old_context: int,
                        new_context: int) -> dict[str, torch.Tensor]:
    """The state dict of a DiT or 1-D U-Net (or of a module holding one) whose context input has
    ``old_context`` channels -> that of the same network with ``new_context`` >= ``old_context``
    context channels, computing the same function (module docstring): the new channels follow the old
    ones (before the context-present indicator); the first layer's weights for them and their entries
    of the null context are zero. Every tensor is a copy, never shared with ``state``."""
    if new_context < old_context:
        raise ConfigError(f"a context input of {old_context} channels can only widen, got {new_context}")
    extra, at = new_context - old_context, latent_channels + old_context
    out: dict[str, torch.Tensor] = {}
    seen = {"null": 0, "input": 0}
    for key, value in state.items():
        value = value.clone()
        if key.endswith(_NULL_CONTEXT):
            if value.shape != (old_context,):
                raise ConfigError(f"{key} has shape {list(value.shape)}, expected [{old_context}]")
            value = torch.cat([value, value.new_zeros(extra)])
            seen["null"] += 1
        elif key.endswith(_INPUT_LAYERS):
            if value.ndim < 2 or value.shape[1] != at + 1:
                raise ConfigError(f"{key} has shape {list(value.shape)}, expected {at + 1} inputs on dim 1")
            zeros = value.new_zeros(value.shape[0], extra, *value.shape[2:])
            value = torch.cat([value[:, :at], zeros, value[:, at:]], dim=1)
            seen["input"] += 1
        out[key] = value
    if seen != {"null": 1, "input": 1}:
        raise ConfigError(f"expected one context input (null context and first layer) in the state dict, found {seen}")
    return out
