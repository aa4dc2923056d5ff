"""Bar options and DAW-friendly outputs on the command line, end to end with a tiny bundle on a rendered
44.1 kHz corpus song: ``analyze``, ``generate --bars / --loop-bars / --loop-out``, ``inpaint --bars``,
``vary --bars``, the overrides ``--bpm / --meter / --downbeat``, sidecars, and one-line errors (exit
2, nothing written) for bad values before any model loads."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import wave

import numpy as np
import pytest
import soundfile as sf

from diffariff.audio import append_wav_chunk, load_audio, resample, save_audio
from diffariff.cli import main
from diffariff.longform.writer import write_blocks
from diffariff.testing import make_tiny_bundle
from diffariff.timing.bars import BarGrid
from diffariff.timing.daw import OutputFormat, acid_chunk, read_tempo_chunk, write_outputs

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


def bytes_written() -> int:
    """Bytes this process has passed to write() so far (Linux ``/proc/self/io``), all threads."""
    with open("/proc/self/io") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("wchar:"))


def same_but_the_chunk(with_chunk: bytes, plain: bytes, chunk: bytes) -> bool:
    """``with_chunk`` is ``plain`` with ``chunk`` (after a pad byte, for an odd length) appended and the
    RIFF size field (bytes 4-7) updated: the audio and every other byte are the same."""
    pad = b"\0" * (len(plain) % 2)
    return (with_chunk[:4] + with_chunk[8:] == plain[:4] + plain[8:] + pad + chunk
            and int.from_bytes(with_chunk[4:8], "little") == len(with_chunk) - 8)


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


@pytest.mark.skipif(not os.path.exists("/proc/self/io"), reason="counts written bytes with Linux /proc/self/io")
def test_generate_writes_the_tempo_chunk_with_the_audio_in_one_write(ctx, bundle, tmp_path, capsys):
    """The streamed ``generate`` path: the same stem without a grid (``--no-sidecar``: no tempo analysis)
    and with one; the two files differ only by the chunk, and the second costs no second copy of the file."""
    argv = ("generate", ctx, "--text", "bass", *GRID)
    assert run(capsys, bundle, *argv, "-o", tmp_path / "warm.wav")[0] == 0  # first-use costs out of the count
    counts = {}
    for name, extra in (("bare.wav", ["--no-sidecar"]), ("tempo.wav", [])):
        before = bytes_written()
        code, _, err = run(capsys, bundle, *argv, "-o", tmp_path / name, *extra)
        counts[name] = bytes_written() - before
        assert code == 0, err
    bare, tempo = (tmp_path / "bare.wav").read_bytes(), (tmp_path / "tempo.wav").read_bytes()
    seconds = sf.info(str(ctx)).frames / SR
    chunk = acid_chunk(BarGrid.regular(BPM, "4/4", 0.0, seconds), seconds)
    assert read_tempo_chunk(tmp_path / "tempo.wav") == {"bpm": pytest.approx(BPM), "meter": "4/4",
                                                        "beats": round(10.0 * BPM / 60)}
    assert read_tempo_chunk(tmp_path / "bare.wav") is None
    assert same_but_the_chunk(tempo, bare, chunk)  # bit-identical audio, header and all
    sidecar_bytes = (tmp_path / "tempo.wav.json").stat().st_size
    extra = counts["tempo.wav"] - counts["bare.wav"]  # the chunk and the sidecar; a copy would add len(tempo)
    assert sidecar_bytes + len(chunk) <= extra < sidecar_bytes + len(chunk) + len(tempo) // 4, (extra, len(tempo))
    with wave.open(str(tmp_path / "tempo.wav")) as w:
        assert (w.getframerate(), w.getnframes(), w.getsampwidth()) == (SR, sf.info(str(ctx)).frames, 3)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bare.wav", "tempo.wav", "tempo.wav.json", "warm.wav",
                                                          "warm.wav.json"]  # no temporary file left


def _signal(frames: int, channels: int) -> np.ndarray:
    return (0.1 * np.random.default_rng(frames).standard_normal((channels, frames))).astype(np.float32)


@pytest.mark.parametrize("subtype, channels", [("16", 2), ("24", 1), ("24", 2), ("float", 2)])
def test_the_tempo_chunk_is_appended_in_the_same_write(tmp_path, subtype, channels):
    frames = 4801  # odd: 24-bit mono gives an odd data chunk (libsndfile pads it)
    audio, seconds = _signal(frames, channels), frames / SR
    chunk = acid_chunk(BarGrid.regular(BPM, "6/8", 0.0, seconds), seconds)
    plain, tagged = tmp_path / "plain.wav", tmp_path / "tagged.wav"
    save_audio(plain, audio, SR, subtype=subtype)
    save_audio(tagged, audio, SR, subtype=subtype, extra_chunk=chunk)
    assert same_but_the_chunk(tagged.read_bytes(), plain.read_bytes(), chunk)
    a, _ = sf.read(str(plain), dtype="float32")
    b, _ = sf.read(str(tagged), dtype="float32")
    assert np.array_equal(a, b) and sf.info(str(tagged)).frames == frames
    assert read_tempo_chunk(tagged) == {"bpm": pytest.approx(BPM), "meter": "6/8", "beats": 1}
    if subtype != "float":  # Python's wave module reads PCM only
        with wave.open(str(tagged)) as w, wave.open(str(plain)) as v:
            assert (w.getnchannels(), w.getnframes()) == (channels, frames)
            assert w.readframes(frames) == v.readframes(frames)
    # the streamed writer, resampling 48 -> 44.1 kHz, block by block
    blocks = [_signal(30_001, 2)[:, k:k + 7000] for k in range(0, 30_001, 7000)]
    write_blocks(tmp_path / "plain_s.wav", blocks, SR, 27_563, subtype=subtype)
    write_blocks(tmp_path / "tagged_s.wav", blocks, SR, 27_563, subtype=subtype, extra_chunk=chunk)
    assert same_but_the_chunk((tmp_path / "tagged_s.wav").read_bytes(), (tmp_path / "plain_s.wav").read_bytes(), chunk)
    flac = tmp_path / "x.flac"  # FLAC has no RIFF chunks: none is written
    if subtype != "float":
        save_audio(flac, audio, SR, subtype=subtype, extra_chunk=chunk)
        write_blocks(tmp_path / "s.flac", blocks, SR, 27_563, subtype=subtype, extra_chunk=chunk)
        assert read_tempo_chunk(flac) is None and read_tempo_chunk(tmp_path / "s.flac") is None
        save_audio(tmp_path / "plain.flac", audio, SR, subtype=subtype)
        assert np.array_equal(sf.read(str(flac))[0], sf.read(str(tmp_path / "plain.flac"))[0])
    assert not list(tmp_path.glob(".*"))  # no temporary file left


@pytest.mark.skipif(not os.path.exists("/proc/self/io"), reason="counts written bytes with Linux /proc/self/io")
def test_write_outputs_writes_each_file_once(tmp_path):
    fmt = OutputFormat(SR, 2 * SR)
    grid = BarGrid.regular(BPM, "4/4", 0.0, 2.0)
    audio = _signal(2 * 48_000, 2)
    before = bytes_written()
    write_outputs([(tmp_path / "a.wav", audio, None)], fmt, grid)
    spent = bytes_written() - before
    size = (tmp_path / "a.wav").stat().st_size
    assert size <= spent < size + 4096, (spent, size)  # the file once (+ its header rewritten), not twice
    assert read_tempo_chunk(tmp_path / "a.wav")["meter"] == "4/4"


def test_a_failed_append_leaves_no_output_and_no_temporary_file(tmp_path):
    audio = _signal(4801, 2)
    chunk = acid_chunk(BarGrid.regular(BPM, "4/4", 0.0, 0.2), 0.2)
    out = tmp_path / "out.wav"
    out.write_bytes(b"an older file that must survive")
    with pytest.raises(ValueError):  # malformed chunk bytes: refused once the audio is written
        save_audio(out, audio, SR, extra_chunk=chunk[:-1])
    assert out.read_bytes() == b"an older file that must survive" and os.listdir(tmp_path) == ["out.wav"]
    # a real write error while appending: the file size limit (RLIMIT_FSIZE) set to the audio file's size,
    # so that libsndfile's write succeeds and the chunk's fails (EFBIG), in a child process
    save_audio(tmp_path / "probe.wav", audio, SR)
    limit = (tmp_path / "probe.wav").stat().st_size
    (tmp_path / "probe.wav").unlink()
    script = f"""
