"""`diffariff eval recorded` (:mod:`diffariff.eval.recorded_fit`): the fits of stems to recorded mixtures,
on a folder of rendered "recordings": a stem that is its own context fits it perfectly and another
span's far less; the command writes its report with a tiny bundle and refuses bad input in one line."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from diffariff.cli import main
from diffariff.eval.recorded_fit import RecordedFitConfig, recorded_spans, score_fits
from diffariff.testing import make_tiny_bundle

SR = 48_000


@pytest.fixture(scope="module")
def recordings(render_notes, tmp_path_factory):
    """Three 12-s 'recordings' of different tunes in a mixtures folder, all in the test_ood split."""
    root = tmp_path_factory.mktemp("real")
    (root / "tunes").mkdir()
    tunes = ([60, 64, 67, 72], [62, 65, 69, 74], [57, 61, 64, 69])
    for k, notes in enumerate(tunes):
        piano = render_notes(0, notes * 6, beat_seconds=0.2 + 0.07 * k, seconds=12.0)
        bass = render_notes(33, [n - 24 for n in notes] * 6, beat_seconds=0.4 + 0.1 * k, seconds=12.0)
        sf.write(root / "tunes" / f"tune{k}.flac", (0.5 * (piano + bass)).T, SR, subtype="PCM_24")
    (root / "splits.json").write_text(json.dumps({"test_ood": ["tunes"]}))
    return root


def test_a_stem_fits_its_own_context_better_than_another_spans(recordings):
    config = RecordedFitConfig(n=4, seconds=6.0, seed=1, prompts=("bass",))
    spans = recorded_spans(recordings, "test_ood", config)
    assert len(spans) == 4 and all(s.shape == (2, 6 * SR) for s in spans)
    seen = []

    def echo(context, prompt, seed):  # the context itself: the best fit a stem can have
        seen.append((prompt, seed))
        return context

    res = score_fits(echo, spans, config)
    s = res["summary"]
    assert seen == [("bass", 1), ("bass", 2), ("bass", 3), ("bass", 4)]
    assert s["rhythm_own"]["mean"] == pytest.approx(1.0) and s["key_own"]["mean"] == pytest.approx(1.0)
    assert s["rhythm_other"]["mean"] < 0.9 and s["key_other"]["mean"] < 0.99
    with pytest.raises(ValueError):
        RecordedFitConfig(n=1)


def test_eval_recorded_cli(recordings, tmp_path, capsys):
    root = make_tiny_bundle(tmp_path / "b", train_frames=24, modes=("consistency",), codec="synth").root
    out = tmp_path / "rep"
    assert main(["eval", "recorded", "--bundle", str(root), "--real", str(recordings), "--n", "2", "--seconds", "3",
                 "--prompts", "bass", "--out", str(out)]) == 0
    res = json.loads((out / "results.json").read_text())
    assert len(res["stems"]) == 2 and np.isfinite(res["summary"]["key_own"]["mean"])
    assert "Key, own context" in (out / "table.md").read_text()
    capsys.readouterr()
    for args, words in ((["--real", str(tmp_path / "nope")], "no such folder"), (["--n", "1"], "n must be >= 2")):
        base = ["eval", "recorded", "--bundle", str(root), "--real", str(recordings), "--out", str(tmp_path / "x")]
        assert main(base + args) == 2
        err = capsys.readouterr().err.strip()
        assert words in err and len(err.splitlines()) == 1
