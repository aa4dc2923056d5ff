"""Output safety and early validation through the real command line (``diffariff.cli.main``), with real
audio files written here and a tiny bundle:

* no command writes over one of its own inputs (same path, another spelling, a symlink, a hard link,
  a numbered candidate or the mix) unless ``--overwrite`` is given; two outputs never share a file;
* an output that cannot be written (its folder is a file, a locked folder, a folder as output) is
  refused with one line and exit 2, before any model work, and leaves no file behind;
* bad outputs and bad inputs are refused before the bundle is even opened (a bundle with a corrupt
  codec file never gets to complain);
* a file with more than two channels gives one ``diffariff: warning:`` line, not a Python warning.
"""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest
import soundfile as sf

from diffariff.audio import load_audio, save_audio
from diffariff.cli import main
from diffariff.errors import OutputPathError
from diffariff.fsutil import atomic_path, check_output_path
from diffariff.testing import make_tiny_bundle

SR = 48_000
N = int(0.6 * SR)  # contexts and stems: 0.6 s (the minimum is 0.5 s), so the tiny models decode quickly
FAST = ["--sampler", "consistency", "--steps", "1", "--quiet"]


def tone(seconds: float, channels: int = 2, freq: float = 220.0, sr: int = SR) -> np.ndarray:
    """A decaying harmonic tone, float32 [channels, N]; each channel a little different."""
    t = np.arange(int(round(seconds * sr))) / sr
    rows = [sum(np.sin(2 * np.pi * freq * (1 + 0.01 * c) * h * t) / h for h in (1, 2, 3)) * np.exp(-2 * t)
            for c in range(channels)]
    return (0.2 * np.stack(rows)).astype(np.float32)


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    return make_tiny_bundle(tmp_path_factory.mktemp("b") / "tiny", train_frames=24, modes=("consistency",)).root


@pytest.fixture(scope="module")
def broken_bundle(bundle, tmp_path_factory):
    """The tiny bundle with its codec file overwritten by garbage: opening it fails at once."""
    root = tmp_path_factory.mktemp("broken") / "bundle"
    shutil.copytree(bundle, root)
    (root / "codec.safetensors").write_bytes(b"\x00garbage, not a checkpoint" * 10)
    return root


@pytest.fixture
def files(tmp_path):
    """Real audio files in a fresh folder: a 0.6-s context (wav and flac), a stem of the same length, a
    1.5-s reference, a 1.2-s style reference, an 8-channel context and a context named like a numbered
    candidate."""
    work = tmp_path / "work"
    work.mkdir()
    paths = {name: work / f"{name}.wav" for name in ("ctx", "stem", "ref", "style", "c_1")}
    save_audio(paths["ctx"], tone(N / SR), SR)
    save_audio(paths["stem"], tone(N / SR, freq=55.0), SR)
    save_audio(paths["ref"], tone(1.5, freq=330.0), SR)
    save_audio(paths["style"], tone(1.2, freq=110.0), SR)
    save_audio(paths["c_1"], tone(N / SR, freq=440.0), SR)
    paths["ctx8"] = work / "ctx8.wav"
    sf.write(str(paths["ctx8"]), tone(N / SR, channels=8).T, SR, subtype="PCM_16")
    paths["flac"] = work / "ctx.flac"
    save_audio(paths["flac"], tone(N / SR), SR)
    return paths


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def snapshot(folder):
    """{name: bytes} of every file in ``folder`` (hidden temporary files included)."""
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def assert_one_line_error(code, stdout, err, *needles):
    lines = err.strip().splitlines()
    assert code == 2 and stdout == "", (code, stdout, err)
    assert len(lines) == 1 and lines[0].startswith("diffariff: error: "), err
    for needle in needles:
        assert needle in lines[0], lines[0]


# ------------------------------------------------------------------------------ writing over inputs
@pytest.mark.parametrize("case", ["same", "spelled", "symlink", "hardlink", "mix_out", "reference", "style",
                                  "candidate", "flac_symlink", "inpaint", "vary", "vary_context", "reconstruct",
                                  "arrange"])
