"""`diffariff demo`: renders the example song without a default bundle, and generates an accompaniment
(context + stem + mix, aligned with the context) when a default bundle is installed."""

from __future__ import annotations

import soundfile as sf

from diffariff import bundle as bundle_mod
from diffariff.cli import main
from diffariff.testing import make_tiny_bundle


def test_demo_without_bundle_renders_example(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(bundle_mod, "DEFAULT_BUNDLE", tmp_path / "no-bundle")  # read when the demo runs
    assert main(["demo", "--out", str(tmp_path / "out"), "--seconds", "4"]) == 0
    out = capsys.readouterr().out
    assert "No default model bundle" in out
    folder = tmp_path / "out" / "song_00000"
    assert (folder / "mixture.flac").is_file() and (folder / "metadata.json").is_file()


def test_demo_with_bundle_generates_stem_and_mix(tmp_path, monkeypatch, capsys):
    root = tmp_path / "bundle"
    make_tiny_bundle(root, modes=("consistency",))
    monkeypatch.setattr(bundle_mod, "DEFAULT_BUNDLE", root)
    out = tmp_path / "out"
    assert main(["demo", "--out", str(out), "--seconds", "3"]) == 0
    printed = capsys.readouterr().out
    assert "context:" in printed and "stem:" in printed and "mix:" in printed
    context = sf.info(str(out / "example" / "song_00000" / "mixture.flac"))
    for name in ("context.wav", "stem.wav", "mix.wav"):
        info = sf.info(str(out / name))
        assert info.samplerate == 48_000 and info.channels == 2
        assert info.frames == context.frames
