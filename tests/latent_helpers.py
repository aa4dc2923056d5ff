"""Shared pieces of the latent-cache tests: a tiny real corpus, a tiny random codec and CLAP, and the
12-pair latent cache built from them (used by data/test_latents.py and train/test_train_diffusion.py)."""

from __future__ import annotations

import math

import torch

from diffariff.clap.builtin import BuiltinClap, ClapConfig
from diffariff.codec import Codec, CodecConfig
from diffariff.data.latents import CacheRecipe, Encoders, build_latent_cache
from diffariff.data.sources import open_dataset
from diffariff.data.synth.corpus import build_corpus
from diffariff.diffusion.model import model_identity

TINY_CODEC = dict(freq_patch=8, enc_channels=(8, 16, 16, 32), dec_channels=(8, 16, 16, 32),
                  unet_channels=(8, 16, 16, 32), attn_heads=4, noise_embed_dim=32, chunk_seconds=10.0,
                  chunk_context_frames=4)
TINY_CLAP = dict(dim=32, n_mels=32, channels=(8, 16, 32), pool_dim=32, audio_hidden=64, text_hidden=64,
                 window_seconds=1.0)
RECIPE = dict(pairs=12, shard_size=5, window_seconds=3.0, reference_seconds=1.0, split=None, seed=3)
FRAMES = math.ceil(3.0 * 48_000 / 4096)  # 36 latent frames per 3-s window


def tiny_cache(tmp_path_factory) -> dict:
    """Corpus (3 songs x 12 s), tiny codec + CLAP checkpoints and a 12-pair cache, built once per test
    session under the session's base temp folder (every step is resumable, so a second module reuses it)."""
    base = tmp_path_factory.getbasetemp() / "diffariff_latents"
    corpus = base / "corpus"
    build_corpus(corpus, songs=3, seconds=12, seed=1, jobs=1, progress=False)
    codec_path, clap_path = base / "codec.safetensors", base / "clap.safetensors"
    if not codec_path.is_file():
        torch.manual_seed(0)
        Codec(CodecConfig(**TINY_CODEC)).save(codec_path)
        BuiltinClap(ClapConfig(**TINY_CLAP)).save(clap_path)
    codec, clap = Codec.load(codec_path), BuiltinClap.load(clap_path)
    encoders = Encoders(codec, clap, model_identity(codec_path), model_identity(clap_path))
    songs = open_dataset(corpus)
    cache = base / "cache"
    manifest = build_latent_cache(encoders, songs, cache, CacheRecipe(**RECIPE), batch_size=6, progress=False)
    return dict(corpus=corpus, codec=codec_path, clap=clap_path, cache=cache, manifest=manifest,
                encoders=encoders, songs=songs)

