"""The key lock through the pipeline and the CLI: refused where the codec cannot transpose, reported per
stem, and, with the default bundle on a rendered context, stems that fit the context's key at least as
well as without it."""

from __future__ import annotations

import numpy as np
import pytest

from diffariff.bundle import DEFAULT_BUNDLE, MANIFEST
from diffariff.cli import main
from diffariff.errors import InputError
from diffariff.eval.musical_fit import key_fit
from diffariff.pipeline import Accompanist
from diffariff.pipeline.key_lock import SHIFTS
from diffariff.testing import make_tiny_bundle

SR = 48_000


@pytest.fixture(scope="module")
def context(render_notes):
    chords = render_notes(48, [62, 66, 69, 74, 69, 66, 62, 57], beat_seconds=0.3, seconds=2.4)  # D major
    return chords


def test_key_lock_needs_a_codec_that_can_transpose(tmp_path, context):
    acc = Accompanist.from_pretrained(make_tiny_bundle(tmp_path / "c", train_frames=24, modes=("consistency",)).root)
    with pytest.raises(InputError, match="key lock needs"):
        acc.generate(context, key_lock=True, seed=0)


def test_key_lock_reports_one_transposition_per_stem(tmp_path, context):
    root = make_tiny_bundle(tmp_path / "s", train_frames=24, modes=("consistency",), codec="synth").root
    acc = Accompanist.from_pretrained(root)
    stems = acc.generate(context, key_lock=True, seed=0, n=2)
    assert stems.shape == (2, 2, context.shape[1]) and np.isfinite(stems).all()
    assert len(acc.last_transpositions) == 2 and all(k in SHIFTS for k in acc.last_transpositions)
    acc.generate(context, seed=0)  # on by default with a codec that can transpose
    assert len(acc.last_transpositions) == 1
    acc.generate(context, seed=0, key_lock=False)
    assert acc.last_transpositions is None
    acc.generate(None, key_lock=True, seconds=2.0, seed=0)  # a silent context: nothing to lock to
    assert acc.last_transpositions is None
    ctx_path = _save(tmp_path, context)
    for flag in ([], ["--no-key-lock"]):
        out = tmp_path / f"stem{len(flag)}.wav"
        assert main(["generate", str(ctx_path), "-o", str(out), "--bundle", str(root), *flag, "--seed", "1",
                     "--quiet"]) == 0
        assert out.is_file()


def _save(tmp_path, audio):
    from diffariff.audio import save_audio

    path = tmp_path / "ctx.wav"
    save_audio(path, audio, SR)
    return path


@pytest.mark.slow
def test_default_bundle_stems_fit_the_key_better_with_the_lock(context):
    if not (DEFAULT_BUNDLE / MANIFEST).is_file():
        pytest.skip("no default bundle installed")
    acc = Accompanist.from_pretrained("default")
    if not getattr(acc.codec, "can_transpose", False):
        pytest.skip("the default bundle's codec cannot transpose")
    kw = dict(text="piano", sampler="consistency", seed=4, n=4)
    free = acc.generate(context, key_lock=False, **kw)
    locked = acc.generate(context, key_lock=True, **kw)
    shifts = acc.last_transpositions
    fits = [(key_fit(a, context, SR), key_fit(b, context, SR)) for a, b in zip(free, locked)]
    for k, x, y in zip(shifts, free, locked):
        if k == 0:
            np.testing.assert_array_equal(x, y)  # an untransposed stem is the same stem
    assert any(shifts)
    assert np.mean([b for _, b in fits]) > np.mean([a for a, _ in fits])
