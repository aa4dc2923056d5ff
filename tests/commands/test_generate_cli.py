"""``diffariff generate | arrange | inpaint | vary`` end to end on rendered audio with a tiny bundle:
outputs aligned with the inputs, exit codes, one-line errors and no output at all on bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from diffariff.audio import load_audio, save_audio
from diffariff.bundle import MANIFEST
from diffariff.cli import main
from diffariff.testing import make_tiny_bundle

SR = 48_000


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    return str(make_tiny_bundle(tmp_path_factory.mktemp("b") / "tiny", train_frames=24).root)


@pytest.fixture(scope="module")
def files(tmp_path_factory, render_notes):
    root = tmp_path_factory.mktemp("audio")
    piano = render_notes(0, [60, 64, 67, 72, 67, 64, 60, 55], beat_seconds=0.15, seconds=1.2)
    bass = render_notes(33, [36, 43, 41, 38, 36, 31, 33, 36], beat_seconds=0.15, seconds=1.2)
    paths = {"ctx": root / "ctx.wav", "stem": root / "stem.flac", "mono": root / "mono44.wav"}
    save_audio(paths["ctx"], piano[:, : SR + 333], SR)
    save_audio(paths["stem"], bass[:, : SR + 333], SR)
    save_audio(paths["mono"], piano[0, :44_100], 44_100)
    paths["short"] = root / "short.wav"
    save_audio(paths["short"], piano[:, : SR // 5], SR)
    paths["silent"] = root / "silent.wav"
    save_audio(paths["silent"], np.zeros((2, SR), np.float32), SR)
    paths["nan"] = root / "nan.wav"
    bad = piano[:, :SR].copy()
    bad[0, 10] = np.nan
    sf.write(str(paths["nan"]), bad.T, SR, subtype="FLOAT")
    paths["corrupt"] = root / "corrupt.wav"
    paths["corrupt"].write_bytes(b"RIFF\x00\x00\x00\x00WAVEnot really audio")
    paths["multi"] = root / "multi.wav"
    save_audio(paths["multi"], np.concatenate([piano, piano])[:, :SR], SR)
    paths["ref_short"] = root / "ref_short.wav"
    save_audio(paths["ref_short"], bass[:, : SR // 2], SR)
    return paths


FAST = ["--steps", "2", "--sampler", "euler", "--quiet"]


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_generate_end_to_end(bundle, files, tmp_path, capsys):
    out, mix = tmp_path / "bass.wav", tmp_path / "mix.flac"
    code, stdout, err = run(capsys, "generate", files["ctx"], "-o", out, "--mix-out", mix, "--text", "warm bass",
                            "--seed", 1, "--bundle", bundle, *FAST)
    assert code == 0, err
    audio, sr = load_audio(out)
    assert sr == SR and audio.shape == (2, SR + 333) and "seed 1" in stdout
    assert load_audio(mix)[0].shape == (2, SR + 333)
    again = tmp_path / "again.wav"
    assert run(capsys, "generate", files["ctx"], "-o", again, "--text", "warm bass", "--seed", 1, "--bundle",
               bundle, *FAST)[0] == 0
    np.testing.assert_array_equal(load_audio(again)[0], audio)
    limited = tmp_path / "limited.wav"  # guidance at the high noise levels only: another stem, same length
    assert run(capsys, "generate", files["ctx"], "-o", limited, "--text", "warm bass", "--seed", 1, "--bundle",
               bundle, *FAST, "--cfg-context", 3, "--guidance-interval", 1, 1000)[0] == 0
    assert load_audio(limited)[0].shape == audio.shape and not np.allclose(load_audio(limited)[0], audio)


def test_generate_on_a_synth_codec_bundle_streams_its_stems(files, tmp_path, capsys):
    """The default bundle's codec kind: the plain (streamed) path and the whole-array loop path."""
    synth = make_tiny_bundle(tmp_path / "s", train_frames=24, modes=("consistency",), codec="synth").root
    out, looped = tmp_path / "bass.wav", tmp_path / "loop.wav"
    code, _, err = run(capsys, "generate", files["ctx"], "-o", out, "--seed", 2, "--bundle", synth, "--quiet")
    assert code == 0, err
    audio, sr = load_audio(out)
    assert sr == SR and audio.shape == (2, SR + 333) and np.isfinite(audio).all() and np.abs(audio).max() > 0
    code, _, err = run(capsys, "generate", files["ctx"], "-o", looped, "--seed", 2, "--bundle", synth, "--loop", 2,
                       "--quiet")
    assert code == 0, err
    assert load_audio(looped)[0].shape == (2, SR + 333)


