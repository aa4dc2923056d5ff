"""Streamed long-form output (:mod:`diffariff.longform`): block-wise loudness, encode, decode and
writing give the same numbers as the whole-array paths, on rendered audio with a tiny bundle whose
codec chunk is made short so that several chunks (and their crossfades) are exercised."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch

from diffariff.audio import is_silent, loudness, save_audio
from diffariff.longform.decode import decode_blocks
from diffariff.longform.encode import encode_long
from diffariff.longform.loudness import measure
from diffariff.pipeline import Accompanist
from diffariff.testing import make_tiny_bundle
from diffariff.timing.daw import OutputFormat, to_output_rate

SR = 48_000


@pytest.fixture(scope="module", params=["consistency", "synth"])
def acc(request, tmp_path_factory):
    """A tiny bundle on either codec kind (the default bundle ships the synth codec)."""
    root = make_tiny_bundle(tmp_path_factory.mktemp("b") / "tiny", train_frames=24, codec=request.param).root
    a = Accompanist.from_pretrained(root)
    a.codec.config.chunk_seconds = 0.5  # 6-12 latent frames per chunk: a 3-s context spans several chunks
    return a


@pytest.fixture(scope="module")
def context(render_notes):
    piano = render_notes(0, [60, 64, 67, 72, 67, 64, 60, 55], beat_seconds=0.2, seconds=1.6)
    return np.concatenate([piano, piano[:, : SR + 777]], axis=1)  # odd length: a padded last frame


def test_blockwise_loudness_and_silence_equal_the_whole_array(context):
    assert measure(context, SR, block=10_001).value() == pytest.approx(loudness(context, SR), abs=1e-9)
    for gain, silent in ((1e-4, True), (1.0, False)):
        x = context * np.float32(gain)
        rms_db = 20 * np.log10(np.sqrt(np.mean(x.astype(np.float64) ** 2)))
        assert bool(rms_db <= -60.0) is silent
        assert is_silent(x, -60.0) is silent
        assert is_silent(x, rms_db + 1e-6) is True and is_silent(x, rms_db - 1e-6) is False


def test_encode_and_decode_streams_are_bit_identical(acc, context):
    z = encode_long(acc.codec, context)
    assert torch.equal(z, acc.codec.encode(torch.as_tensor(context)[None]))
    lat = torch.randn(2, z.shape[1], z.shape[-1], generator=torch.Generator().manual_seed(0)) * 0.5
    whole = acc.decode(lat, context.shape[1], width=0.4, seed=5, bf16=False)  # decode_blocks alone runs fp32
    blocks = list(decode_blocks(acc.codec, lat, context.shape[1], width=0.4, seed=5))
    assert len(blocks) > 1
    np.testing.assert_array_equal(np.concatenate(blocks, axis=-1), whole)
    if getattr(acc.codec, "can_transpose", False):  # the key lock's transposition streams the same way
        shifted = acc.decode(lat, context.shape[1], width=0.4, seed=5, semitones=[3, -2], bf16=False)
        blocks = list(decode_blocks(acc.codec, lat, context.shape[1], width=0.4, seed=5, semitones=[3, -2]))
        np.testing.assert_array_equal(np.concatenate(blocks, axis=-1), shifted)
        assert not np.array_equal(shifted, whole)


@pytest.mark.parametrize("rate", [48_000, 44_100])
def test_streamed_files_equal_generate_then_write(acc, context, tmp_path, rate):
    fmt = OutputFormat(rate, int(round(context.shape[1] * rate / SR)) + 1)
    kw = dict(text="warm bass", sampler="consistency", seed=3, n=2)
    stems = acc.generate(context, **kw)
    mixes = [acc.mix(context, s) for s in stems]
    outs, mix_outs = [tmp_path / "a.wav", tmp_path / "b.wav"], [tmp_path / "ma.wav", tmp_path / "mb.wav"]
    acc.generate_to_files(context, outs, mix_outs=mix_outs, sample_rate_out=rate, length_out=fmt.length, **kw)
    ref_dir = tmp_path / "ref"
    ref_dir.mkdir()
    for path, audio in zip(outs + mix_outs, list(stems) + mixes):
        ref = ref_dir / path.name
        save_audio(ref, to_output_rate(audio, fmt), rate)
        got, sr = sf.read(path, dtype="float32")
        want, _ = sf.read(ref, dtype="float32")
        assert sr == rate and got.shape == (fmt.length, 2)
        np.testing.assert_allclose(got, want, atol=2 / 2**23)  # 24-bit PCM: at most a rounding step apart
        assert np.abs(got).max() <= 0.99 + 1e-6
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["a.wav", "b.wav", "ma.wav", "mb.wav", "ref"])


def test_dropout_measure_finds_a_hole_cut_into_a_rendered_stem(render_notes):
    from diffariff.eval.dropouts import dropout_runs, window_levels

    bass = render_notes(33, [36, 43, 41, 38] * 6, beat_seconds=0.25, seconds=6.0)
    piano = render_notes(0, [60, 64, 67, 72] * 6, beat_seconds=0.25, seconds=6.0)
    assert dropout_runs(bass, piano + bass)["runs"] == []
    holed = bass.copy()
    holed[:, 2 * SR: 4 * SR] *= np.float32(1e-3)  # -60 dB for two seconds
    found = dropout_runs(holed, piano + bass)
    assert found["runs"] == [(2.0, 4.0)] and found["longest_s"] == 2.0
    rows = window_levels(holed, piano + bass, [(0.0, 2.0), (2.0, 4.0)])
    assert rows[1]["relative_db"] < rows[0]["relative_db"] - 40
