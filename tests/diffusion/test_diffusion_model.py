"""LatentDiffusion: shapes, normalisation, save/load, seeded sampling, guidance, edits, the context
chroma input (tiny real DiT)."""

from __future__ import annotations

import pytest
import torch

from diffariff.checkpoint import load_checkpoint, save_checkpoint
from diffariff.diffusion.model import CHROMA_SCALE, LatentDiffusion, LatentDiffusionConfig, model_identity
from diffariff.errors import CheckpointError, ConfigError, InputError

TINY_DIT = dict(width=32, depth=2, heads=2, cond_dim=32, noise_emb_dim=32, dpb_dim=16)
CLAP_DIM = 16


def tiny_model(mode: str = "edm", seed: int = 0, **overrides) -> LatentDiffusion:
    torch.manual_seed(seed)
    cfg = LatentDiffusionConfig(net_config=dict(TINY_DIT), clap_dim=CLAP_DIM, mode=mode,
                                latent_mean=tuple(0.01 * i for i in range(64)), latent_std=(0.05,), **overrides)
    model = LatentDiffusion(cfg)
    with torch.no_grad():  # AdaLN-Zero / zero output init makes an untrained net ignore its inputs
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return model.eval()


def conditions(b: int = 2, t: int = 13, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    ctx = torch.randn(b, 64, t, generator=g) * 0.05
    clap = torch.nn.functional.normalize(torch.randn(b, CLAP_DIM, generator=g), dim=-1)
    return ctx, clap


@pytest.mark.parametrize("mode", ["edm", "consistency"])
def test_denoise_shapes_at_odd_length(mode):
    model = tiny_model(mode)
    ctx, clap = conditions(t=13)
    x = torch.randn(2, 64, 13)
    out = model.denoise(x, torch.tensor([0.5, 3.0]), context=model.normalize(ctx), clap=clap,
                        drop_context=torch.tensor([True, False]), drop_clap=torch.tensor([False, True]))
    assert out.shape == (2, 64, 13)
    assert torch.isfinite(out).all()


def test_normalize_round_trip_and_units():
    model = tiny_model()
    z = torch.randn(3, 64, 7) * 0.05 + torch.arange(64).float().reshape(1, 64, 1) * 0.01
    x = model.normalize(z)
    assert abs(float(x.std()) - 1.0) < 0.1
    assert torch.allclose(model.denormalize(x), z, atol=1e-6)
    with pytest.raises(InputError):
        model.normalize(torch.zeros(1, 32, 7))


def test_sampling_is_deterministic_by_seed_and_in_codec_units():
    model = tiny_model()
    ctx, clap = conditions()
    a = model.sample(ctx, clap, steps=3, seed=7)
    b = model.sample(ctx, clap, steps=3, seed=7)
    c = model.sample(ctx, clap, steps=3, seed=8)
    assert a.shape == (2, 64, 13)
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)
    # codec units: an untrained model's output sits near the latent mean, not near 0
    assert float((a.mean(dim=(0, 2)) - model.latent_mean.flatten()).abs().mean()) < 0.5 * 0.01 * 32


def test_guidance_strengths_change_the_output_as_configured():
    model = tiny_model()
    ctx, clap = conditions()
    base = model.sample(ctx, clap, steps=3, seed=3, cfg_context=1.0, cfg_clap=1.0)
    more_clap = model.sample(ctx, clap, steps=3, seed=3, cfg_context=1.0, cfg_clap=3.0)
    more_ctx = model.sample(ctx, clap, steps=3, seed=3, cfg_context=3.0, cfg_clap=1.0)
    assert not torch.allclose(base, more_clap) and not torch.allclose(base, more_ctx)
    assert not torch.allclose(more_clap, more_ctx)
    # w = 1/1 is the plain conditional model: one denoiser pass equals the guided one
    seen = []
    model.sample(ctx, clap, steps=1, seed=3, cfg_context=1.0, cfg_clap=1.0, sampler="euler",
                 callback=lambda d: seen.append(d["denoised"]))
    x = torch.randn(2, 64, 13, generator=torch.Generator().manual_seed(3)) * model.config.sigma_max
    plain = model.denoise(x, model.config.sigma_max, context=model.normalize(ctx), clap=clap)
    assert torch.allclose(seen[0], plain, atol=1e-5)