def test_generate_says_when_the_context_prior_chose_and_no_prior_turns_it_off(files, tmp_path, capsys):
    prior_bundle = make_tiny_bundle(tmp_path / "p", train_frames=24, modes=("consistency",), prior=True).root
    outs = {}
    for name, extra in (("prior", []), ("raw", ["--no-prior"]), ("text", ["--text", "bass"])):
        outs[name] = tmp_path / f"{name}.wav"
        code, stdout, err = run(capsys, "generate", files["ctx"], "-o", outs[name], "--seed", 3, "--bundle",
                                prior_bundle, *FAST[:2], "--quiet", *extra)
        assert code == 0, err
        assert ("context prior" in stdout) == (name == "prior"), stdout
    assert not np.allclose(load_audio(outs["prior"])[0], load_audio(outs["raw"])[0])


def test_generate_candidates_crop_and_resampled_mono(bundle, files, tmp_path, capsys):
    out = tmp_path / "c.wav"
    code, _, err = run(capsys, "generate", files["ctx"], "-o", out, "-n", 2, "--seconds", 0.7, "--seed", 0,
                       "--bundle", bundle, *FAST)
    assert code == 0, err
    assert not out.exists()
    for k in (1, 2):
        assert load_audio(tmp_path / f"c_{k}.wav")[0].shape == (2, int(0.7 * SR))
    code, _, err = run(capsys, "generate", files["mono"], "-o", tmp_path / "m.wav", "--bundle", bundle,
                       "--sampler", "consistency", "--quiet")
    assert code == 0, err
    mono, mono_sr = load_audio(tmp_path / "m.wav")
    assert (mono.shape, mono_sr) == ((2, 44_100), 44_100)  # written at the context's rate and length


def test_arrange_inpaint_and_vary(bundle, files, tmp_path, capsys):
    song = tmp_path / "song"
    code, _, err = run(capsys, "arrange", "--seconds", 0.8, "--part", "drums", "--part", "warm bass", "-o", song,
                       "--seed", 3, "--bundle", bundle, *FAST)
    assert code == 0, err
    names = sorted(p.name for p in song.iterdir() if p.suffix == ".wav")  # each with its OUT.wav.json sidecar
    assert names == ["mix.wav", "stem_01_drums.wav", "stem_02_warm_bass.wav"]
    out = tmp_path / "inp.wav"
    code, _, err = run(capsys, "inpaint", files["stem"], files["ctx"], "--start", 0.3, "--end", 0.6, "-o", out,
                       "--seed", 0, "--bundle", bundle, *FAST)
    assert code == 0, err
    new, stem = load_audio(out)[0], load_audio(files["stem"])[0]
    assert new.shape == stem.shape
    np.testing.assert_allclose(new[:, : int(0.25 * SR)], stem[:, : int(0.25 * SR)], atol=1e-4)
    out = tmp_path / "var.wav"
    code, _, err = run(capsys, "vary", files["stem"], files["ctx"], "--strength", 0.3, "-o", out, "--bundle",
                       bundle, *FAST)
    assert code == 0, err
    assert load_audio(out)[0].shape == stem.shape
    windowed = tmp_path / "var_windowed.wav"  # windows of 0.4 s (5 frames) over the 1-s stem
    code, _, err = run(capsys, "vary", files["stem"], files["ctx"], "--strength", 0.3, "-o", windowed, "--bundle",
                       bundle, "--long-mode", "windowed", "--window-seconds", 0.4, *FAST)
    assert code == 0, err
    assert load_audio(windowed)[0].shape == stem.shape
    assert not np.allclose(load_audio(windowed)[0], load_audio(out)[0])


def test_help_has_examples(capsys):
    for cmd in ("generate", "arrange", "inpaint", "vary"):
        with pytest.raises(SystemExit) as exc:
            main([cmd, "--help"])
        assert exc.value.code == 0
        assert "examples:" in capsys.readouterr().out


@pytest.mark.parametrize("case", ["missing", "corrupt", "nan", "short", "long", "ref_short", "bad_suffix",
                                  "width", "no_bundle", "bad_region", "bad_strength", "empty_text", "window",
                                  "interval"])
