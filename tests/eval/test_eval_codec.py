"""``diffariff eval codec`` on a tiny rendered corpus with a tiny randomly initialised codec: every
system is scored on the same held-out clips, Opus and silence bracket the scale, the stochastic
decoder's two decodings differ, results are seeded, and bad input exits 2 with one line."""

from __future__ import annotations

import json

import numpy as np
import pytest

from codec_helpers import tiny_codec
from diffariff.cli import main
from diffariff.data.sources import open_dataset
from diffariff.data.synth.corpus import build_corpus
from diffariff.errors import ConfigError
from diffariff.eval.codec_eval import CodecEvalConfig, evaluate_codec, held_out_clips


@pytest.fixture(scope="session")
def eval_corpus(tmp_path_factory):
    """4 rendered songs of 12 s (same folder as test_eval_protocol's: rendered once per session)."""
    root = tmp_path_factory.getbasetemp() / "eval_corpus"
    build_corpus(root, songs=4, seconds=12, seed=11, jobs=1, progress=False)
    return root


@pytest.fixture(scope="module")
def codec():
    return tiny_codec(seed=0)


@pytest.fixture(scope="module")
def codec_file(codec, tmp_path_factory):
    path = tmp_path_factory.mktemp("codec") / "codec.safetensors"
    codec.save(path)
    return path


@pytest.fixture(scope="module")
def report(eval_corpus, codec_file, tmp_path_factory):
    out = tmp_path_factory.mktemp("codec_report")
    code = main(["eval", "codec", "--codec", str(codec_file), "--data", str(eval_corpus), "--split", "all",
                 "--seconds", "2", "--n", "2", "--out", str(out), "--opus", "24", "--steps", "1", "2",
                 "--no-progress"])
    assert code == 0
    return out


def test_every_system_is_scored_side_by_side(report):
    results = json.loads((report / "results.json").read_text())
    names = [s["name"] for s in results["systems"]]
    assert names == ["codec consistency, 1 step", "codec consistency, 2 steps", "codec deterministic",
                     "decode twice, 1 step", "decode twice, 2 steps", "Opus 24 kbps", "original", "silence"]
    assert results["clips"] == 4 and results["channels"] == 1
    assert [c["kind"] for c in results["clip_list"]] == ["stems", "mixes", "stems", "mixes"]
    by = {s["name"]: s["metrics"] for s in results["systems"]}
    for name, metrics in by.items():
        assert set(metrics) == {"stems", "mixes", "all"}, name
        assert metrics["all"]["mr_stft"]["n"] == 4 and metrics["stems"]["log_mel"]["n"] == 2
    # Opus at 24 kbps is far closer to the input than silence on every measure
    opus, silence = by["Opus 24 kbps"]["all"], by["silence"]["all"]
    assert opus["mr_stft"]["mean"] < silence["mr_stft"]["mean"]
    assert opus["log_mel"]["mean"] < silence["log_mel"]["mean"]
    assert opus["si_sdr"]["mean"] > 5.0 and silence["si_sdr"]["mean"] == pytest.approx(0.0, abs=1e-6)
    # Opus keeps the notes (pitch-class profiles correlate), silence has none
    assert opus["pitch_class"]["mean"] > 0.9 and silence["pitch_class"]["mean"] == 0.0
    # ... and so says librosa's constant-Q chroma, the independent check
    assert opus["chroma_cqt"]["mean"] > 0.9 and silence["chroma_cqt"]["mean"] == 0.0
    # the stochastic decoder's two decodings of one latent differ; the table lists every system
    assert by["decode twice, 1 step"]["all"]["mr_stft"]["mean"] > 0
    table = (report / "table.md").read_text()
    assert all(f"| {name} |" in table for name in names)
    assert "MR-STFT ↓ [stems]" in table and "SI-SDR (dB) ↑ [all]" in table


def test_codec_evaluation_is_seeded(eval_corpus, codec):
    config = CodecEvalConfig(n=1, seconds=1.0, seed=5, split=None, modes=("consistency",), steps=(1,), opus_kbps=())
    clips = held_out_clips(open_dataset(eval_corpus, split=None), config)
    assert [c["kind"] for c in clips] == ["stems", "mixes"]
    assert not np.array_equal(clips[1]["audio"], clips[0]["audio"])  # the mix holds the other stems too
    first = evaluate_codec(codec, clips, config, progress=False)
    again = evaluate_codec(codec, clips, config, progress=False)
    assert first["systems"] == again["systems"]
    other = evaluate_codec(codec, clips, CodecEvalConfig(n=1, seconds=1.0, seed=5, split=None,
                                                         modes=("consistency",), steps=(1,), opus_kbps=(),
                                                         decode_seed=9), progress=False)
    assert other["systems"][0]["metrics"] != first["systems"][0]["metrics"]


def test_cycled_stem_draw_spans_the_roles(eval_corpus):
    """``--stem-draw cycle``: with n = the number of songs, the default draw takes every song's first
    target stem, the cycled one song j's j-th, so the held-out stems are not all of one role."""
    songs = open_dataset(eval_corpus, split=None)
    stems = {}
    for draw in ("first", "cycle"):
        config = CodecEvalConfig(n=4, seconds=1.0, split=None, modes=("deterministic",), opus_kbps=(), stem_draw=draw)
        stems[draw] = [c["stem"] for c in held_out_clips(songs, config) if c["kind"] == "stems"]
    assert len(stems["cycle"]) == 4 and stems["cycle"][0] == stems["first"][0]
    assert stems["cycle"] != stems["first"]
    assert len({s.split("_")[0] for s in stems["cycle"]}) > len({s.split("_")[0] for s in stems["first"]})
    with pytest.raises(ConfigError, match="--stem-draw"):
        CodecEvalConfig(stem_draw="random")


