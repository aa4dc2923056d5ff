"""Build a latent network (DiT or 1-D U-Net) from its kind and config, as stored in a checkpoint."""

from __future__ import annotations

from torch import nn

from ..checkpoint import config_from_dict
from ..errors import ConfigError
from .dit import DiT, DiTConfig
from .unet1d import UNet1d, UNetConfig

NET_KINDS = ("dit", "unet1d")


def build_net(kind: str, config: dict | DiTConfig | object) -> nn.Module:
    """Build a latent network from its kind ("dit" or "unet1d") and a config dataclass or a plain
    dict (as read from ``configs/*.json`` or a checkpoint; unknown keys are a ConfigError)."""
    classes = {"dit": (DiTConfig, DiT), "unet1d": (UNetConfig, UNet1d)}
    if kind not in classes:
        raise ConfigError(f"unknown network kind '{kind}' (choose from {', '.join(NET_KINDS)})")
    cfg_cls, net_cls = classes[kind]
    cfg = config_from_dict(cfg_cls, config) if isinstance(config, dict) else config
    if not isinstance(cfg, cfg_cls):
        raise ConfigError(f"a '{kind}' network needs a {cfg_cls.__name__}, got {type(config).__name__}")
    return net_cls(cfg)