def test_guidance_interval_limits_where_guidance_acts():
    model = tiny_model()
    ctx, clap = conditions()
    kw = dict(steps=4, seed=5, cfg_context=3.0, cfg_clap=2.0)
    guided, plain = model.sample(ctx, clap, **kw), model.sample(ctx, clap, steps=4, seed=5, cfg_context=1.0, cfg_clap=1.0)
    everywhere = model.sample(ctx, clap, guidance_interval=(0.0, 2 * model.config.sigma_max), **kw)
    nowhere = model.sample(ctx, clap, guidance_interval=(3 * model.config.sigma_max, 4 * model.config.sigma_max), **kw)
    assert torch.allclose(everywhere, guided, atol=1e-5) and torch.allclose(nowhere, plain, atol=1e-5)
    part = model.sample(ctx, clap, guidance_interval=(0.5, 10.0), **kw)
    assert not torch.allclose(part, guided, atol=1e-3) and not torch.allclose(part, plain, atol=1e-3)


def test_unconditional_and_consistency_sampling():
    model = tiny_model("consistency")
    out = model.sample(None, None, frames=9, batch=3, seed=0)
    assert out.shape == (3, 64, 9)
    steps = []
    model.sample(None, None, frames=9, seed=0, callback=lambda d: steps.append(d["i"]))
    assert len(steps) == model.config.consistency_steps


def test_inpaint_keeps_known_region_and_loop_is_periodic():
    model = tiny_model()
    ctx, clap = conditions(b=1, t=16)
    known = torch.randn(1, 64, 16) * 0.05
    mask = torch.zeros(1, 1, 16)
    mask[..., :6] = 1
    out = model.sample(ctx, clap, steps=3, seed=0, inpaint_latents=known, inpaint_mask=mask)
    assert torch.allclose(out[..., :6], known[..., :6], atol=1e-5)
    assert not torch.allclose(out[..., 6:], known[..., 6:], atol=1e-3)
    looped = model.sample(None, clap, frames=16, steps=3, seed=0, loop=2, loop_strength=1.0)
    assert torch.allclose(looped[..., :8], looped[..., 8:], atol=1e-5)


def test_variation_stays_close_at_low_strength():
    model = tiny_model()
    ctx, clap = conditions(b=1)
    init = model.sample(ctx, clap, steps=3, seed=0)
    weak = model.sample(ctx, clap, steps=10, seed=1, init=init, strength=0.2)
    strong = model.sample(ctx, clap, steps=10, seed=1, init=init, strength=1.0)
    assert float((weak - init).abs().mean()) < float((strong - init).abs().mean())


def test_save_load_identical_and_fp16(tmp_path):
    model = tiny_model(codec_id="codec:abc", clap_id="clap:def")
    ctx, clap = conditions()
    path = model.save(tmp_path / "ld.safetensors")
    again = LatentDiffusion.load(path)
    assert again.config == model.config
    assert torch.equal(model.sample(ctx, clap, steps=2, seed=5), again.sample(ctx, clap, steps=2, seed=5))
    half = LatentDiffusion.load(model.save(tmp_path / "ld16.safetensors", fp16=True))
    assert (tmp_path / "ld16.safetensors").stat().st_size < 0.6 * path.stat().st_size
    diff = (half.sample(ctx, clap, steps=2, seed=5) - model.sample(ctx, clap, steps=2, seed=5)).abs().max()
    assert float(diff) < 1e-2
    with pytest.raises(CheckpointError, match="trained with codec"):
        LatentDiffusion.load(path, codec_id="codec:other")
    assert LatentDiffusion.load(path, codec_id="codec:abc", clap_id="clap:def").config.codec_id == "codec:abc"


def test_model_identity_survives_fp16_and_sees_weight_changes(tmp_path):
    model = tiny_model()
    a = model_identity(model.save(tmp_path / "a.safetensors"))
    b = model_identity(model.save(tmp_path / "b.safetensors", fp16=True))
    assert a == b and a.startswith("latent-diffusion:")
    with torch.no_grad():
        next(model.parameters()).add_(1.0)
    assert model_identity(model.save(tmp_path / "c.safetensors")) != a


