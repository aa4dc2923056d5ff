"""Low-rank adapters (LoRA, Hu et al. 2021) on a network's linear layers, merged back for export.

A :class:`LoRALinear` wraps a frozen ``nn.Linear`` (weight W [out, in], bias b [out]) and adds a
trainable low-rank update: ``y = x W^T + b + (alpha / rank) * (x A^T) B^T`` with A [rank, in]
(Kaiming-uniform) and B [out, rank] (zeros), so a freshly adapted network computes exactly what the
original did. :func:`merge_lora` folds the update into the weight, ``W' = W + (alpha / rank) B A``, and
puts plain ``nn.Linear`` layers back: the result has the original state-dict keys and shapes and is
saved as an ordinary checkpoint.

The DiT's adapted layers (:data:`DIT_TARGETS`) are those of every block's attention (``attn.qkv``,
``attn.out``) and MLP (``mlp.0``, ``mlp.2``); not the small MLP of the attention's positional bias,
nor the conditioning and AdaLN projections.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError

#: Patterns (regular expressions) of the names of the DiT's linear layers that get adapters, matched at
#: the end of a module name and after a dot: every block's attention in / out and MLP in / out.
DIT_TARGETS = (r"blocks\.\d+\.attn\.qkv", r"blocks\.\d+\.attn\.out", r"blocks\.\d+\.mlp\.0", r"blocks\.\d+\.mlp\.2")


class LoRALinear(nn.Module):
    """``base`` (frozen) plus a rank-``rank`` update scaled by ``alpha / rank``; ``[..., in] -> [..., out]``."""

    def __init__(self, base: nn.Linear, rank: int, alpha: float | None = None):
        super().__init__()
        if rank < 1:
            raise ConfigError(f"LoRA rank must be >= 1, got {rank}")
        self.base = base.requires_grad_(False)
        self.rank = int(rank)
        self.scale = float(alpha if alpha is not None else rank) / self.rank
        w = base.weight
        self.lora_a = nn.Parameter(torch.empty(self.rank, base.in_features, dtype=w.dtype, device=w.device))
        self.lora_b = nn.Parameter(torch.zeros(base.out_features, self.rank, dtype=w.dtype, device=w.device))
        nn.init.kaiming_uniform_(self.lora_a, a=math.sqrt(5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        update = F.linear(F.linear(x, self.lora_a.to(x.dtype)), self.lora_b.to(x.dtype))
        return self.base(x) + self.scale * update

    def delta_weight(self) -> torch.Tensor:
        """The update of the weight, ``(alpha / rank) B A`` [out, in]."""
        return self.scale * (self.lora_b @ self.lora_a)

    @torch.no_grad()
    def merged(self) -> nn.Linear:
        """A plain ``nn.Linear`` computing this layer's function (weight W + delta, same bias)."""
        base = self.base
        out = nn.Linear(base.in_features, base.out_features, bias=base.bias is not None,
                        device=base.weight.device, dtype=base.weight.dtype)
        out.weight.copy_(base.weight + self.delta_weight().to(base.weight.dtype))
        if base.bias is not None:
            out.bias.copy_(base.bias)
        return out


def _matches(name: str, targets: Sequence[str]) -> bool:
    return any(re.search(rf"(^|\.){t}$", name) for t in targets)


def _set_child(root: nn.Module, name: str, module: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    setattr(root.get_submodule(parent_name) if parent_name else root, child, module)


def add_lora(model: nn.Module, rank: int, alpha: float | None = None,
             targets: Sequence[str] = DIT_TARGETS) -> list[str]:
    """In place: freeze every parameter of ``model`` and wrap each ``nn.Linear`` whose name ends with
    one of the patterns ``targets`` in a :class:`LoRALinear` (only the adapters' A and B stay trainable). Returns
    the adapted layers' names; ConfigError when none matches (e.g. a U-Net has no such layers)."""
    names = [n for n, m in model.named_modules() if isinstance(m, nn.Linear) and _matches(n, targets)]
    if not names:
        raise ConfigError("no linear layer to adapt: LoRA fine-tuning needs a DiT")
    model.requires_grad_(False)
    for name in names:
        _set_child(model, name, LoRALinear(model.get_submodule(name), rank, alpha))
    return names


def merge_lora(model: nn.Module) -> int:
    """In place: replace every :class:`LoRALinear` of ``model`` by its merged ``nn.Linear`` (trainable
    again like any plain layer). Returns how many were merged."""
    names = [n for n, m in model.named_modules() if isinstance(m, LoRALinear)]
    for name in names:
        merged = model.get_submodule(name).merged()
        _set_child(model, name, merged)
    return len(names)


def lora_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The adapters' parameters (A and B of every :class:`LoRALinear`)."""
    return [p for m in model.modules() if isinstance(m, LoRALinear) for p in (m.lora_a, m.lora_b)]
