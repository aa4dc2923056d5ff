"""Test support: tiny, randomly initialised models saved with their real save functions.

Used by the test suite, the benchmarks and smoke runs; nothing in the product imports it. The models
generate noise-like audio but exercise every control path at a fraction of a second per call.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import torch

from .bundle import FILE_NAMES, MODES, Bundle, checkpoint_identity, save_bundle
from .checkpoint import file_sha256
from .clap.builtin import BuiltinClap, ClapConfig
from .codec import Codec, CodecConfig
from .codec.synth_codec import SynthCodec, SynthCodecConfig
from .diffusion.model import LatentDiffusion, LatentDiffusionConfig
from .priors.bridge import BridgeConfig, ClapBridge


def make_tiny_bundle(out_dir: str | os.PathLike, *, seed: int = 0, train_frames: int = 24,
                     modes: tuple[str, ...] = MODES, stereo: str = "mono", bridge: bool = False,
                     prior: bool = False, overwrite: bool = False, context_chroma: bool = False,
                     codec: str = "consistency") -> Bundle:
    """A tiny bundle of randomly initialised models (codec, CLAP, DiT diffusion model per mode) saved
    with their real save functions, for tests, benchmarks and smoke runs: it generates noise-like audio
    but exercises every control path. ``train_frames``: the diffusion models' training window
    (latent frames; 24 ~ 2 s); ``bridge`` / ``prior``: add a tiny CLAP bridge / context prior; ``context_chroma``:
    diffusion models that take the context chroma; ``codec``: "consistency" (the first codec, 11.7 Hz) or
    "synth" (the synth codec of the default bundle, 23.4 Hz, mono only). Zero-initialised output layers are
    randomised (as after training)."""
    torch.manual_seed(seed)
    if codec == "synth":
        if stereo != "mono":
            raise ValueError("the synth codec is mono")
        codec_model = SynthCodec(SynthCodecConfig(enc_channels=(16, 16, 16), dec_channels=(24, 16, 16, 16), blocks=1,
                                                  chunk_seconds=4.0, chunk_context_frames=4))
    elif codec == "consistency":
        codec_model = Codec(CodecConfig(freq_patch=8, enc_channels=(8, 16, 16, 32), dec_channels=(8, 16, 16, 32),
                                        unet_channels=(8, 16, 16, 32), attn_heads=4, noise_embed_dim=32,
                                        chunk_seconds=4.0, chunk_context_frames=4, stereo=stereo))
        with torch.no_grad():
            for p in codec_model.unet.parameters():
                if p.ndim > 1 and not p.any():
                    p.normal_(0, 0.02)
    else:
        raise ValueError(f"codec must be 'consistency' or 'synth', got '{codec}'")
    clap = BuiltinClap(ClapConfig(dim=32, n_mels=32, channels=(8, 16, 32), pool_dim=32, audio_hidden=64,
                                  text_hidden=64, window_seconds=1.0))
    out = Path(out_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{out.name}.parts.", dir=out.parent))
    try:
        codec_model.save(scratch / FILE_NAMES["codec"])
        clap.save(scratch / FILE_NAMES["clap"])
        ids = {"codec_id": checkpoint_identity(scratch / FILE_NAMES["codec"]),
               "clap_id": checkpoint_identity(scratch / FILE_NAMES["clap"])}
        net = dict(width=32, depth=2, heads=2, cond_dim=32, noise_emb_dim=32, dpb_dim=16)
        diffusion = {}
        for mode in modes:
            model = LatentDiffusion(LatentDiffusionConfig(net="dit", net_config=net, mode=mode, clap_dim=clap.dim,
                                                          train_frames=train_frames, context_chroma=context_chroma,
                                                          **ids))
            with torch.no_grad():
                for p in model.parameters():
                    if not p.any():
                        p.normal_(0, 0.05)
            diffusion[mode] = model

        def tiny(condition: str) -> ClapBridge:
            m = ClapBridge(BridgeConfig(dim=clap.dim, text_dim=clap.dim, hidden=32, blocks=2, noise_emb_dim=16, steps=4,
                                        clap_sha256=file_sha256(scratch / FILE_NAMES["clap"]), condition=condition))
            m.set_data_stats(torch.nn.functional.normalize(torch.randn(64, clap.dim), dim=-1))
            return m

        return save_bundle(out, codec=scratch / FILE_NAMES["codec"], clap=scratch / FILE_NAMES["clap"],
                           diffusion=diffusion, bridge=tiny("text") if bridge else None,
                           prior=tiny("context") if prior else None, notes="tiny random models (tests / smoke runs only)",
                           overwrite=overwrite)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
