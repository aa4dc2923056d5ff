"""Codecs: audio at 48 kHz <-> latents.

* :class:`Codec` - the first codec (consistency autoencoder over a compressed STFT, 64 channels at 11.72 Hz);
* :class:`SynthCodec` - codec v2 (pitch-resolving encoder, oscillator-bank + noise decoder, 64 channels at
  23.4 Hz by default).

:func:`load_codec` opens either from its checkpoint, told apart by the checkpoint's kind.
"""

from __future__ import annotations

import os

from .config import CodecConfig
from .model import Codec
from .synth_codec import SynthCodec, SynthCodecConfig

__all__ = ["Codec", "CodecConfig", "SynthCodec", "SynthCodecConfig", "load_codec"]


def load_codec(path: str | os.PathLike) -> Codec | SynthCodec:
    """Load a codec checkpoint of either kind (CheckpointError for anything else)."""
    from ..checkpoint import read_checkpoint_metadata
    from . import synth_codec

    kind = read_checkpoint_metadata(path).get("kind")
    return SynthCodec.load(path) if kind == synth_codec.KIND else Codec.load(path)
