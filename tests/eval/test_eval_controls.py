"""``diffariff eval controls`` end to end on a tiny rendered corpus with a tiny real bundle: style
grounding, length generalisation (direct vs windowed) and seams; the report; typed errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from diffariff.clap.builtin import BuiltinClap
from diffariff.cli import main
from diffariff.data.sources import open_dataset
from diffariff.data.synth.corpus import build_corpus
from diffariff.errors import InputError
from diffariff.eval.controls import ControlsConfig, evaluate_controls, held_out_pairs
from diffariff.testing import make_tiny_bundle

ARGS = ["--split", "all", "--n", "2", "--long-n", "2", "--long-seconds", "8", "--window-seconds", "3",
        "--segment-seconds", "2", "--slice-seconds", "4", "--reference-seconds", "1", "--strengths", "1.0", "--steps", "3", "--seed", "1", "--no-progress"]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    base = tmp_path_factory.mktemp("controls")
    corpus = base / "corpus"
    build_corpus(corpus, songs=2, seconds=12, seed=2, jobs=1, progress=False)
    bundle = make_tiny_bundle(base / "bundle", modes=("consistency",), train_frames=24)
    return corpus, bundle


def test_held_out_pairs_have_short_references_and_prompts(setup):
    corpus, _ = setup
    items = held_out_pairs(open_dataset(corpus, split="all"), 8.0, 1.0, 2, 0)
    for it in items:
        assert it["context"].shape == it["target"].shape == (2, 8 * 48_000)
        assert it["reference"].shape == (2, 48_000) and it["prompt"]


def test_controls_report_measures_grounding_length_and_seams(setup, tmp_path, capsys):
    corpus, bundle = setup
    out = tmp_path / "report"
    assert main(["eval", "controls", "--bundle", str(bundle.root), "--clap", str(bundle.clap),
                 "--data", str(corpus), "--out", str(out), *ARGS]) == 0
    assert "Style grounding" in capsys.readouterr().out
    res = json.loads((out / "results.json").read_text())
    assert res["format"] == "diffariff-eval-controls" and res["arguments"]["long_seconds"] == 8
    sg = res["style_grounding"]
    assert set(sg) >= {"none", "1", "real_target_cos_reference"}
    for label in ("none", "1"):
        assert sg[label]["cos_reference"]["n"] == 2 and -1 <= sg[label]["cos_reference"]["mean"] <= 1
    lg = res["length_generalisation"]
    assert lg["train_window_seconds"] == pytest.approx(24 * 4096 / 48_000)
    assert lg["slice_seconds"] == 4
    for mode in ("direct", "windowed", "sliced"):
        row = lg["modes"][mode]
        assert len(row["cos_target_per_segment"]) == 4 and np.isfinite(row["level_db_per_segment"]).all()
        # training window 2.05 s: segment 0 (0-2 s) is within it, segments 1-3 are beyond
        assert row["cos_target_within_train_window"]["n"] == 2
        assert row["cos_target_beyond_train_window"]["n"] == 6
        assert 0.0 <= row["apa"] <= 1.0 and row["apa_windows"] == 2
        assert len(row["apa_per_slice"]) == 2 and all(0.0 <= a <= 1.0 for a in row["apa_per_slice"])
    # sliced = each 4-s piece generated on its own: not the same stem as one pass over 8 s
    assert lg["modes"]["sliced"]["level_db_per_segment"] != lg["modes"]["direct"]["level_db_per_segment"]
    assert "APA per 4-s slice" in (out / "table.md").read_text()
    assert lg["seams"]["windows_per_stem"] >= 3 and lg["seams"]["generated_flux_ratio"]["mean"] > 0
    assert (out / "table.md").read_text().count("|") > 20


def test_window_lengths_compare_without_style_grounding(setup, tmp_path):
    """``--long-modes windowed:S ... --no-style``: only the named modes, windows of S seconds, seams of
    the first windowed mode, no style-grounding section."""
    corpus, bundle = setup
    out = tmp_path / "report"
    assert main(["eval", "controls", "--bundle", str(bundle.root), "--clap", str(bundle.clap), "--data", str(corpus),
                 "--out", str(out), *ARGS, "--long-modes", "windowed:3", "windowed", "--no-style"]) == 0
    res = json.loads((out / "results.json").read_text())
    assert res["style_grounding"] is None and "Style grounding" not in (out / "table.md").read_text()
    modes = res["length_generalisation"]["modes"]
    assert list(modes) == ["windowed:3", "windowed"]
    assert modes["windowed:3"]["level_db_per_segment"] != modes["windowed"]["level_db_per_segment"]
    seams = res["length_generalisation"]["seams"]
    assert seams["mode"] == "windowed:3" and seams["windows_per_stem"] == 4  # 35-frame windows, 8 overlap, 94 frames


def test_grounding_changes_the_stem(setup):
    corpus, bundle = setup
    from diffariff.pipeline import Accompanist

    acc = Accompanist.from_pretrained(bundle.root)
    it = held_out_pairs(open_dataset(corpus, split="all"), 3.0, 1.0, 1, 0)[0]
    plain = acc.generate(it["context"], text=it["prompt"], seed=3, steps=3)[0]
    grounded = acc.generate(it["context"], text=it["prompt"], seed=3, steps=3, style_reference=it["reference"],
                            style_strength=1.0)[0]
    assert not np.allclose(plain, grounded)
    clap = BuiltinClap.load(bundle.clap)
    res = evaluate_controls(bundle.root, clap, corpus, ControlsConfig(n=2, long_n=1, split="all", window_seconds=3,
                                                                      long_seconds=8, segment_seconds=2, slice_seconds=4, reference_seconds=1,
                                                                      strengths=(0.5,), steps=2), progress=False)
    assert "0.5" in res["style_grounding"]


def test_bad_arguments_exit_2(setup, tmp_path, capsys):
    corpus, bundle = setup
    base = ["eval", "controls", "--bundle", str(bundle.root), "--clap", str(bundle.clap), "--out", str(tmp_path)]
    assert main([*base, "--data", str(corpus), "--strengths", "0"]) == 2
    assert "strengths" in capsys.readouterr().err
    assert main([*base, "--data", str(tmp_path / "none")]) == 2
    assert main([*base, "--data", str(corpus), "--segment-seconds", "20"]) == 2
    assert main([*base, "--data", str(corpus), "--long-seconds", "30", "--slice-seconds", "7"]) == 2
    assert "multiple of --slice-seconds" in capsys.readouterr().err
    assert main([*base, "--data", str(corpus), "--long-modes", "windowed:x"]) == 2
    assert "windowed:SECONDS" in capsys.readouterr().err
    assert main([*base, "--data", str(corpus), "--long-modes", "windowed", "windowed"]) == 2
    assert "distinct" in capsys.readouterr().err
    with pytest.raises(InputError):
        ControlsConfig(n=1)
