"""Bar options and DAW-friendly outputs on the command line, end to end with a tiny bundle on a rendered
44.1 kHz corpus song: ``analyze``, ``generate --bars / --loop-bars / --loop-out``, ``inpaint --bars``,
``vary --bars``, the overrides ``--bpm / --meter / --downbeat``, sidecars, and one-line errors (exit
2, nothing written) for bad values before any model loads."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from diffariff.audio import load_audio, resample, save_audio
from diffariff.cli import main
from diffariff.testing import make_tiny_bundle
from diffariff.timing.bars import BarGrid
from diffariff.timing.daw import add_tempo_chunk, read_tempo_chunk

SR = 44_100
BPM = 111.0
BAR = 4 * 60.0 / BPM  # seconds
GRID = ["--bpm", BPM, "--meter", "4/4", "--downbeat", 0]


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    return str(make_tiny_bundle(tmp_path_factory.mktemp("b") / "tiny", train_frames=24).root)


@pytest.fixture(scope="module")
def ctx(tmp_path_factory):
    """A 10-s 4/4 pop song at 111 bpm (corpus seed 5, song 4), at 44.1 kHz."""
    from diffariff.data.synth.corpus import render_song

    root = tmp_path_factory.mktemp("ctx")
    folder = render_song(4, 5, 10.0, root)
    audio, sr = load_audio(folder / "mixture.flac")
    path = root / "ctx44.wav"
    save_audio(path, resample(audio, sr, SR), SR)
    return path


def run(capsys, bundle, *argv, fast=True):
    extra = ["--steps", 2, "--sampler", "euler", "--quiet", "--bundle", bundle, "--seed", 1] if fast else []
    code = main([str(a) for a in (*argv, *extra)])
    out, err = capsys.readouterr()
    return code, out, err


def test_analyze_text_and_json(ctx, capsys):
    code = main(["analyze", str(ctx)])
    out = capsys.readouterr().out
    assert code == 0 and "bpm" in out and "meter" in out and "first downbeat" in out and "bars" in out
    assert main(["analyze", str(ctx), "--json", *map(str, GRID)]) == 0
    d = json.loads(capsys.readouterr().out)
    assert (d["bpm"], d["meter"], d["first_downbeat_s"], d["sample_rate"]) == (BPM, "4/4", 0.0, SR)
    assert d["bars"] == 4 and len(d["downbeats_s"]) == 5
    assert main(["analyze", str(ctx), "--meter", "6/8", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["meter"] == "6/8"


def test_generate_bars_is_silent_outside_and_written_at_the_context_rate(ctx, bundle, tmp_path, capsys):
    out, mix = tmp_path / "fill.wav", tmp_path / "mix.flac"
    code, stdout, err = run(capsys, bundle, "generate", ctx, "-o", out, "--mix-out", mix, "--bars", "2:3",
                            "--text", "bass", *GRID)
    assert code == 0, err
    audio, sr = sf.read(str(out), always_2d=True)
    assert sr == SR and audio.shape[0] == sf.info(str(ctx)).frames
    a, b = round(BAR * SR), round(3 * BAR * SR)
    outside = np.abs(np.concatenate([audio[: a - 200], audio[b + 200:]])).max()
    assert outside < 1e-4 and np.abs(audio[a + 500: b - 500]).max() > 1e-3  # silent but for resampling ripple
    assert sf.info(str(mix)).samplerate == SR and sf.info(str(mix)).frames == audio.shape[0]
    meta = json.loads((tmp_path / "fill.wav.json").read_text())
    assert meta["bars_generated"] == [2, 3] and meta["bpm"] == BPM and meta["meter"] == "4/4"
    assert meta["sample_rate"] == SR and meta["first_downbeat_samples"] == 0 and meta["num_samples"] == audio.shape[0]
    assert json.loads((tmp_path / "mix.flac.json").read_text())["kind"] == "mix"
    assert "bars 2-3" in stdout


def test_loop_bars_repeat_an_exact_loop(ctx, bundle, tmp_path, capsys):
    out, loop = tmp_path / "loop_full.wav", tmp_path / "loop.wav"
    code, stdout, err = run(capsys, bundle, "generate", ctx, "-o", out, "--loop-bars", 1, "--loop-out", loop,
                            "--text", "bass", *GRID)
    assert code == 0, err
    bare, sr = sf.read(str(loop), always_2d=True)
    assert sr == SR and bare.shape[0] == round(BAR * SR)  # exactly one bar at the grid's tempo
    full, _ = sf.read(str(out), always_2d=True)
    assert full.shape[0] == sf.info(str(ctx)).frames
    n = round(BAR * SR)
    assert np.abs(full[2000:n - 2000] - bare[2000:n - 2000]).max() < 1e-3  # bar 1 is the loop
    import librosa

    def spec(x):
        return np.abs(librosa.stft(np.ascontiguousarray(x[:, 0]), n_fft=1024, hop_length=256)).ravel()

    c = np.corrcoef(spec(full[:n]), spec(full[n:2 * n]))[0, 1]
    assert c > 0.95  # the second bar repeats it (placed at the exact, fractional bar position)
    assert "loop point" in stdout and "x the median" in stdout
    meta = json.loads((tmp_path / "loop.wav.json").read_text())
    assert meta["kind"] == "loop" and meta["loop_bars"] == 1 and meta["bars_in_file"] == 1


def test_inpaint_and_vary_bars_keep_the_rest(ctx, bundle, tmp_path, capsys):
    stem = tmp_path / "stem.wav"
    assert run(capsys, bundle, "generate", ctx, "-o", stem, "--text", "bass", "--no-sidecar")[0] == 0
    assert not (tmp_path / "stem.wav.json").exists()
    original, _ = sf.read(str(stem), always_2d=True)
    a, b = round(BAR * SR), round(2 * BAR * SR)
    for cmd, extra in (("inpaint", []), ("vary", ["--strength", 1.0])):
        out = tmp_path / f"{cmd}.wav"
        code, _, err = run(capsys, bundle, cmd, stem, ctx, "-o", out, "--bars", "2:2", *extra, "--text", "bass", *GRID)
        assert code == 0, err
        new, sr = sf.read(str(out), always_2d=True)
        assert sr == SR and new.shape == original.shape
        keep = np.r_[4410:a - 3000, b + 3000:len(new) - 4410]
        gain = float(np.sum(new[keep] * original[keep]) / np.sum(original[keep] ** 2))  # a peak limit scales all
        rms = lambda x: float(np.sqrt(np.mean(x ** 2)))  # noqa: E731
        outside = rms(new[keep] - gain * original[keep])  # only the 44.1 -> 48 -> 44.1 kHz round trip's loss
        inside = rms(new[a + 3000:b - 3000] - gain * original[a + 3000:b - 3000])  # of the noise-like stem
        assert outside < 0.1 * rms(original[keep]) and inside > 2 * outside, (cmd, outside, inside)
        assert json.loads((tmp_path / f"{cmd}.wav.json").read_text())["bars_generated"] == [2, 2]


def test_detected_grid_goes_into_the_sidecar(ctx, bundle, tmp_path, capsys):
    out = tmp_path / "plain.wav"
    code, stdout, err = run(capsys, bundle, "generate", ctx, "-o", out, "--text", "bass", "--meter", "4/4")
    assert code == 0, err
    meta = json.loads((tmp_path / "plain.wav.json").read_text())
    assert meta["meter"] == "4/4" and 20 < meta["bpm"] < 400 and meta["bars_generated"] is None
    assert sf.info(str(out)).samplerate == SR and "bpm 4/4" in stdout
    tempo = read_tempo_chunk(out)  # the tempo inside the WAV, as DAWs read it
    assert tempo["meter"] == "4/4" and abs(tempo["bpm"] - meta["bpm"]) < 1e-3
    assert tempo["beats"] == round(meta["duration_s"] * meta["bpm"] / 60)
    flac = tmp_path / "plain.flac"
    assert run(capsys, bundle, "generate", ctx, "-o", flac, "--text", "bass", "--meter", "4/4")[0] == 0
    assert read_tempo_chunk(flac) is None and json.loads((tmp_path / "plain.flac.json").read_text())["bpm"]


def test_the_tempo_chunk_keeps_the_audio_and_is_written_once(tmp_path):
    rng = np.random.default_rng(0)
    audio = (0.1 * rng.standard_normal((2, 4801))).astype(np.float32)  # an odd number of 16-bit frames
    for subtype in ("16", "24"):
        path = tmp_path / f"odd{subtype}.wav"
        save_audio(path, audio, SR, subtype=subtype)
        before, _ = sf.read(str(path), dtype="int32")
        grid = BarGrid.regular(BPM, "6/8", 0.0, 4801 / SR)
        assert add_tempo_chunk(path, grid, 4801 / SR)
        after, _ = sf.read(str(path), dtype="int32")
        assert np.array_equal(before, after)
        assert read_tempo_chunk(path) == {"bpm": pytest.approx(BPM), "meter": "6/8", "beats": 1}
        size = path.stat().st_size
        assert not add_tempo_chunk(path, grid, 4801 / SR) and path.stat().st_size == size  # already there
        with path.open("rb") as f:  # the RIFF size field covers the whole file
            assert int.from_bytes(f.read(8)[4:], "little") == size - 8
    flac = tmp_path / "x.flac"
    save_audio(flac, audio, SR)
    assert not add_tempo_chunk(flac, grid, 0.1) and read_tempo_chunk(flac) is None
    assert not add_tempo_chunk(tmp_path / "odd16.wav", None, 0.1)


@pytest.mark.parametrize("argv, message", [
    (["generate", "CTX", "--bars", "4:6", *GRID], "past the end"),
    (["generate", "CTX", "--bars", "0:2", *GRID], "numbered from 1"),
    (["generate", "CTX", "--bars", "3:2", *GRID], "after the last"),
    (["generate", "CTX", "--bars", "x", *GRID], "A:B"),
    (["generate", "CTX", "--bpm", 500], "between 20 and 400"),
    (["generate", "CTX", "--bpm", 20, "--bars", "1:1"], "between 20 and 400"),
    (["generate", "CTX", "--meter", "4/5"], "not understood"),
    (["generate", "CTX", "--meter", "waltz"], "look like"),
    (["generate", "CTX", "--downbeat", -1], ">= 0"),
    (["generate", "CTX", "--downbeat", 60, "--bars", "1:1"], "not inside"),
    (["generate", "CTX", "--loop-bars", 0], ">= 1"),
    (["generate", "CTX", "--loop-bars", 5, *GRID], "past the end"),
    (["generate", "CTX", "--loop-out", "LOOP"], "needs --loop-bars"),
    (["generate", "CTX", "--loop-bars", 2, "--loop", 2], "cannot be combined"),
    (["inpaint", "CTX", "CTX", "--bars", "1:2", "--start", 1], "not both"),
    (["inpaint", "CTX", "CTX"], "--start and --end"),
    (["vary", "CTX", "CTX", "--bars", "9:9", *GRID], "past the end"),
])
def test_bad_values_exit_2_with_one_line_before_any_model(ctx, tmp_path, capsys, argv, message):
    out = tmp_path / "never.wav"
    argv = [str(ctx) if a == "CTX" else str(tmp_path / "loop.wav") if a == "LOOP" else a for a in argv]
    code, stdout, err = run(capsys, str(tmp_path / "no_bundle"), *argv, "-o", out)
    assert code == 2 and message in err, err
    assert err.count("\n") == 1 and err.startswith("diffariff: error:")
    assert not out.exists() and not list(tmp_path.glob("*.json"))