def test_an_output_never_replaces_an_input(case, files, bundle, broken_bundle, capsys):
    work = files["ctx"].parent
    (work / "link.wav").symlink_to(files["ctx"])
    os.link(files["ctx"], work / "hard.wav")
    (work / "link.flac").symlink_to(files["flac"])
    (work / "sub").mkdir()
    (work / "song").mkdir()
    shutil.copyfile(files["ctx"], work / "song" / "mix.wav")
    before = snapshot(work)
    gen = ["generate", files["ctx"], "--bundle", broken_bundle, *FAST]
    argv = {
        "same": [*gen, "-o", files["ctx"]],
        "spelled": [*gen, "-o", work / "sub" / ".." / "ctx.wav"],
        "symlink": [*gen, "-o", work / "link.wav"],
        "hardlink": [*gen, "-o", work / "hard.wav"],
        "mix_out": [*gen, "-o", work / "new.wav", "--mix-out", work / "link.wav"],
        "reference": [*gen, "-o", files["ref"], "--reference", files["ref"]],
        "style": [*gen, "-o", files["style"], "--style-reference", files["style"]],
        "candidate": ["generate", files["c_1"], "-o", work / "c.wav", "-n", 2, "--bundle", broken_bundle, *FAST],
        "flac_symlink": ["generate", files["flac"], "-o", work / "link.flac", "--bundle", broken_bundle, *FAST],
        "inpaint": ["inpaint", files["stem"], files["ctx"], "--start", 0.2, "--end", 0.4, "-o", files["stem"],
                    "--bundle", broken_bundle, *FAST],
        "vary": ["vary", files["stem"], files["ctx"], "-o", files["stem"], "--bundle", broken_bundle, *FAST],
        "vary_context": ["vary", files["stem"], files["ctx"], "-o", work / "hard.wav", "--bundle", broken_bundle,
                         *FAST],
        "reconstruct": ["reconstruct", files["ctx"], "-o", work / "link.wav", "--bundle", broken_bundle],
        "arrange": ["arrange", work / "song" / "mix.wav", "--part", "bass", "-o", work / "song", "--bundle",
                    broken_bundle, *FAST],
    }[case]
    assert_one_line_error(*run(capsys, *argv), "refusing to write over it", "--overwrite")
    assert snapshot(work) == before  # every input byte-identical, nothing new (no temporary files)
    assert (work / "link.wav").is_symlink() and os.path.samefile(work / "hard.wav", files["ctx"])


def test_two_outputs_of_one_command_never_share_a_file(files, broken_bundle, capsys):
    work = files["ctx"].parent
    before = snapshot(work)
    out = work / "out.wav"
    argv = ["generate", files["ctx"], "-o", out, "--mix-out", out, "--overwrite", "--bundle", broken_bundle, *FAST]
    assert_one_line_error(*run(capsys, *argv), "same file")
    assert snapshot(work) == before


def test_overwrite_allows_replacing_the_input(files, bundle, capsys):
    original = files["ctx"].read_bytes()
    code, stdout, err = run(capsys, "generate", files["ctx"], "-o", files["ctx"], "--overwrite", "--text", "bass",
                            "--seed", 1, "--bundle", bundle, *FAST)
    assert code == 0 and err == "", err
    audio, sr = load_audio(files["ctx"])
    assert files["ctx"].read_bytes() != original and sr == SR and audio.shape == (2, N)
    assert sorted(p.name for p in files["ctx"].parent.iterdir() if p.name.startswith(".")) == []


# ---------------------------------------------------------------------------- unwritable locations
def _locked_folder(tmp_path):
    """A folder this process cannot write into, or None when permissions do not stop it (root)."""
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        (locked / "probe").touch()
    except PermissionError:
        return locked
    (locked / "probe").unlink()
    locked.chmod(0o700)
    return None


@pytest.mark.parametrize("case", ["parent_is_file", "grandparent_is_file", "locked", "out_is_folder",
                                  "mix_out_parent_is_file"])
def test_unwritable_output_is_refused_before_any_model_work(case, files, tmp_path, broken_bundle, capsys):
    work = files["ctx"].parent
    blocker = work / "file.wav"
    shutil.copyfile(files["ctx"], blocker)
    (work / "folder.wav").mkdir()
    locked = _locked_folder(tmp_path)
    if case == "locked" and locked is None:
        case = "parent_is_file"  # running as root: chmod stops nothing; a file as the parent does
    out = {"parent_is_file": blocker / "x.wav", "grandparent_is_file": blocker / "sub" / "x.wav",
           "locked": (locked or tmp_path) / "x.wav", "out_is_folder": work / "folder.wav",
           "mix_out_parent_is_file": work / "new.wav"}[case]
    before = snapshot(work)
    argv = ["generate", files["ctx"], "-o", out, "--bundle", broken_bundle, *FAST]
    if case == "mix_out_parent_is_file":
        argv += ["--mix-out", blocker / "mix.wav"]
    code, stdout, err = run(capsys, *argv)
    assert_one_line_error(code, stdout, err)
    assert ("folder" in err) if case == "out_is_folder" else ("cannot write" in err), err
    assert snapshot(work) == before and not (work / "new.wav").exists()
    if locked is not None:
        assert list(locked.iterdir()) == []
        locked.chmod(0o700)


