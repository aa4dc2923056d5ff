"""Harmony guidance (:mod:`diffariff.pipeline.harmony`): the fit measure on known profiles, a guided
estimate that fits a rendered context's chroma better than the unguided one, the pipeline and CLI
option, and refusals."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from diffariff.cli import main
from diffariff.data.context_chroma import context_chroma
from diffariff.errors import InputError
from diffariff.pipeline import Accompanist
from diffariff.pipeline.harmony import HarmonyGuide, harmonic_fit
from diffariff.request import GenerationRequest
from diffariff.testing import make_tiny_bundle

SR = 48_000


@pytest.fixture(scope="module")
def context(render_notes):
    return render_notes(48, [62, 66, 69, 74, 69, 66, 62, 57], beat_seconds=0.3, seconds=2.4)  # D major strings


@pytest.fixture(scope="module")
def synth_root(tmp_path_factory):
    return make_tiny_bundle(tmp_path_factory.mktemp("h") / "s", train_frames=24, modes=("consistency",),
                            codec="synth").root


@pytest.fixture(scope="module")
def synth_acc(synth_root):
    return Accompanist.from_pretrained(synth_root)


def test_harmonic_fit_on_known_profiles():
    t = 20
    chroma = torch.zeros(1, 12, t)
    chroma[0, [2, 6, 9]] = 1.0  # D major triad throughout
    energy = torch.zeros(3, 12, t)
    energy[0, [2, 6, 9]] = 5.0  # the same chord, louder: correlation 1
    energy[1, [3, 7, 10]] = 5.0  # a semitone up
    energy[2] = 0.0  # silent stem
    fit = harmonic_fit(energy, chroma)
    assert fit[0] == pytest.approx(1.0, abs=1e-6)
    assert fit[1] < 0 and fit[2] == 0
    silent_context = harmonic_fit(energy, torch.zeros(1, 12, t))
    assert torch.all(silent_context == 0)


def test_guided_estimate_fits_the_rendered_context_better(synth_acc, context):
    codec = synth_acc.codec
    chroma = context_chroma(context, codec.config.latent_hop, SR, channels=1)
    z = codec.encode(torch.as_tensor(context)[None])  # codec latents of the context itself, plus noise
    frames = chroma.shape[-1]
    mean, std = z.mean(), z.std()
    x = ((z - mean) / std + 0.5 * torch.randn(z.shape, generator=torch.Generator().manual_seed(0)))[..., :frames]
    with torch.no_grad():
        before = harmonic_fit(codec.pitch_class_energy(x * std + mean), chroma)
    guide = HarmonyGuide(codec.pitch_class_energy, mean, std, chroma, strength=0.3, iterations=3)
    y = guide.refine(x)
    with torch.no_grad():
        after = harmonic_fit(codec.pitch_class_energy(y * std + mean), chroma)
    assert y.shape == x.shape and torch.isfinite(y).all()
    assert float(after) > float(before) + 0.01
    assert torch.equal(HarmonyGuide(codec.pitch_class_energy, mean, std, chroma, strength=0.0).refine(x), x)  # off: untouched


def test_guide_acts_once_per_noise_level(synth_acc, context):
    codec = synth_acc.codec
    chroma = context_chroma(context, codec.config.latent_hop, SR, channels=1)
    x = torch.randn(1, 64, chroma.shape[-1], generator=torch.Generator().manual_seed(1))
    guide = HarmonyGuide(codec.pitch_class_energy, torch.tensor(0.0), torch.tensor(0.4), chroma, strength=0.3, levels=[10.0, 1.0])
    wrapped = guide(lambda x, sigma: x)
    changed = [not torch.equal(wrapped(x, torch.tensor(s)), x) for s in (20.0, 8.0, 5.0, 0.5, 0.1)]
    assert changed == [False, True, False, True, False]


def test_generate_with_harmony_guidance(synth_acc, synth_root, context, tmp_path):
    plain = synth_acc.generate(context, seed=0, key_lock=False, harmony=0)
    guided = synth_acc.generate(context, seed=0, key_lock=False, harmony=0.5)
    assert guided.shape == plain.shape and np.isfinite(guided).all() and not np.array_equal(guided, plain)
    default = synth_acc.generate(context, seed=0, key_lock=False)  # on by default with a synth codec
    np.testing.assert_array_equal(default, synth_acc.generate(context, seed=0, key_lock=False, harmony=0.2))
    synth_acc.generate(None, seconds=2.0, seed=0, harmony=0.5)  # no context: nothing to follow, no error
    from diffariff.audio import save_audio

    ctx_path = tmp_path / "ctx.wav"
    save_audio(ctx_path, context, SR)
    out = tmp_path / "stem.wav"
    assert main(["generate", str(ctx_path), "-o", str(out), "--bundle", str(synth_root), "--harmony", "0.3",
                 "--seed", "1", "--quiet"]) == 0
    assert out.is_file()


def test_harmony_guidance_refusals(tmp_path, context):
    with pytest.raises(InputError, match="harmony strength"):
        GenerationRequest(harmony=-1)
    acc = Accompanist.from_pretrained(make_tiny_bundle(tmp_path / "c", train_frames=24, modes=("consistency",)).root)
    with pytest.raises(InputError, match="harmony guidance needs"):
        acc.generate(context, seed=0, harmony=0.3)
    assert acc.generate(context, seed=0).shape[-1] == context.shape[-1]  # default: off where it cannot act


def test_variation_strength_still_sets_how_far_a_guided_variation_moves(synth_acc, context):
    z_stem = synth_acc.encode(context)
    ctx = synth_acc.prepare_context(context, chroma=True)

    def dist(strength):
        z = synth_acc.sample_latents(ctx.latents, None, z_stem.shape[-1], sampler="consistency", steps=5, seed=0,
                                     init=z_stem, strength=strength, ctx_chroma=ctx.chroma, harmony=0.2)
        return float((z - z_stem).norm() / z_stem.norm())

    small, large = dist(0.1), dist(0.9)
    assert large > 2 * small
