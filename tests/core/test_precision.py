"""Inference precision (``GenerationRequest.precision``, ``--precision``): bf16 autocast of the latent model's
and the decoder's networks changes the arithmetic, not the result's shape, level or finiteness; fp32 is
the exact reference; a bad value is refused before anything runs."""

from __future__ import annotations

import numpy as np
import pytest

from diffariff.errors import InputError
from diffariff.pipeline import Accompanist
from diffariff.request import GenerationRequest
from diffariff.testing import make_tiny_bundle

SR = 48_000


@pytest.fixture(scope="module")
def acc(tmp_path_factory):
    root = make_tiny_bundle(tmp_path_factory.mktemp("p") / "b", train_frames=24, modes=("consistency",),
                            codec="synth").root
    return Accompanist.from_pretrained(root)


@pytest.fixture(scope="module")
def context(render_notes):
    return render_notes(0, [60, 64, 67, 72], beat_seconds=0.4, seconds=2.0)


def test_bad_precision_is_refused():
    with pytest.raises(InputError, match="precision"):
        GenerationRequest(precision="fp16")


def test_bf16_and_fp32_give_the_same_kind_of_stem(acc, context):
    # default harmony guidance (on with the synth codec) and key lock run under the autocast too
    fp32, bf16 = (acc.generate(context, seed=3, precision=p) for p in ("fp32", "bf16"))
    assert np.array_equal(fp32, acc.generate(context, seed=3, precision="fp32"))  # fp32 is deterministic
    assert fp32.shape == bf16.shape and np.isfinite(bf16).all()
    assert not np.array_equal(fp32, bf16)  # the autocast really ran
    rms = [float(np.sqrt(np.mean(x**2))) for x in (fp32, bf16)]
    assert rms[1] == pytest.approx(rms[0], rel=0.25)