def test_codec_identity_is_its_latent_space(tmp_path):
    """A decoder-only change keeps a codec's identity (its latents are the same); an encoder or latent
    statistics change does not."""
    import dataclasses

    from codec_helpers import tiny_codec

    codec = tiny_codec()
    with torch.no_grad():
        codec.encoder.bottleneck.weight.view(-1)[0] = 0.0
    base = model_identity(codec.save(tmp_path / "a.safetensors"))
    assert base.startswith("codec:")
    with torch.no_grad():
        codec.upsampler.head.conv.weight.add_(0.1)
        codec.unet.head.conv.weight.add_(0.1)
    codec.config = dataclasses.replace(codec.config, sigma_data=0.33)
    assert model_identity(codec.save(tmp_path / "b.safetensors")) == base
    with torch.no_grad():  # an EMA of frozen weights may turn 0.0 into -0.0: same numbers, same identity
        codec.encoder.bottleneck.weight.view(-1)[0] = -0.0
    assert model_identity(codec.save(tmp_path / "b2.safetensors")) == base
    codec.latent_std.fill_(0.5)
    assert model_identity(codec.save(tmp_path / "c.safetensors")) != base
    # a checkpoint without an optional config field (the bundled codec has no note_input) keeps its
    # identity when an export writes that field at its neutral value; another value changes the latents
    plain = codec.save(tmp_path / "d.safetensors")
    ck = load_checkpoint(plain, keep_dtype=True)
    old_style = {k: v for k, v in ck.config.items() if k != "note_input"}
    save_checkpoint(tmp_path / "old.safetensors", ck.tensors, kind="codec", config=old_style)
    assert model_identity(tmp_path / "old.safetensors") == model_identity(plain)
    save_checkpoint(tmp_path / "notes.safetensors", ck.tensors, kind="codec", config={**old_style, "note_input": True})
    assert model_identity(tmp_path / "notes.safetensors") != model_identity(plain)
    other = tiny_codec()
    with torch.no_grad():
        other.encoder.bottleneck.weight.add_(0.1)
    assert model_identity(other.save(tmp_path / "d.safetensors")) != base


def test_bad_inputs_raise_typed_errors(tmp_path):
    model = tiny_model()
    ctx, clap = conditions()
    with pytest.raises(InputError):
        model.sample(ctx, clap[:, :8], steps=2)
    with pytest.raises(InputError):
        model.sample(ctx, clap, frames=20, steps=2)
    with pytest.raises(ConfigError):
        LatentDiffusionConfig(mode="ddpm")
    with pytest.raises(ConfigError):
        LatentDiffusionConfig(net_config={"clap_dim": 128}, clap_dim=512)
    other = save_checkpoint(tmp_path / "x.safetensors", {"w": torch.zeros(2)}, kind="codec", config={})
    with pytest.raises(CheckpointError):
        LatentDiffusion.load(other)


# ------------------------------------------------------------------------------------ context chroma
def chroma(b: int = 2, t: int = 13, seed: int = 2) -> torch.Tensor:
    """A chroma stream [b, 12, t] as context_chroma gives it: in [0, 1], each frame's max 1."""
    c = torch.rand(b, 12, t, generator=torch.Generator().manual_seed(seed))
    return c / c.amax(dim=1, keepdim=True)


