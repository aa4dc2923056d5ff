"""Long contexts kept on disk (:mod:`diffariff.audio_spool`): the spooled samples equal the in-memory
read, every long-form consumer gives the same numbers from either, and the streamed generation from a
spooled context file writes the same stems, on rendered audio."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch

import diffariff.audio_input as audio_input
from diffariff.audio import is_silent, load_audio
from diffariff.audio_input import read_audio, read_audio_spooled
from diffariff.audio_spool import SpooledAudio, spool_audio_file
from diffariff.data.context_chroma import context_chroma
from diffariff.errors import EmptyAudioError, InputError, NonFiniteAudioError
from diffariff.longform.encode import encode_long
from diffariff.longform.loudness import measure
from diffariff.pipeline import Accompanist
from diffariff.testing import make_tiny_bundle

SR = 48_000


@pytest.fixture(scope="module")
def phrase(render_notes):
    """About 6.5 s of rendered piano and bass, stereo 48 kHz."""
    piano = render_notes(0, [60, 64, 67, 72, 67, 64, 60, 55], beat_seconds=0.4, seconds=3.2)
    bass = render_notes(33, [36, 43, 41, 38, 36, 43, 41, 38], beat_seconds=0.4, seconds=3.2)
    return np.concatenate([piano + bass, piano[:, : SR + 999]], axis=1)


@pytest.mark.parametrize("rate, subtype, channels", [(48_000, "FLOAT", 2), (44_100, "PCM_24", 2), (22_050, "PCM_16", 1)])
def test_spooled_file_equals_load_audio(phrase, tmp_path, rate, subtype, channels):
    from diffariff.audio import resample

    data = resample(phrase, SR, rate)[:channels]
    path = tmp_path / "ctx.wav"
    sf.write(path, data.T, rate, subtype=subtype)
    whole, _ = load_audio(path, SR, 2)
    with spool_audio_file(path, SR, 2, folder=tmp_path) as sp:
        assert sp.shape == whole.shape and len(list(tmp_path.iterdir())) == 1  # anonymous: no name on disk
        np.testing.assert_array_equal(np.asarray(sp), whole)
        np.testing.assert_array_equal(sp[:, 1000:5000], whole[:, 1000:5000])
        np.testing.assert_array_equal(sp[..., -300:], whole[..., -300:])
        np.testing.assert_array_equal(sp[1, 7:9], whole[1, 7:9])
        assert np.concatenate(list(sp.blocks(12_345)), axis=1).shape == whole.shape
        with pytest.raises(TypeError):
            sp[:, ::2]
    with spool_audio_file(path, SR, 1, max_samples=SR) as sp:
        assert sp.shape == (1, SR)
        np.testing.assert_array_equal(np.asarray(sp), load_audio(path, SR, 1)[0][:, :SR])


def test_spooling_refuses_bad_files_with_the_same_errors(tmp_path):
    bad = np.zeros((2, SR), dtype=np.float32)
    bad[0, 1234] = np.nan
    sf.write(tmp_path / "nan.wav", bad.T, SR, subtype="FLOAT")
    with pytest.raises(NonFiniteAudioError):
        spool_audio_file(tmp_path / "nan.wav", SR, 2)
    sf.write(tmp_path / "empty.wav", np.zeros((0, 2), np.float32), SR)
    with pytest.raises(EmptyAudioError):
        spool_audio_file(tmp_path / "empty.wav", SR, 2)


def test_read_audio_spooled_only_spools_long_files(phrase, tmp_path, monkeypatch):
    path = tmp_path / "ctx.flac"
    sf.write(path, phrase.T, SR, subtype="PCM_24")
    assert isinstance(read_audio_spooled(path, what="context"), np.ndarray)  # shorter than SPOOL_SECONDS
    monkeypatch.setattr(audio_input, "SPOOL_SECONDS", 1.0)
    sp = read_audio_spooled(path, what="context", seconds=3.0, folder=tmp_path)
    assert isinstance(sp, SpooledAudio)
    np.testing.assert_array_equal(np.asarray(sp), read_audio(path, what="context", seconds=3.0))
    sp.close()
    with pytest.raises(InputError, match="at least 9"):
        read_audio_spooled(path, what="context", min_seconds=9.0)


def test_long_form_consumers_read_a_spooled_context_as_the_array(phrase, tmp_path):
    acc = Accompanist.from_pretrained(make_tiny_bundle(tmp_path / "tiny", codec="synth").root)
    acc.codec.config.chunk_seconds = 1.0
    sp = SpooledAudio(2, folder=tmp_path)
    for a in range(0, phrase.shape[1], 40_000):
        sp.append(phrase[:, a:a + 40_000])
    spf = acc.samples_per_frame
    for channels in (1, 2):
        torch.testing.assert_close(context_chroma(sp, spf, SR, channels=channels),
                                   context_chroma(phrase, spf, SR, channels=channels), rtol=0, atol=0)
    mono = phrase.mean(axis=0, keepdims=True)  # the mixing inside equals an explicit mono mix
    torch.testing.assert_close(context_chroma(phrase, spf, SR, channels=1), context_chroma(mono, spf, SR), rtol=0, atol=0)
    assert torch.equal(encode_long(acc.codec, sp), encode_long(acc.codec, phrase))
    assert measure(sp, SR).value() == measure(phrase, SR).value()
    assert is_silent(sp) is is_silent(phrase) is False
    quiet = SpooledAudio(2)
    quiet.append(phrase * np.float32(1e-5))
    assert is_silent(quiet) is True


def test_long_clap_embedding_matches_the_whole_clip(phrase, tmp_path):
    acc = Accompanist.from_pretrained(make_tiny_bundle(tmp_path / "tiny").root)
    clap = acc.clap
    long = np.concatenate([phrase] * 3, axis=1)  # ~19.5 s: several CLAP windows
    whole = clap.embed_audio(long[None], sample_rate=SR)
    windowed = clap.embed_long_audio(long, sample_rate=SR, batch_size=2)
    assert windowed.shape == whole.shape
    assert float((whole * windowed).sum()) > 0.999  # the same windows; only their resampled edges differ
    other = clap.embed_long_audio(np.roll(long, SR, axis=1) * np.float32(0.3), sample_rate=SR)
    assert float((whole * other).sum()) < float((whole * windowed).sum())


@pytest.mark.parametrize("codec", ["synth", "consistency"])
def test_streamed_generation_from_a_spooled_context_writes_the_same_stems(phrase, tmp_path, monkeypatch, codec):
    acc = Accompanist.from_pretrained(make_tiny_bundle(tmp_path / "tiny", train_frames=24, codec=codec).root)
    acc.codec.config.chunk_seconds = 1.0
    path = tmp_path / "ctx.wav"
    sf.write(path, phrase.T, 44_100 if codec == "synth" else SR, subtype="PCM_24")
    kw = dict(text="warm bass", sampler="consistency", seed=3, n=1)
    outs = {}
    for name, limit in (("memory", 1e9), ("spooled", 1.0)):
        monkeypatch.setattr(audio_input, "SPOOL_SECONDS", limit)
        folder = tmp_path / name
        folder.mkdir()
        acc.generate_to_files(path, [folder / "stem.wav"], mix_outs=[folder / "mix.wav"], **kw)
        assert sorted(p.name for p in folder.iterdir()) == ["mix.wav", "stem.wav"]
        outs[name] = [sf.read(folder / f, dtype="float32")[0] for f in ("stem.wav", "mix.wav")]
    for got, want in zip(outs["spooled"], outs["memory"]):
        np.testing.assert_array_equal(got, want)
        assert np.abs(got).max() > 1e-3


def test_the_context_prior_reads_a_spooled_context(phrase, tmp_path, monkeypatch):
    acc = Accompanist.from_pretrained(make_tiny_bundle(tmp_path / "tiny", codec="synth", prior=True,
                                                       modes=("consistency",)).root)
    sp = SpooledAudio(2, folder=tmp_path)
    sp.append(phrase)
    spooled = acc.context_condition(sp, seed=0)
    in_memory = acc.context_condition(phrase, seed=0)
    assert spooled.shape == in_memory.shape and torch.isfinite(spooled).all()
    path = tmp_path / "ctx.wav"
    sf.write(path, phrase.T, SR, subtype="FLOAT")
    monkeypatch.setattr(audio_input, "SPOOL_SECONDS", 1.0)
    acc.generate_to_files(path, [tmp_path / "stem.wav"], sampler="consistency", seed=0)  # no prompt: the prior
    assert acc.last_condition == "prior" and sf.info(str(tmp_path / "stem.wav")).frames == phrase.shape[1]