def test_failed_writes_are_one_line_errors_and_leave_no_temporary_file(files, tmp_path):
    """The last line of defence, :func:`atomic_path` (used by every writer): a folder that cannot be
    created, and a rename that fails at the very end, are OutputPathErrors and leave nothing."""
    blocker = files["ctx"]
    with pytest.raises(OutputPathError, match="cannot write .*x.wav: .*is a file, not a folder"):
        save_audio(blocker / "x.wav", tone(0.1), SR)
    target = tmp_path / "target.wav"
    target.mkdir()  # the final rename onto a folder fails after the data is written
    with pytest.raises(OutputPathError, match="cannot write"):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"data")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["target.wav", "work"] and not any(target.iterdir())


# ------------------------------------------------------------------------- validation before models
@pytest.mark.parametrize("case", ["missing", "not_audio", "nan", "too_short", "short_reference",
                                  "length_mismatch", "region", "too_long"])
def test_bad_inputs_are_refused_before_the_bundle_is_opened(case, files, broken_bundle, capsys):
    work = files["ctx"].parent
    (work / "notes.wav").write_text("these are my lyrics, not audio\n")
    sf.write(str(work / "nan.wav"), np.where(np.arange(N) == 100, np.nan, 0.1)[:, None].astype(np.float32), SR,
             subtype="FLOAT")
    save_audio(work / "short.wav", tone(0.3), SR)
    save_audio(work / "long_stem.wav", tone(1.5), SR)
    gen = ["--bundle", broken_bundle, *FAST]
    out = work / "out.wav"
    argv, needle = {
        "missing": (["generate", work / "nope.wav", "-o", out, *gen], "no such file"),
        "not_audio": (["generate", work / "notes.wav", "-o", out, *gen], "not a readable audio file"),
        "nan": (["generate", work / "nan.wav", "-o", out, *gen], "NaN"),
        "too_short": (["generate", work / "short.wav", "-o", out, *gen], "at least 0.5 s"),
        "short_reference": (["generate", files["ctx"], "-o", out, "--reference", work / "short.wav", *gen],
                            "at least 1 s"),
        "length_mismatch": (["vary", work / "long_stem.wav", files["ctx"], "-o", out, *gen], "lengths differ"),
        "region": (["inpaint", files["stem"], files["ctx"], "--start", 0.5, "--end", 3, "-o", out, *gen],
                   "inpaint region"),
        "too_long": (["generate", files["ctx"], "-o", out, "--max-seconds", 0.5, *gen], "longer than the limit"),
    }[case]
    before = snapshot(work)
    assert_one_line_error(*run(capsys, *argv), needle)  # not the broken bundle's complaint
    assert snapshot(work) == before


def test_a_broken_bundle_is_refused_after_the_inputs_and_before_loading(files, broken_bundle, capsys):
    """The same command with good paths gets to the bundle, which is refused with one line: so in the
    tests above the output and input checks did run first."""
    work = files["ctx"].parent
    code, stdout, err = run(capsys, "generate", files["ctx"], "-o", work / "out.wav", "--bundle", broken_bundle,
                            *FAST)
    assert_one_line_error(code, stdout, err, "codec")
    assert not (work / "out.wav").exists()


# ---------------------------------------------------------------------------------------- warnings
def test_eight_channel_file_gives_one_warning_line(files, bundle, capsys):
    out = files["ctx"].parent / "from8.wav"
    code, stdout, err = run(capsys, "generate", files["ctx8"], "-o", out, "--text", "pad", "--bundle", bundle, *FAST)
    assert code == 0, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("diffariff: warning: "), err
    assert "8-channel" in lines[0] and "ctx8.wav" in lines[0] and "UserWarning" not in err
    assert load_audio(out)[0].shape == (2, N) and stdout.startswith("wrote ")


# -------------------------------------------------------------------------------------- Python API
def test_accompanist_save_never_replaces_an_input_of_the_last_call(files, bundle):
    from diffariff.pipeline import Accompanist

    with pytest.raises(OutputPathError, match="is one of the inputs .*overwrite=True"):  # the shared helper
        check_output_path(files["ctx"].parent / ".." / "work" / "ctx.wav", [files["ctx"]], flag="overwrite=True")
    acc = Accompanist.from_pretrained(bundle)
    stems = acc.generate(files["ctx"], reference=files["ref"], steps=1, sampler="consistency", seed=0)
    original = files["ref"].read_bytes()
    for target in (files["ctx"], files["ref"]):
        with pytest.raises(OutputPathError, match="overwrite=True"):
            acc.save(target, stems[0])
    assert files["ref"].read_bytes() == original
    assert acc.save(files["ctx"].parent / "new.wav", stems[0]).is_file()
    acc.save(files["ref"], stems[0], overwrite=True)
    assert load_audio(files["ref"])[0].shape == (2, N)