@pytest.mark.parametrize("case", ["missing-codec", "bad-mode", "zero-n", "missing-data"])
def test_cli_errors_exit_2_with_one_line(case, eval_corpus, codec_file, tmp_path, capsys):
    args = {"--codec": str(codec_file), "--data": str(eval_corpus), "--split": "all", "--n": "1",
            "--seconds": "1", "--out": str(tmp_path / "out")}
    expect = {"missing-codec": "no such file", "bad-mode": "--mode must be among", "zero-n": "--n must be at least 1",
              "missing-data": "no such folder"}[case]
    extra = []
    if case == "missing-codec":
        args["--codec"] = str(tmp_path / "none.safetensors")
    elif case == "bad-mode":
        extra = ["--mode", "magic"]
    elif case == "zero-n":
        args["--n"] = "0"
    else:
        args["--data"] = str(tmp_path / "nope")
    argv = ["eval", "codec", *[x for kv in args.items() for x in kv], *extra]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("diffariff: error:") and expect in err[0]


def test_chunk_seams_are_measured_on_a_long_held_out_mixture(eval_corpus, codec_file, tmp_path, capsys):
    out = tmp_path / "seams"
    assert main(["eval", "codec", "--codec", str(codec_file), "--data", str(eval_corpus), "--split", "all",
                 "--seconds", "1", "--n", "1", "--out", str(out), "--opus", "--mode", "deterministic",
                 "--seam-seconds", "8", "--seam-chunk-seconds", "2", "--no-progress"]) == 0
    seams = json.loads((out / "results.json").read_text())["seams"]
    assert seams["n_borders"] >= 3 and seams["seconds"] == 8  # every ~2 s (whole latent frames)
    # the crossfaded, context-padded chunks agree with whole processing away from borders and near them
    assert 0 <= seams["elsewhere_error"] <= seams["border_error"] + 0.05 and seams["border_error"] < 0.5
    assert "chunk seams" in capsys.readouterr().out
    assert main(["eval", "codec", "--codec", str(codec_file), "--data", str(eval_corpus), "--split", "all",
                 "--out", str(out), "--seam-seconds", "600"]) == 2
    assert "no held-out song" in capsys.readouterr().err


def test_pitch_class_frames_name_the_played_note(render_notes):
    """Per 4096-sample frame, a held flute A4 puts its power in pitch class 0 (A) and a B-flat in class 1;
    the last column is the frame's total band power, ~0 in silence."""
    from diffariff.eval.latent_probe import pitch_class_frames

    for pitch, cls in ((69, 0), (70, 1), (72, 3)):
        a = render_notes(73, [pitch], beat_seconds=1.0, seconds=0.768).mean(axis=0)
        y = pitch_class_frames(a, 4096)
        assert y.shape == (9, 13)
        assert all(int(row[:12].argmax()) == cls for row in y[2:6])
        assert y[2:6, 12].min() > 1e3 * pitch_class_frames(np.zeros_like(a), 4096)[:, 12].max() + 1e-9


def test_latent_probe_scores_latents_against_log_mel(eval_corpus, codec_file, tmp_path, capsys):
    """``--latent-probe N``: a ridge probe from latents and from log-mel bands to per-frame pitch classes,
    fitted on training-split windows, scored on the held-out ones; log-mel bands hold the notes of rendered
    audio, so their probe correlates well; a negative window count is refused."""
    from diffariff.eval.latent_probe import latent_note_probe

    songs = open_dataset(eval_corpus, split="all")
    res = latent_note_probe(tiny_codec(seed=0), songs[:3], songs[3:], n_train=12, n_test=4, seconds=2.0)
    assert res["train_frames"] > 100 and res["test_frames"] > 20
    assert -1.0 <= res["latents"] <= 1.0 and res["log_mel"] > 0.3
    # the command: a copy of the corpus with its last song held out ("test")
    data = tmp_path / "corpus"
    for song in sorted(eval_corpus.iterdir()):
        (data / song.name).mkdir(parents=True)
        for f in song.iterdir():
            if f.name != "metadata.json":
                (data / song.name / f.name).symlink_to(f)
        meta = json.loads((song / "metadata.json").read_text())
        meta["split"] = "test" if song.name == songs[-1].name else "train"
        (data / song.name / "metadata.json").write_text(json.dumps(meta))
    out = tmp_path / "probe"
    assert main(["eval", "codec", "--codec", str(codec_file), "--data", str(data), "--seconds", "2", "--n", "2",
                 "--out", str(out), "--opus", "--mode", "deterministic", "--latent-probe", "8", "--no-progress"]) == 0
    probe = json.loads((out / "results.json").read_text())["latent_probe"]
    assert probe["n_train"] == 8 and probe["test_frames"] > 10
    assert "latent pitch probe" in (out / "table.md").read_text()
    capsys.readouterr()
    assert main(["eval", "codec", "--codec", str(codec_file), "--data", str(data), "--split", "all", "--out", str(out),
                 "--latent-probe", "4"]) == 2  # every song is held out: nothing to fit on
    assert "training-split songs outside" in capsys.readouterr().err
    assert main(["eval", "codec", "--codec", str(codec_file), "--data", str(data), "--out", str(out),
                 "--latent-probe", "-1"]) == 2
    assert "--latent-probe must be >= 0" in capsys.readouterr().err
