"""Pure networks (tensors in, tensors out): the DiT and 1-D U-Net latent denoisers and their layers."""

from .build import NET_KINDS, build_net
from .dit import DiT, DiTConfig
from .unet1d import UNet1d, UNetConfig

__all__ = ["NET_KINDS", "DiT", "DiTConfig", "UNet1d", "UNetConfig", "build_net"]