def test_bad_input_exits_2_with_one_line_and_writes_nothing(case, bundle, files, tmp_path, capsys):
    out = tmp_path / "out.wav"
    gen = ["generate", files["ctx"], "-o", out, "--bundle", bundle, *FAST]
    argv = {
        "missing": ["generate", tmp_path / "nope.wav", "-o", out, "--bundle", bundle, *FAST],
        "corrupt": ["generate", files["corrupt"], "-o", out, "--bundle", bundle, *FAST],
        "nan": ["generate", files["nan"], "-o", out, "--bundle", bundle, *FAST],
        "short": ["generate", files["short"], "-o", out, "--bundle", bundle, *FAST],
        "long": [*gen, "--max-seconds", 0.5],
        "ref_short": [*gen, "--reference", files["ref_short"]],
        "bad_suffix": ["generate", files["ctx"], "-o", tmp_path / "out.mp3", "--bundle", bundle, *FAST],
        "width": [*gen, "--width", 2],
        "no_bundle": ["generate", files["ctx"], "-o", out, "--bundle", tmp_path / "nobundle", *FAST],
        "bad_region": ["inpaint", files["stem"], files["ctx"], "--start", 0.9, "--end", 5, "-o", out, "--bundle",
                       bundle, *FAST],
        "bad_strength": ["vary", files["stem"], files["ctx"], "--strength", 1.5, "-o", out, "--bundle", bundle, *FAST],
        "empty_text": [*gen, "--text", " "],
        "window": [*gen, "--window-seconds", 0],
        "interval": [*gen, "--guidance-interval", 5, 1],
    }[case]
    code, stdout, err = run(capsys, *argv)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("diffariff: error: ") and stdout == ""
    assert list(tmp_path.iterdir()) == []


def test_incompatible_bundle_is_refused(bundle, files, tmp_path, capsys):
    import shutil

    other = make_tiny_bundle(tmp_path / "other", seed=5, modes=("edm",)).root
    mixed = tmp_path / "mixed"
    shutil.copytree(bundle, mixed)
    shutil.copyfile(other / "clap.safetensors", mixed / "clap.safetensors")
    out = tmp_path / "o" / "out.wav"
    code, _, err = run(capsys, "generate", files["ctx"], "-o", out, "--bundle", mixed, *FAST)
    assert code == 2 and "trained with clap" in err and not out.parent.exists()
    data = json.loads((mixed / MANIFEST).read_text())
    data["diffusion"] = {"edm": "codec.safetensors"}
    (mixed / MANIFEST).write_text(json.dumps(data))
    code, _, err = run(capsys, "generate", files["ctx"], "-o", out, "--bundle", mixed, *FAST)
    assert code == 2 and "expected 'latent-diffusion'" in err


def test_documented_inputs_work(bundle, files, tmp_path, capsys):
    code, _, err = run(capsys, "generate", files["silent"], "-o", tmp_path / "s.wav", "--bundle", bundle, *FAST)
    assert code == 0, err  # silent context: generated from the CLAP condition alone
    code, _, err = run(capsys, "generate", files["multi"], "-o", tmp_path / "m.wav", "--bundle", bundle, *FAST)
    assert code == 0, err  # 4 channels: averaged to mono (one warning line, no Python warning), then stereo
    assert err.strip().splitlines() == [f"diffariff: warning: {files['multi']}: downmixing 4-channel audio to mono "
                                        "by averaging its channels"]
    assert load_audio(tmp_path / "m.wav")[0].shape == (2, SR)


def test_the_console_script_ends_with_every_file_written(bundle, files, tmp_path):
    """``diffariff generate`` as a process (``cli.run``: it skips Python's finalisation after the command):
    the stem and its sidecar are complete, and a bad input still exits 2 with one line."""
    import subprocess
    import sys

    out = tmp_path / "stem.wav"
    cmd = [sys.executable, "-m", "diffariff.cli", "generate", str(files["ctx"]), "-o", str(out), "--bundle", bundle,
           "--text", "bass", *FAST]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("wrote ") and done.stdout.endswith("\n")  # flushed before the exit
    audio, sr = load_audio(out)
    assert sr == SR and audio.shape[-1] == SR + 333 and np.isfinite(audio).all()
    assert json.loads((tmp_path / "stem.wav.json").read_text())["kind"] == "stem"
    bad = subprocess.run([*cmd[:4], str(files["nan"]), "-o", str(tmp_path / "bad.wav"), "--bundle", bundle, *FAST],
                         capture_output=True, text=True, timeout=600)
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1 and not (tmp_path / "bad.wav").exists()
