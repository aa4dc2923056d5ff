"""The editing commands' streamed path (:mod:`diffariff.pipeline.edits`, ``*_to_files``): on a 65-s
rendered stem and context (long enough to be spooled to disk) and a tiny synth-codec bundle, the files
equal what the whole-array methods give through :func:`diffariff.timing.daw.write_outputs` (to a 24-bit
rounding step), at the context's sample rate and exact length, and a failure leaves no file behind."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from diffariff.audio import save_audio
from diffariff.audio_input import SPOOL_SECONDS
from diffariff.audio_spool import SpooledAudio
from diffariff.errors import InputError
from diffariff.pipeline import Accompanist
from diffariff.testing import make_tiny_bundle
from diffariff.timing.daw import OutputFormat, write_outputs

SR = 48_000
RATE = 44_100  # the files' rate: read and written through the resamplers
SECONDS = 65.0
STEP = 2 / 2**23  # two 24-bit PCM rounding steps
FAST = dict(sampler="consistency", steps=1, seed=4, progress=False)


@pytest.fixture(scope="module")
def acc(tmp_path_factory):
    root = make_tiny_bundle(tmp_path_factory.mktemp("b") / "tiny", train_frames=24, modes=("consistency",),
                            codec="synth").root
    return Accompanist.from_pretrained(root)


@pytest.fixture(scope="module")
def files(tmp_path_factory, render_notes):
    """A 65-s context and stem at 44.1 kHz (tiled rendered phrases; an odd length)."""
    root = tmp_path_factory.mktemp("long")
    n = int(SECONDS * RATE) + 77
    piano = render_notes(0, [60, 64, 67, 72, 67, 64, 60, 55], beat_seconds=0.25, seconds=2.0)
    bass = render_notes(33, [36, 43, 41, 38, 36, 31, 33, 36], beat_seconds=0.25, seconds=2.0)
    paths = {"ctx": root / "ctx.wav", "stem": root / "stem.wav"}
    for key, phrase in (("ctx", piano), ("stem", bass)):
        tiled = np.tile(phrase, (1, -(-n // phrase.shape[1])))[:, :n]  # 48-kHz phrases, written as 44.1 kHz
        save_audio(paths[key], tiled, RATE)
    assert sf.info(str(paths["ctx"])).frames / RATE > SPOOL_SECONDS
    return paths


@pytest.fixture
def spied(monkeypatch):
    """Records the type of every stem / context the streamed path reads."""
    import diffariff.audio_input
    import diffariff.pipeline.accompanist as accompanist
    import diffariff.pipeline.edits as edits

    seen = []
    real = diffariff.audio_input.read_audio_spooled

    def spy(*a, **kw):
        out = real(*a, **kw)
        seen.append((kw.get("what"), type(out)))
        return out

    for module in (edits, accompanist):
        monkeypatch.setattr(module, "read_audio_spooled", spy)
    return seen


def _fmt(files) -> OutputFormat:
    return OutputFormat.of_file(files["ctx"])


def _assert_same_files(streamed, arrays, fmt, tmp_path):
    """Each streamed file equals its array written by ``write_outputs``; right rate and length."""
    refs = [tmp_path / f"ref_{k}.wav" for k in range(len(streamed))]
    write_outputs([(r, a, None) for r, a in zip(refs, arrays)], fmt)
    for path, ref in zip(streamed, refs):
        got, sr = sf.read(str(path), dtype="float32")
        want, _ = sf.read(str(ref), dtype="float32")
        assert sr == fmt.sample_rate and got.shape == (fmt.length, 2)
        np.testing.assert_allclose(got, want, atol=STEP, rtol=0)
        assert np.abs(got).max() <= 0.99 + 1e-6
        ref.unlink()


def _names(folder):
    return sorted(p.name for p in folder.iterdir())


def test_streamed_inpaint_equals_the_array_path(acc, files, tmp_path, spied):
    fmt = _fmt(files)
    outs = [tmp_path / "a.wav", tmp_path / "b.wav"]
    arrays = acc.inpaint(files["stem"], files["ctx"], 30.0, 34.5, n=2, **FAST)
    n = acc.inpaint_to_files(files["stem"], files["ctx"], 30.0, 34.5, outs, n=2, sample_rate_out=fmt.sample_rate,
                             length_out=fmt.length, **FAST)
    assert spied == [("stem", SpooledAudio), ("context", SpooledAudio)] and n == arrays.shape[-1]
    _assert_same_files(outs, arrays, fmt, tmp_path)
    assert _names(tmp_path) == ["a.wav", "b.wav"]  # no temporary spool or partial file is left


def test_streamed_vary_and_vary_bars_equal_the_array_path(acc, files, tmp_path):
    fmt = _fmt(files)
    arrays = acc.vary(files["stem"], files["ctx"], 0.5, **FAST)
    acc.vary_to_files(files["stem"], files["ctx"], 0.5, [tmp_path / "v.wav"], sample_rate_out=fmt.sample_rate,
                      length_out=fmt.length, **FAST)
    _assert_same_files([tmp_path / "v.wav"], arrays, fmt, tmp_path)
    grid = acc.analyze(files["ctx"], bpm=120, meter="4/4", downbeat=0.0)
    arrays = acc.vary_bars(files["stem"], files["ctx"], (5, 8), 0.5, grid=grid, **FAST)
    bars = acc.last_bars
    acc.vary_bars_to_files(files["stem"], files["ctx"], (5, 8), 0.5, [tmp_path / "vb.wav"], grid=grid,
                           sample_rate_out=fmt.sample_rate, length_out=fmt.length, **FAST)
    assert acc.last_bars == bars == (5, 8)
    _assert_same_files([tmp_path / "vb.wav"], arrays, fmt, tmp_path)
    got, _ = sf.read(str(tmp_path / "vb.wav"), dtype="float32")
    stem, _ = sf.read(str(files["stem"]), dtype="float32")
    far = slice(0, int(7.0 * RATE))  # bars 5-8 at 120 bpm are 8-16 s: the stem is kept up to there
    scale = np.abs(got[far]).max() / max(np.abs(stem[far]).max(), 1e-9)  # at most the final limiter's gain
    np.testing.assert_allclose(got[far], stem[far] * scale, atol=1e-2)  # the 44.1 -> 48 -> 44.1 kHz round trip


def test_streamed_generate_bars_equals_the_array_path(acc, files, tmp_path):
    """Only the bars are generated (the context is spooled, the silence around them streamed): the files
    equal generate_bars' arrays, and the mix is context + stem."""
    fmt = _fmt(files)
    grid = acc.analyze(files["ctx"], bpm=120, meter="4/4", downbeat=0.0)
    arrays = acc.generate_bars(files["ctx"], (9, 10), grid=grid, n=2, **FAST)
    outs, mixes = [tmp_path / "g1.wav", tmp_path / "g2.wav"], [tmp_path / "m1.wav", tmp_path / "m2.wav"]
    n = acc.generate_bars_to_files(files["ctx"], (9, 10), outs, mix_outs=mixes, grid=grid, n=2,
                                   sample_rate_out=fmt.sample_rate, length_out=fmt.length, **FAST)
    assert n == arrays.shape[-1] and acc.last_bars == (9, 10)
    _assert_same_files(outs, arrays, fmt, tmp_path)
    got, _ = sf.read(str(outs[0]), dtype="float32")
    quiet = np.r_[0:int(15.9 * RATE), int(20.1 * RATE):len(got)]  # bars 9-10 at 120 bpm: 16-20 s
    assert np.abs(got[quiet]).max() == 0.0 and np.abs(got[int(16.5 * RATE):int(19.5 * RATE)]).max() > 0
    from diffariff.audio_input import read_audio

    want = acc.mix(read_audio(files["ctx"]), arrays[1])
    _assert_same_files(mixes[1:], [want], fmt, tmp_path)
    assert _names(tmp_path) == ["g1.wav", "g2.wav", "m1.wav", "m2.wav"]


