"""The consistency autoencoder (codec): audio at 48 kHz <-> 64-channel latents at 11.72 Hz."""

from .config import CodecConfig
from .model import Codec

__all__ = ["Codec", "CodecConfig"]
