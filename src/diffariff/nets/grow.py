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