def test_streamed_generate_loop_equals_the_array_path(acc, files, tmp_path):
    """A 2-bar loop from bar 3, repeated over bars 5-26 of a spooled 65-s context: the files equal
    generate_loop's arrays, silent outside the bars, with the same bare loops."""
    fmt = _fmt(files)
    grid = acc.analyze(files["ctx"], bpm=100, meter="4/4", downbeat=0.25)
    arrays = acc.generate_loop(files["ctx"], 2, start_bar=3, bars=(5, 26), grid=grid, **FAST)
    bare = acc.last_loop.copy()
    n = acc.generate_loop_to_files(files["ctx"], 2, [tmp_path / "l.wav"], start_bar=3, bars=(5, 26), grid=grid,
                                   sample_rate_out=fmt.sample_rate, length_out=fmt.length, **FAST)
    assert n == arrays.shape[-1] and acc.last_bars == (5, 26)
    np.testing.assert_array_equal(acc.last_loop, bare)
    _assert_same_files([tmp_path / "l.wav"], arrays, fmt, tmp_path)
    got, _ = sf.read(str(tmp_path / "l.wav"), dtype="float32")
    start = int((0.25 + 4 * 2.4) * RATE)  # bar 5 at 100 bpm 4/4 (2.4-s bars) after a 0.25-s downbeat
    assert np.abs(got[: start - int(0.01 * RATE)]).max() == 0.0 and np.abs(got[start:start + RATE]).max() > 0