def test_a_chroma_model_takes_the_chroma_beside_the_context_latents():
    model = tiny_model(context_chroma=True)
    assert model.config.context_channels == 64 + 12 and model.net.config.context_channels == 76
    ctx, clap = conditions()
    c = chroma()
    inp = model.context_input(ctx, c)
    assert inp.shape == (2, 76, 13)
    assert torch.equal(inp[:, :64], model.normalize(ctx))
    assert torch.allclose(inp[:, 64:], CHROMA_SCALE * (c - 0.5))
    assert torch.equal(model.context_input(ctx, c[:1])[1, 64:], inp[0, 64:])  # a batch of 1 is broadcast
    out = model.denoise(torch.randn(2, 64, 13), torch.tensor([0.5, 2.0]), context=inp, clap=clap)
    assert out.shape == (2, 64, 13) and torch.isfinite(out).all()
    z = model.sample(ctx, clap, steps=2, seed=0, context_chroma=c)
    assert z.shape == (2, 64, 13) and torch.isfinite(z).all()
    assert not torch.allclose(z, model.sample(ctx, clap, steps=2, seed=0, context_chroma=chroma(seed=3)))
    # no context: no chroma either
    assert model.sample(None, clap, frames=13, steps=2, seed=0).shape == (2, 64, 13)


def test_chroma_is_required_by_chroma_models_and_refused_by_others():
    ctx, clap = conditions()
    with pytest.raises(InputError, match="trained with context chroma"):
        tiny_model(context_chroma=True).sample(ctx, clap, steps=2)
    with pytest.raises(InputError, match="trained without it"):
        tiny_model().sample(ctx, clap, steps=2, context_chroma=chroma())
    with pytest.raises(InputError, match="without context_latents"):
        tiny_model(context_chroma=True).sample(None, clap, frames=13, steps=2, context_chroma=chroma())
    with pytest.raises(InputError, match=r"\[B, 12, 13\]"):
        tiny_model(context_chroma=True).sample(ctx, clap, steps=2, context_chroma=chroma(t=12))
    with pytest.raises(InputError, match="batch"):
        tiny_model(context_chroma=True).context_input(ctx, chroma(b=3))
    with pytest.raises(ConfigError, match="context_channels"):
        LatentDiffusionConfig(net_config={"context_channels": 64}, context_chroma=True)


def test_a_dropped_context_drops_its_chroma():
    model = tiny_model(context_chroma=True)
    ctx, clap = conditions()
    x, sigma = torch.randn(2, 64, 13, generator=torch.Generator().manual_seed(4)), torch.tensor([0.5, 2.0])

    def run(c: torch.Tensor, drop: bool) -> torch.Tensor:
        return model.denoise(x, sigma, context=model.context_input(ctx, c), clap=clap,
                             drop_context=torch.full((2,), drop))

    a, b = chroma(seed=5), chroma(seed=6)
    assert not torch.allclose(run(a, False), run(b, False))  # the chroma matters when the context is kept ...
    assert torch.equal(run(a, True), run(b, True))  # ... and not at all when the context is dropped
    assert torch.equal(run(a, True), model.denoise(x, sigma, context=None, clap=clap))  # = no context at all
    # in guided sampling, the context-free pass does not see the chroma either: guidance w_ctx = 0
    kw = dict(steps=2, seed=1, cfg_context=0.0, cfg_clap=0.0)
    assert torch.equal(model.sample(ctx, clap, context_chroma=a, **kw), model.sample(ctx, clap, context_chroma=b, **kw))


def test_the_chroma_flag_survives_save_and_load_and_old_checkpoints_load_without_it(tmp_path):
    model = tiny_model(context_chroma=True)
    ctx, clap = conditions()
    again = LatentDiffusion.load(model.save(tmp_path / "chroma.safetensors"))
    assert again.config.context_chroma and again.config == model.config
    c = chroma()
    assert torch.equal(model.sample(ctx, clap, steps=2, seed=5, context_chroma=c),
                       again.sample(ctx, clap, steps=2, seed=5, context_chroma=c))
    # a checkpoint written before the field existed: no "context_chroma" in its config
    plain = tiny_model()
    ck = load_checkpoint(plain.save(tmp_path / "plain.safetensors"), keep_dtype=True)
    old = {k: v for k, v in ck.config.items() if k != "context_chroma"}
    save_checkpoint(tmp_path / "old.safetensors", ck.tensors, kind="latent-diffusion", config=old)
    loaded = LatentDiffusion.load(tmp_path / "old.safetensors")
    assert loaded.config.context_chroma is False and loaded.config.context_channels == 64
    assert torch.equal(loaded.sample(ctx, clap, steps=2, seed=5), plain.sample(ctx, clap, steps=2, seed=5))