import resource, signal, sys
import numpy as np
from diffariff.audio import save_audio
from diffariff.errors import OutputPathError
from diffariff.longform.writer import write_blocks
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
audio = np.load(sys.argv[1])
resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, {limit}))
for write in (lambda: save_audio(sys.argv[2], audio, {SR}, extra_chunk=bytes.fromhex(sys.argv[3])),
              lambda: write_blocks(sys.argv[2], [audio], {SR}, audio.shape[1], extra_chunk=bytes.fromhex(sys.argv[3]))):
    try:
        write()
        print("written")
    except OutputPathError as exc:
        print("refused:", exc)
"""
    np.save(tmp_path / "audio.npy", audio)
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path / "audio.npy"), str(out), chunk.hex()],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 2 and all(line.startswith(f"refused: cannot write {out}: File too large") for line in lines)
    assert out.read_bytes() == b"an older file that must survive"
    assert sorted(os.listdir(tmp_path)) == ["audio.npy", "out.wav"]


def test_rf64_and_oversized_files_get_no_chunk(tmp_path):
    chunk = acid_chunk(BarGrid.regular(BPM, "4/4", 0.0, 1.0), 1.0)
    rf64 = tmp_path / "x.wav"
    sf.write(str(rf64), np.zeros((100, 2)), SR, format="RF64", subtype="PCM_24")
    before = rf64.read_bytes()
    assert not append_wav_chunk(rf64, chunk) and rf64.read_bytes() == before
    for size in (0xFFFFFFFF + 8 - 16, 0x100000010):  # the chunk would overflow the size field; 4 GiB + 16
        big = tmp_path / "big.wav"
        with big.open("wb") as f:
            f.write(b"RIFF" + min(size - 8, 0xFFFFFFFF).to_bytes(4, "little") + b"WAVE")
            f.truncate(size)  # sparse: no data blocks are written
        if big.stat().st_blocks * 512 > 1 << 20:
            big.unlink()
            pytest.skip("this file system does not keep sparse files")
        assert not append_wav_chunk(big, chunk) and big.stat().st_size == size
        with big.open("rb") as f:
            assert f.read(12)[4:8] == min(size - 8, 0xFFFFFFFF).to_bytes(4, "little")
        big.unlink()


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