def test_streamed_arrange_equals_the_array_path(acc, files, tmp_path):
    fmt = _fmt(files)
    parts = ["bass", {"text": "pad", "cfg_clap": 2.0}]
    song = acc.arrange(files["ctx"], parts, **FAST)
    outs, mix = [tmp_path / "s1.wav", tmp_path / "s2.wav"], tmp_path / "mix.wav"
    texts = acc.arrange_to_files(files["ctx"], parts, outs, mix, sample_rate_out=fmt.sample_rate,
                                 length_out=fmt.length, **FAST)
    assert texts == song.texts == ["bass", "pad"]
    _assert_same_files(outs[:1], song.stems[:1], fmt, tmp_path)
    # the first stem's loudness is measured block-wise (float rounding), and the second part hears it
    refs = [tmp_path / "r2.wav", tmp_path / "rm.wav"]
    write_outputs([(refs[0], song.stems[1], None), (refs[1], song.mix, None)], fmt)
    for path, ref in zip([outs[1], mix], refs):
        got, want = sf.read(str(path), dtype="float32")[0], sf.read(str(ref), dtype="float32")[0]
        assert got.shape == want.shape == (fmt.length, 2)
        np.testing.assert_allclose(got, want, atol=1e-4, rtol=0)


def test_arrange_from_silence_writes_48k_of_the_asked_length(acc, tmp_path):
    outs = [tmp_path / "song" / "s1.wav"]  # a folder that does not exist yet
    acc.arrange_to_files(None, ["bass"], outs, tmp_path / "song" / "mix.wav", seconds=61.0, **FAST)
    for p in (outs[0], tmp_path / "song" / "mix.wav"):
        info = sf.info(str(p))
        assert info.samplerate == SR and info.frames == 61 * SR


def test_a_failure_leaves_no_file(acc, files, tmp_path, monkeypatch):
    import diffariff.longform.stream as stream

    outs = [tmp_path / "x.wav"]
    with pytest.raises(InputError, match="inpaint region"):
        acc.inpaint_to_files(files["stem"], files["ctx"], 50.0, 80.0, outs, **FAST)
    real = stream.decode_blocks

    def failing(*a, **kw):
        for k, block in enumerate(real(*a, **kw)):
            if k == 2:
                raise RuntimeError("decoder failed")
            yield block

    monkeypatch.setattr(stream, "decode_blocks", failing)
    with pytest.raises(RuntimeError, match="decoder failed"):
        acc.vary_to_files(files["stem"], files["ctx"], 0.5, outs, **FAST)
    with pytest.raises(RuntimeError, match="decoder failed"):
        acc.arrange_to_files(files["ctx"], ["bass", "pad"], outs + [tmp_path / "y.wav"], tmp_path / "mix.wav", **FAST)
    assert _names(tmp_path) == []
    with pytest.raises(ValueError, match="one output path per candidate"):
        acc.inpaint_to_files(files["stem"], files["ctx"], 1.0, 2.0, outs, n=2, **FAST)
