"""``diffariff inpaint | vary | arrange`` write what the Accompanist's array methods give for the same
seed (through :func:`diffariff.timing.daw.write_outputs`: the context's rate and length, 24-bit), to a
24-bit rounding step, whichever path (whole arrays or streamed ``*_to_files``) the command takes; the
sidecars name the bars. Rendered 4-s files at 44.1 kHz, a tiny bundle."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from diffariff.audio import save_audio
from diffariff.cli import main
from diffariff.pipeline import Accompanist
from diffariff.testing import make_tiny_bundle
from diffariff.timing.daw import OutputFormat, write_outputs

RATE = 44_100
STEP = 2 / 2**23
FAST = ["--sampler", "consistency", "--steps", "1", "--seed", "3", "--quiet"]
KW = dict(sampler="consistency", steps=1, seed=3)


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    return str(make_tiny_bundle(tmp_path_factory.mktemp("b") / "tiny", train_frames=24, codec="synth",
                                modes=("consistency",)).root)


@pytest.fixture(scope="module")
def acc(bundle):
    return Accompanist.from_pretrained(bundle, for_sampler="consistency")


@pytest.fixture(scope="module")
def files(tmp_path_factory, render_notes):
    root = tmp_path_factory.mktemp("audio")
    piano = render_notes(0, [60, 64, 67, 72, 67, 64, 60, 55] * 2, beat_seconds=0.25, seconds=4.0)
    bass = render_notes(33, [36, 43, 41, 38, 36, 31, 33, 36] * 2, beat_seconds=0.25, seconds=4.0)
    paths = {"ctx": root / "ctx.wav", "stem": root / "stem.wav"}
    save_audio(paths["ctx"], piano, RATE)
    save_audio(paths["stem"], bass, RATE)
    return paths


def _compare(paths, arrays, fmt, tmp_path, atol=STEP):
    refs = [tmp_path / f"ref_{k}.wav" for k in range(len(paths))]
    write_outputs([(r, a, None) for r, a in zip(refs, arrays)], fmt)
    for path, ref in zip(paths, refs):
        got, sr = sf.read(str(path), dtype="float32")
        want, _ = sf.read(str(ref), dtype="float32")
        assert sr == RATE and got.shape == want.shape == (fmt.length, 2)
        np.testing.assert_allclose(got, want, atol=atol, rtol=0)


def test_inpaint_and_vary_write_the_arrays(bundle, acc, files, tmp_path, capsys):
    fmt = OutputFormat.of_file(files["ctx"])
    outs = [tmp_path / "in_1.wav", tmp_path / "in_2.wav"]
    assert main(["inpaint", str(files["stem"]), str(files["ctx"]), "--start", "1.1", "--end", "2.3", "-n", "2",
                 "-o", str(tmp_path / "in.wav"), "--bundle", bundle, *FAST]) == 0
    _compare(outs, acc.inpaint(files["stem"], files["ctx"], 1.1, 2.3, n=2, **KW), fmt, tmp_path)

    timing = ["--bpm", "120", "--meter", "4/4", "--downbeat", "0"]
    assert main(["vary", str(files["stem"]), str(files["ctx"]), "--strength", "0.6", "--bars", "2:2",
                 "-o", str(tmp_path / "v.wav"), "--bundle", bundle, *timing, *FAST]) == 0
    grid = acc.analyze(files["ctx"], bpm=120, meter="4/4", downbeat=0.0)
    _compare([tmp_path / "v.wav"], acc.vary_bars(files["stem"], files["ctx"], (2, 2), 0.6, grid=grid, **KW), fmt,
             tmp_path)
    meta = json.loads((tmp_path / "v.wav.json").read_text())
    assert meta["bars_generated"] == [2, 2] and meta["kind"] == "stem" and meta["num_samples"] == fmt.length
    assert "bars 2-2" not in capsys.readouterr().err


def test_arrange_writes_the_arrays(bundle, acc, files, tmp_path):
    fmt = OutputFormat.of_file(files["ctx"])
    assert main(["arrange", str(files["ctx"]), "--part", "bass", "--part", "pad", "-o", str(tmp_path / "song"),
                 "--bundle", bundle, *FAST]) == 0
    song = acc.arrange(files["ctx"], [{"text": "bass"}, {"text": "pad"}], **KW)
    names = ["stem_01_bass.wav", "stem_02_pad.wav", "mix.wav"]
    _compare([tmp_path / "song" / names[0]], song.stems[:1], fmt, tmp_path)
    # the second part hears the first stem, whose loudness the streamed path measures block-wise
    _compare([tmp_path / "song" / n for n in names[1:]], [song.stems[1], song.mix], fmt, tmp_path, atol=1e-4)
    assert json.loads((tmp_path / "song" / "mix.wav.json").read_text())["kind"] == "mix"
