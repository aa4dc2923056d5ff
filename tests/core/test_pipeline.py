"""The Accompanist and model bundles on real rendered audio with a tiny bundle of randomly initialised
models (codec, CLAP, DiT diffusion model in both modes) saved with their real save functions. The
audio is noise-like, but every control and error path is exercised for behaviour."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest
import torch

from diffariff.audio import loudness, save_audio
from diffariff.bundle import MANIFEST, open_bundle, resolve_bundle_dir, save_bundle
from diffariff.data.context_chroma import context_chroma
from diffariff.errors import (
    AudioTooLongError,
    CheckpointError,
    ConfigError,
    InputError,
    NonFiniteAudioError,
)
from diffariff.eval.seams import measure_seams
from diffariff.pipeline import SAMPLE_RATE, Accompanist, crossfade_paste, read_audio
from diffariff.testing import make_tiny_bundle

SR = SAMPLE_RATE
FAST = dict(steps=3, sampler="euler", decode_mode="deterministic")


@pytest.fixture(scope="module")
def bundle_dir(tmp_path_factory):
    return make_tiny_bundle(tmp_path_factory.mktemp("bundle") / "tiny", seed=0, train_frames=24).root


@pytest.fixture(scope="module")
def acc(bundle_dir):
    return Accompanist.from_pretrained(bundle_dir)


@pytest.fixture(scope="module")
def piano(render_notes):
    return render_notes(0, [60, 64, 67, 72, 67, 64, 60, 55], beat_seconds=0.15, seconds=1.2)


@pytest.fixture(scope="module")
def bass(render_notes):
    return render_notes(33, [36, 43, 41, 38, 36, 31, 33, 36], beat_seconds=0.15, seconds=1.2)


# ------------------------------------------------------------------------------------------ bundles
def _copy(src, dst):
    shutil.copytree(src, dst)
    return dst


def _edit_manifest(root, **changes):
    data = json.loads((root / MANIFEST).read_text())
    data.update(changes)
    (root / MANIFEST).write_text(json.dumps(data))


def test_bundle_validates_files_kinds_and_identity(bundle_dir, tmp_path):
    b = open_bundle(bundle_dir)
    assert b.modes == ("edm", "consistency") and b.bridge is None and b.codec.name == "codec.safetensors"
    missing = _copy(bundle_dir, tmp_path / "missing")
    (missing / "clap.safetensors").unlink()
    with pytest.raises(CheckpointError, match="clap file 'clap.safetensors' is missing"):
        open_bundle(missing)
    wrong = _copy(bundle_dir, tmp_path / "wrong")
    _edit_manifest(wrong, codec="clap.safetensors")
    with pytest.raises(CheckpointError, match="holds a 'clap' model, expected 'codec'"):
        open_bundle(wrong)
    other = make_tiny_bundle(tmp_path / "other", seed=1, modes=("edm",)).root
    mixed = _copy(bundle_dir, tmp_path / "mixed")
    shutil.copyfile(other / "codec.safetensors", mixed / "codec.safetensors")
    with pytest.raises(CheckpointError, match="was trained with codec codec:"):
        open_bundle(mixed)
    bad = _copy(bundle_dir, tmp_path / "bad")
    (bad / MANIFEST).write_text("{not json")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        open_bundle(bad)
    _edit_manifest(wrong, codec="codec.safetensors", version=99)
    with pytest.raises(CheckpointError, match="newer"):
        open_bundle(wrong)
    _edit_manifest(wrong, version=1, codec="../outside.safetensors")
    with pytest.raises(CheckpointError, match="outside the bundle"):
        open_bundle(wrong)


def test_default_bundle_error_names_how_to_get_one(tmp_path, monkeypatch):
    from diffariff import bundle as bundle_mod

    monkeypatch.setattr(bundle_mod, "DEFAULT_BUNDLE", tmp_path / "not-installed")
    with pytest.raises(CheckpointError, match="default model bundle is not installed.*bundle create"):
        resolve_bundle_dir("default")


@pytest.mark.slow
def test_default_bundle_accompanies_its_example_context():
    from diffariff.bundle import DEFAULT_BUNDLE

    if not (DEFAULT_BUNDLE / MANIFEST).is_file():
        pytest.skip("no default bundle installed")
    acc = Accompanist.from_pretrained("default")
    example = open_bundle("default").example["context"]
    ctx = read_audio(example, seconds=6.0)
    for sampler in acc.models:
        kw = {"sampler": "consistency"} if sampler == "consistency" else {"sampler": "heun", "steps": 10}
        out = acc.generate(ctx, text="warm fingered electric bass", seed=3, **kw)[0]
        assert out.shape == ctx.shape and np.isfinite(out).all()
        assert abs(loudness(out, SR) - (loudness(ctx, SR) - 3.0)) < 1.0
        np.testing.assert_array_equal(out, acc.generate(ctx, text="warm fingered electric bass", seed=3, **kw)[0])


def test_default_bundle_plays_notes_not_a_fixed_comb():
    """The shipped stem for the shipped example has moving partials: little of its energy sits on the
    23.44 Hz grid of the first codec's STFT (that codec's stems: 0.86-0.91; chance 0.085)."""
    from diffariff.bundle import DEFAULT_BUNDLE
    from diffariff.eval.reconstruction import grid_energy_share

    if not (DEFAULT_BUNDLE / MANIFEST).is_file():
        pytest.skip("no default bundle installed")
    acc = Accompanist.from_pretrained("default")
    ctx = read_audio(open_bundle("default").example["context"], seconds=6.0)
    kw = {"sampler": "consistency"} if "consistency" in acc.models else {"sampler": "heun", "steps": 10}
    stem = acc.generate(ctx, text="warm fingered electric bass", seed=3, **kw)[0]
    assert np.isfinite(stem).all() and loudness(stem, SR) > -40
    assert grid_energy_share(stem, SR) < 0.3


def test_save_bundle_is_atomic_and_refuses_to_overwrite(bundle_dir, tmp_path):
    b = open_bundle(bundle_dir)
    out = tmp_path / "copy"
    save_bundle(out, codec=b.codec, clap=b.clap, diffusion={"consistency": b.diffusion["consistency"]}, notes="x")
    assert open_bundle(out).modes == ("consistency",)
    umask = os.umask(0)
    os.umask(umask)
    assert out.stat().st_mode & 0o777 == 0o777 & ~umask  # an ordinary folder, not mkdtemp's private one
    with pytest.raises(CheckpointError, match="already exists"):
        save_bundle(out, codec=b.codec, clap=b.clap, diffusion={"edm": b.diffusion["edm"]})
    with pytest.raises(CheckpointError, match="no such file"):
        save_bundle(tmp_path / "broken", codec=tmp_path / "nope.safetensors", clap=b.clap,
                    diffusion={"edm": b.diffusion["edm"]})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["copy"]  # no half-written folder left


# --------------------------------------------------------------------------------- shapes, seeds
def test_output_is_aligned_sample_exactly_for_odd_lengths(acc, piano, tmp_path):
    ctx = piano[:, : SR // 2 + 12345]  # not a multiple of 4096
    out = acc.generate(ctx, seed=0, **FAST)
    assert out.shape == (1, 2, ctx.shape[1]) and out.dtype == np.float32 and np.isfinite(out).all()
    path = tmp_path / "ctx44.wav"
    from diffariff.audio import resample

    save_audio(path, resample(piano[:1, : SR // 2 + 777], SR, 44_100), 44_100, subtype="float")
    expected = read_audio(path).shape[1]
    out = acc.generate(path, seed=0, **FAST)  # mono 44.1 kHz file -> 48 kHz stereo, same duration
    assert out.shape == (1, 2, expected) and abs(expected - (SR // 2 + 777)) <= 2


def test_same_seed_same_output_and_candidates_differ(acc, piano):
    a = acc.generate(piano, seed=3, n=2, **FAST)
    b = acc.generate(piano, seed=3, n=2, **FAST)
    c = acc.generate(piano, seed=4, n=2, **FAST)
    assert acc.last_seed == 4
    assert a.shape == (2, 2, piano.shape[1])
    assert np.array_equal(a, b) and not np.allclose(a, c)
    assert not np.allclose(a[0], a[1])


def test_stem_loudness_follows_the_context(acc, piano):
    out = acc.generate(piano, seed=1, **FAST)[0]
    target = loudness(piano, SR) - 3.0
    assert abs(loudness(out, SR) - target) < 0.5 or np.abs(out).max() >= 0.989
    assert np.abs(out).max() <= 0.99 + 1e-6
    mix = acc.mix(piano, out)
    assert mix.shape == piano.shape and np.abs(mix).max() <= 0.99 + 1e-6


def test_reconstruct_is_the_codec_round_trip_at_stem_loudness(acc, piano, bass):
    out = acc.reconstruct(bass, piano, seed=2)
    assert out.shape == bass.shape and np.isfinite(out).all()
    assert abs(loudness(out, SR) - (loudness(piano, SR) - 3.0)) < 0.5 or np.abs(out).max() >= 0.989
    direct = acc.decode(acc.encode(bass), bass.shape[1], seed=2)[0]
    # same audio up to the loudness gain (and the limiter, which this quiet tiny codec never reaches)
    gain = np.sum(out * direct) / np.sum(direct * direct)
    np.testing.assert_allclose(out, gain * direct, atol=1e-4)
    with pytest.raises(InputError):
        acc.reconstruct(bass[:, :100])


# ----------------------------------------------------------------------------------------- editing
def test_inpaint_keeps_the_outside_region(acc, piano, bass):
    z_stem = acc.encode(bass)
    frames = z_stem.shape[-1]
    keep = torch.ones(frames, dtype=torch.bool)
    keep[5:9] = False
    ctx = acc.prepare_context(piano)
    z = acc.sample_latents(ctx.latents, None, frames, n=2, sampler="euler", steps=3, seed=0, known=z_stem, keep=keep)
    assert torch.equal(z[..., keep], z_stem.expand(2, -1, -1)[..., keep])
    assert not torch.allclose(z[..., ~keep], z_stem.expand(2, -1, -1)[..., ~keep])
    out = acc.inpaint(bass, piano, 0.45, 0.75, seed=0, n=2, crossfade_s=0.05, **FAST)
    a, b = int(0.45 * SR), int(0.75 * SR)
    half = int(0.025 * SR) + 1
    assert out.shape == (2, 2, bass.shape[1])
    np.testing.assert_allclose(out[:, :, : a - half], np.broadcast_to(bass[:, : a - half], out[:, :, : a - half].shape))
    np.testing.assert_allclose(out[:, :, b + half:], np.broadcast_to(bass[:, b + half:], out[:, :, b + half:].shape))
    assert not np.allclose(out[0, :, a + half: b - half], bass[:, a + half: b - half])
    with pytest.raises(InputError, match="inpaint region"):
        acc.inpaint(bass, piano, 0.9, 0.5, **FAST)


def test_crossfade_paste_is_continuous():
    base, ins = np.zeros((1, 1000), np.float32), np.ones((1, 1000), np.float32)
    out = crossfade_paste(base, ins, 300, 700, 100)
    assert out[0, 249] == 0 and out[0, 351] == 1 and out[0, 649] == 1 and out[0, 751] == 0
    assert np.abs(np.diff(out[0])).max() < 0.05


def test_loops_are_periodic_in_latents(acc, piano):
    ctx = acc.prepare_context(piano[:, : 4096 * 12])  # 12 frames
    z = acc.sample_latents(ctx.latents, None, 12, sampler="euler", steps=4, seed=0, loop=2, loop_strength=1.0)
    torch.testing.assert_close(z[..., :6], z[..., 6:])
    free = acc.sample_latents(ctx.latents, None, 12, sampler="euler", steps=4, seed=0)
    assert not torch.allclose(free[..., :6], free[..., 6:], atol=1e-3)
    z4 = acc.sample_latents(None, None, 12, sampler="euler", steps=4, seed=0, loop=4, loop_strength=1.0)
    torch.testing.assert_close(z4[..., :3], z4[..., 9:12])
    out = acc.generate(piano[:, : 4096 * 12], loop=2, loop_strength=1.0, seed=0, **FAST)
    assert out.shape == (1, 2, 4096 * 12)


def test_small_variations_stay_close_to_the_input(acc, piano, bass):
    z_stem = acc.encode(bass)
    ctx = acc.prepare_context(piano)

    def dist(strength):
        z = acc.sample_latents(ctx.latents, None, z_stem.shape[-1], sampler="euler", steps=10, seed=0,
                               init=z_stem, strength=strength)
        return float((z - z_stem).norm() / z_stem.norm())

    small, large = dist(0.1), dist(0.9)
    assert small < 0.1 and large > 3 * small
    out = acc.vary(bass, piano, 0.2, seed=0, n=2, **FAST)
    assert out.shape == (2, 2, bass.shape[1])
    with pytest.raises(InputError, match="variation strength"):
        acc.vary(bass, piano, 0.0, **FAST)


def test_style_grounding_moves_latent_statistics_toward_the_reference(acc, piano, bass):
    ref = acc.encode(bass)
    ctx = acc.prepare_context(piano)

    def gap(strength):
        z = acc.sample_latents(ctx.latents, None, ctx.latents.shape[-1], sampler="euler", steps=4, seed=0,
                               style=ref, style_strength=strength)
        return float((z.mean(-1) - ref.mean(-1)).norm() + (z.std(-1) - ref.std(-1)).norm())

    assert gap(1.0) < 0.5 * gap(0.0)
    out = acc.generate(piano, style_reference=bass, style_strength=0.8, seed=0, **FAST)
    assert out.shape == (1, 2, piano.shape[1])


def test_width_zero_gives_identical_channels(acc, piano):
    ctx = piano[:, : int(0.6 * SR)]
    mono = acc.generate(ctx, seed=0, width=0.0, steps=2, sampler="euler")
    wide = acc.generate(ctx, seed=0, width=1.0, steps=2, sampler="euler")
    assert np.array_equal(mono[0, 0], mono[0, 1])
    assert not np.allclose(wide[0, 0], wide[0, 1])


def test_true_stereo_codec_decodes_two_channels(tmp_path, piano):
    acc = Accompanist.from_pretrained(make_tiny_bundle(tmp_path / "st", stereo="midside", modes=("edm",)).root)
    out = acc.generate(piano[:, : SR // 2], seed=0, **FAST)
    assert out.shape == (1, 2, SR // 2) and np.isfinite(out).all()


# ------------------------------------------------------------------------------------- conditions
def test_interpolation_endpoints_and_combined_conditions(acc, piano, bass):
    a, b = acc.embed(piano), acc.embed(bass)
    torch.testing.assert_close(acc.interpolate(piano, bass, 0.0), a)
    torch.testing.assert_close(acc.interpolate(piano, bass, 1.0), b)
    mid = acc.interpolate(piano, bass, 0.5)
    assert abs(float(mid.norm()) - 1) < 1e-5 and float((mid * a).sum()) > float((a * b).sum())
    text = acc.embed("warm fingered electric bass")
    assert text.shape == (1, acc.clap.dim)
    both = acc.condition("warm fingered electric bass", bass)
    torch.testing.assert_close(both, torch.nn.functional.normalize(text + b, dim=-1))
    torch.testing.assert_close(acc.condition(clap_mix=(piano, bass, 1.0)), acc.embed(bass))
    out = acc.generate(piano, text="zzzz unknown words qqq", reference=bass, seed=0, **FAST)
    assert out.shape == (1, 2, piano.shape[1])
    with pytest.raises(InputError, match="empty"):
        acc.generate(piano, text="  ", **FAST)
    with pytest.raises(InputError, match="at least 1 s"):
        acc.generate(piano, reference=bass[:, : SR // 2], **FAST)


def test_text_goes_through_the_bridge_when_there_is_one(tmp_path, piano):
    root = make_tiny_bundle(tmp_path / "br", modes=("consistency",), bridge=True).root
    acc = Accompanist.from_pretrained(root)
    raw = acc.embed("warm bass", use_bridge=False)
    bridged = acc.embed("warm bass", seed=1)
    assert bridged.shape == raw.shape and abs(float(bridged.norm()) - 1) < 1e-5
    assert not torch.allclose(bridged, raw) and torch.equal(bridged, acc.embed("warm bass", seed=1))
    out = acc.generate(piano[:, : SR // 2], text="warm bass", seed=0, steps=2, decode_mode="deterministic")
    assert out.shape == (1, 2, SR // 2)
    other = make_tiny_bundle(tmp_path / "other", seed=3, modes=("consistency",), bridge=True).root
    shutil.copyfile(other / "bridge.safetensors", root / "bridge.safetensors")
    with pytest.raises(CheckpointError, match="different CLAP"):
        open_bundle(root)


# ------------------------------------------------------------------------------------- long audio
def test_long_context_is_generated_in_bounded_windows(acc, render_notes):
    ctx = np.tile(render_notes(0, [60, 62, 64, 65, 67, 69, 71, 72], seconds=2.0), (1, 3))  # 6 s, 71 frames
    out = acc.generate(ctx, seed=0, **FAST)
    assert out.shape == (1, 2, ctx.shape[1]) and np.isfinite(out).all()
    windows = acc.last_windows
    assert len(windows) >= 2 and max(b - a for a, b in windows) == 2 * acc.train_frames
    assert windows[0][0] == 0 and windows[-1][1] == acc.frames_for(ctx.shape[1])
    report = measure_seams(out[0], acc.window_boundaries())
    assert np.isfinite(report.flux_ratio) and report.typical_flux > 0
    acc.generate(ctx, seed=0, long_mode="direct", **FAST)
    assert acc.last_windows == [(0, acc.frames_for(ctx.shape[1]))]
    seconds = 20 * acc.samples_per_frame / SR  # explicit window length: 20 frames, overlap a quarter
    shorter = acc.generate(ctx, seed=0, long_mode="windowed", window_seconds=seconds, **FAST)
    assert max(b - a for a, b in acc.last_windows) == 20 and len(acc.last_windows) > len(windows)
    assert acc.last_windows[1][0] == 20 - 5 and not np.allclose(shorter, out)
    with pytest.raises(InputError, match="at least 2 latent frames"):
        acc.generate(ctx, seed=0, long_mode="windowed", window_seconds=0.01, **FAST)


@pytest.mark.slow
def test_sixty_seconds_with_a_ten_second_window(tmp_path, render_notes):
    acc = Accompanist.from_pretrained(make_tiny_bundle(tmp_path / "b", train_frames=117, modes=("edm",)).root)
    ctx = np.tile(render_notes(0, [60, 64, 67, 72], seconds=2.0), (1, 30))
    out = acc.generate(ctx, seed=0, **FAST)
    assert out.shape == (1, 2, 60 * SR) and max(b - a for a, b in acc.last_windows) == 234


def test_seam_measure_sees_a_real_discontinuity(piano, bass):
    smooth = np.concatenate([piano, piano], axis=1)
    jump = np.concatenate([piano * 0.05, bass * 3.0], axis=1)
    s, j = measure_seams(smooth, [1.2]), measure_seams(jump, [1.2])
    assert j.jump_ratio > 5 and j.jump_ratio > 3 * s.jump_ratio


def test_arrange_builds_up_stems_and_mix(acc, piano):
    result = acc.arrange(None, [{"text": "drums"}, "warm bass"], seconds=0.8, seed=2, **FAST)
    assert len(result.stems) == 2 and result.texts == ["drums", "warm bass"]
    assert all(s.shape == (2, int(0.8 * SR)) for s in result.stems)
    np.testing.assert_allclose(result.mix, acc.mix(np.zeros((2, int(0.8 * SR)), np.float32), *result.stems))
    with_ctx = acc.arrange(piano, ["bass"], seed=2, **FAST)
    assert with_ctx.mix.shape == piano.shape
    with pytest.raises(InputError):
        acc.arrange(None, [], seconds=1.0)


# ----------------------------------------------------------------------------------------- bad input
def test_bad_contexts_raise_typed_errors(acc, piano, tmp_path):
    nan = piano.copy()
    nan[0, 100] = np.nan
    with pytest.raises(NonFiniteAudioError):
        acc.generate(nan, **FAST)
    with pytest.raises(InputError, match="at least 0.5 s"):
        acc.generate(piano[:, : SR // 4], **FAST)
    with pytest.raises(AudioTooLongError):
        acc.generate(piano, max_seconds=1.0, **FAST)
    with pytest.raises(InputError, match="no such file"):
        acc.generate(tmp_path / "missing.wav", **FAST)
    with pytest.raises(ConfigError, match="unknown sampler"):
        acc.generate(piano, sampler="nope", steps=2)
    with pytest.raises(InputError, match="width"):
        acc.generate(piano, width=1.5, **FAST)


def test_documented_behaviour_for_odd_contexts(acc, piano):
    silent = acc.generate(np.zeros((2, SR // 2), np.float32), seed=0, **FAST)  # context dropped, -23 LUFS stem
    assert silent.shape == (1, 2, SR // 2) and abs(loudness(silent[0], SR) + 23.0) < 0.5
    mono = acc.generate(piano[0], seed=0, **FAST)
    assert mono.shape == (1, 2, piano.shape[1])
    with pytest.warns(UserWarning, match="downmixing"):
        multi = acc.generate(np.concatenate([piano, piano]), seed=0, **FAST)
    assert multi.shape == (1, 2, piano.shape[1])


def test_sampler_needs_the_matching_model(tmp_path, piano):
    acc = Accompanist.from_pretrained(make_tiny_bundle(tmp_path / "edm", modes=("edm",)).root)
    with pytest.raises(ConfigError, match="needs the consistency diffusion model"):
        acc.generate(piano, sampler="consistency", steps=2)


def test_a_one_off_load_reads_only_the_parts_the_call_uses(tmp_path, piano):
    root = make_tiny_bundle(tmp_path / "both", bridge=True, prior=True).root
    assert set(Accompanist.from_pretrained(root).models) == {"edm", "consistency"}
    assert set(Accompanist.from_pretrained(root, for_sampler=None).models) == {"edm"}  # the preferred mode
    assert set(Accompanist.from_pretrained(root, for_sampler="heun").models) == {"edm"}
    acc = Accompanist.from_pretrained(root, for_sampler="consistency")
    assert set(acc.models) == {"consistency"}
    assert acc._bridge is None and acc._prior is None  # not read yet
    a = acc.generate(piano[:, : SR // 2], text="warm bass", seed=0, steps=2, decode_mode="deterministic")
    assert acc._bridge is not None  # read for the text prompt
    b = Accompanist.from_pretrained(root).generate(piano[:, : SR // 2], text="warm bass", seed=0, steps=2,
                                                   sampler="consistency", decode_mode="deterministic")
    assert np.array_equal(a, b)  # the same stem as with every part loaded up front
    assert acc.prior is not None and acc.prior.config.condition == "context"
    assert Accompanist.from_pretrained(root, load_prior=False, load_bridge=False).prior is None
    single = make_tiny_bundle(tmp_path / "edm_only", modes=("edm",)).root
    with pytest.raises(ConfigError, match="needs the consistency diffusion model"):
        Accompanist.from_pretrained(single, for_sampler="consistency").generate(piano, sampler="consistency", steps=2)


# ---------------------------------------------------------------------------------- context chroma
class SampleRecorder:
    """Stands in for a latent model inside an Accompanist: every attribute is the model's; sample()
    also records the context chroma it was given."""

    def __init__(self, model):
        self.model, self.chroma = model, []

    def __getattr__(self, name):
        return getattr(self.model, name)

    def sample(self, *args, **kw):
        self.chroma.append(kw.get("context_chroma"))
        return self.model.sample(*args, **kw)


@pytest.fixture(scope="module")
def chroma_acc(tmp_path_factory):
    root = make_tiny_bundle(tmp_path_factory.mktemp("chroma") / "tiny", seed=2, train_frames=8, context_chroma=True).root
    return Accompanist.from_pretrained(root)


def test_a_chroma_bundle_generates_stems_from_the_contexts_chroma(chroma_acc, acc, piano, bass):
    """A bundle whose latent models take the context chroma: generate (windowed too), inpaint and vary
    hand each sample() call its window's slice of the context's chroma; a silent context hands none."""
    assert chroma_acc.needs_context_chroma and not acc.needs_context_chroma
    assert acc.prepare_context(piano).chroma is None  # a plain bundle computes none
    ctx = chroma_acc.prepare_context(piano)
    assert ctx.chroma.shape == (1, 12, ctx.latents.shape[-1])
    # as the latent cache computes it: on the mono mix the (mono) codec encodes
    assert torch.equal(ctx.chroma, context_chroma(piano.mean(axis=0, keepdims=True), chroma_acc.samples_per_frame))
    for sampler in ("euler", "consistency"):
        out = chroma_acc.generate(piano, seed=0, sampler=sampler, steps=2, decode_mode="deterministic")
        assert out.shape == (1, 2, piano.shape[1]) and np.isfinite(out).all()
    rec = SampleRecorder(chroma_acc.models["edm"])
    chroma_acc.models["edm"] = rec
    try:
        long = np.tile(piano, (1, 3))  # 3.6 s: 43 latent frames in windows of 16
        assert chroma_acc.generate(long, seed=0, **FAST).shape == (1, 2, long.shape[1])
        full = context_chroma(long.mean(axis=0, keepdims=True), chroma_acc.samples_per_frame)
        assert len(chroma_acc.last_windows) >= 3 and len(rec.chroma) == len(chroma_acc.last_windows)
        for (a, b), c in zip(chroma_acc.last_windows, rec.chroma):
            assert torch.equal(c, full[..., a:b])
        rec.chroma.clear()
        assert chroma_acc.inpaint(bass, piano, 0.3, 0.6, seed=0, **FAST).shape == (1, 2, bass.shape[1])
        assert chroma_acc.vary(bass, piano, 0.5, seed=0, **FAST).shape == (1, 2, bass.shape[1])
        assert len(rec.chroma) == 2 and all(torch.equal(c, ctx.chroma) for c in rec.chroma)
        rec.chroma.clear()
        assert chroma_acc.generate(None, seconds=1.0, seed=0, **FAST).shape == (1, 2, SR)
        assert rec.chroma == [None] and chroma_acc.prepare_context(None, seconds=1.0).chroma is None
    finally:
        chroma_acc.models["edm"] = rec.model
    with pytest.raises(InputError, match="trained with context chroma"):  # latents without their chroma
        chroma_acc.sample_latents(ctx.latents, None, ctx.latents.shape[-1], sampler="euler", steps=2)
