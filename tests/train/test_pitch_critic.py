"""The pitch critic (:mod:`diffariff.codec.pitch_critic`, ``diffariff train pitch-critic``): fitted on a latent
cache of rendered songs made with a tiny synth codec, it follows the codec's pitch-class energies on held-out
windows far better than the untrained net, its gradient points where the codec's does, a bundle carries and
checks it, harmony guidance through it raises the codec's own harmonic fit, and the pitch-class training term
read through it compares notes and is added to the EDM loss with its weight."""

from __future__ import annotations

import csv
import dataclasses

import numpy as np
import pytest
import torch

from diffariff.bundle import open_bundle, save_bundle
from diffariff.clap.builtin import BuiltinClap
from diffariff.cli import main
from diffariff.codec import load_codec
from diffariff.codec.pitch_critic import PitchCritic, PitchCriticConfig, load_pitch_critic, save_pitch_critic
from diffariff.data.latents import CHROMA_KEY, CacheRecipe, Encoders, LatentCacheDataset, build_latent_cache
from diffariff.data.sources import open_dataset
from diffariff.data.synth.corpus import build_corpus
from diffariff.diffusion.edm import edm_training_estimate
from diffariff.diffusion.model import model_identity
from diffariff.errors import CheckpointError
from diffariff.pipeline import Accompanist
from diffariff.pipeline.harmony import HarmonyGuide, harmonic_fit
from diffariff.testing import make_tiny_bundle
from diffariff.train.diffusion import DiffusionModule, load_run_config
from diffariff.train.pitch_critic import codec_log_energy, evaluate
from diffariff.train.pitch_loss import pitch_class_loss


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A tiny synth-codec bundle, a 16-pair cache of rendered songs made with its codec, a critic trained on it."""
    base = tmp_path_factory.mktemp("critic")
    bundle = make_tiny_bundle(base / "bundle", train_frames=24, modes=("consistency",), codec="synth")
    corpus = base / "corpus"
    build_corpus(corpus, songs=3, seconds=12, seed=4, jobs=1, progress=False)
    codec, clap = load_codec(bundle.codec), BuiltinClap.load(bundle.clap)
    encoders = Encoders(codec, clap, model_identity(bundle.codec), model_identity(bundle.clap))
    cache = base / "cache"
    build_latent_cache(encoders, open_dataset(corpus), cache,
                       CacheRecipe(pairs=16, shard_size=8, window_seconds=3.0, reference_seconds=1.0, split=None,
                                   seed=3), batch_size=8, progress=False)
    out = base / "critic.safetensors"
    rc = main(["train", "pitch-critic", "--codec", str(bundle.codec), "--cache", str(cache), "--out", str(out),
               "--rows", "16", "--held-out", "4", "--steps", "300", "--batch", "8", "--frames", "32",
               "--width", "48", "--blocks", "2", "--lr", "3e-3", "--grad-rows", "12"])
    assert rc == 0
    return dict(base=base, bundle=bundle, codec=codec, cache=cache, critic=out)


def test_critic_follows_the_codec_on_held_out_windows(setup):
    critic = load_pitch_critic(setup["critic"])
    data = LatentCacheDataset(setup["cache"], full_length=True)
    order = torch.randperm(len(data), generator=torch.Generator().manual_seed(0))[:4]  # the trainer's held-out rows
    latents = data.tensors["target"][order].float()
    chroma = data.tensors[CHROMA_KEY][order].float()
    targets = codec_log_energy(setup["codec"], latents)
    trained = evaluate(critic, setup["codec"], latents, chroma, targets)
    untrained = PitchCritic(critic.config)
    untrained.set_normalisation(critic.latent_mean.flatten(), critic.latent_std.flatten())
    before = evaluate(untrained, setup["codec"], latents, chroma, targets)
    assert trained["log_l1"] < 0.5 * before["log_l1"]
    assert trained["grad_cos"] > 0.5  # guidance through the critic climbs the codec's own fit
    assert critic.config.codec_id == model_identity(setup["bundle"].codec)


def test_profile_is_the_mean_of_frames_scaled_to_their_loudest_class():
    critic = PitchCritic(PitchCriticConfig(latent_dim=4, width=8, blocks=1)).eval()
    with torch.no_grad():  # output weights are zero at init: the log powers are the output bias
        critic.out.bias.copy_(torch.log(torch.tensor([4.0, 1.0] + [1e-3] * 9 + [2.0])))
    profile = critic.profile(torch.randn(2, 4, 10))
    assert torch.allclose(profile, torch.tensor([1.0, 0.25] + [2.5e-4] * 9 + [0.5]).expand(2, -1), rtol=1e-4)


def test_bundle_carries_and_checks_the_critic(setup, tmp_path, render_notes):
    b = setup["bundle"]
    parts = dict(codec=b.codec, clap=b.clap, diffusion=b.diffusion)
    bundle = save_bundle(tmp_path / "with", **parts, pitch_critic=setup["critic"])
    assert bundle.pitch_critic is not None and bundle.manifest["pitch_critic"] == "pitch_critic.safetensors"
    acc = Accompanist.from_pretrained(bundle.root)
    assert acc.pitch_critic is not None and acc.pitch_energy == acc.pitch_critic.energy
    context = render_notes(0, [62, 66, 69, 74], beat_seconds=0.4, seconds=2.0)
    stem = acc.generate(context, seed=0)  # harmony guidance and the key lock read the critic
    assert stem.shape == (1, 2, context.shape[-1]) and np.isfinite(stem).all()
    assert isinstance(acc.last_transpositions, list) and len(acc.last_transpositions) == 1
    with pytest.raises(CheckpointError, match="8-channel latents"):
        Accompanist(acc.codec, acc.clap, acc.models, pitch_critic=PitchCritic(PitchCriticConfig(latent_dim=8)))
    assert Accompanist.from_pretrained(b.root).pitch_energy.__name__ == "pitch_class_energy"
    foreign = PitchCritic(PitchCriticConfig(latent_dim=64, width=16, blocks=1, codec_id="synth_codec:0000000000000000"))
    save_pitch_critic(foreign, tmp_path / "foreign.safetensors")
    with pytest.raises(CheckpointError, match="fitted to codec"):
        save_bundle(tmp_path / "bad", **parts, pitch_critic=tmp_path / "foreign.safetensors")
    with pytest.raises(CheckpointError, match="pitch critic"):
        save_bundle(tmp_path / "wrongkind", **parts, pitch_critic=b.codec)
    assert not (tmp_path / "bad").exists()
    assert open_bundle(bundle.root).pitch_critic == bundle.pitch_critic
    rc = main(["bundle", "create", str(tmp_path / "cli"), "--codec", str(b.codec), "--clap", str(b.clap),
               "--consistency", str(b.diffusion["consistency"]), "--pitch-critic", str(setup["critic"])])
    assert rc == 0 and open_bundle(tmp_path / "cli").pitch_critic is not None


def test_guidance_through_the_critic_raises_the_codecs_fit(setup):
    critic, codec = load_pitch_critic(setup["critic"]), setup["codec"]
    data = LatentCacheDataset(setup["cache"], full_length=True)
    gains = []
    for i in range(len(data)):
        chroma = data.tensors[CHROMA_KEY][i: i + 1].float()
        if float(chroma.amax()) <= 0:
            continue
        z = data.tensors["target"][i: i + 1].float()
        mean, std = z.mean(), z.std()
        x = (z - mean) / std
        y = HarmonyGuide(critic.energy, mean, std, chroma, strength=0.3, iterations=3).refine(x)
        with torch.no_grad():
            fit = [float(harmonic_fit(codec.pitch_class_energy(v * std + mean), chroma)) for v in (x, y)]
        gains.append(fit[1] - fit[0])
    assert len(gains) >= 8
    assert sum(g > 0 for g in gains) >= 0.75 * len(gains) and sum(gains) / len(gains) > 0.01


def test_pitch_class_loss_compares_what_the_oscillators_play(setup):
    critic = load_pitch_critic(setup["critic"])
    targets = LatentCacheDataset(setup["cache"], full_length=True).tensors["target"].float()
    with torch.no_grad():
        assert float(pitch_class_loss(critic, targets, targets).abs().max()) < 1e-6
    others = pitch_class_loss(critic, targets.roll(1, 0), targets)  # another window's notes
    assert others.shape == (targets.shape[0],) and float(others.max()) <= 2.0
    g = torch.Generator().manual_seed(0)
    noise = torch.randn(targets.shape, generator=g) * targets.std()
    near, far = (float(pitch_class_loss(critic, targets + s * noise, targets).mean()) for s in (0.05, 0.5))
    assert 0 < near < far  # the error grows with the distance from the target's notes
    estimate = targets.roll(1, 0).clone().requires_grad_(True)
    pitch_class_loss(critic, estimate, targets).sum().backward()
    assert estimate.grad is not None and float(estimate.grad.abs().sum()) > 0
    assert all(p.grad is None for p in critic.parameters())  # the critic only reads
    with pytest.raises(ValueError, match="odd"):
        pitch_class_loss(critic, targets, targets, window=4)


def _train_tiny_dit(setup, out, *extra) -> int:
    config = out.parent / f"{out.name}.json"
    config.write_text('{"model": {"net_config": {"width": 32, "depth": 2, "heads": 2, "cond_dim": 32, '
                      '"noise_emb_dim": 32, "dpb_dim": 16}, "train_frames": 32}, "train": {"batch_size": 8, '
                      '"lr": 0.003, "warmup_steps": 2, "log_every": 2, "checkpoint_every": 100, "precision": "32-true"}}')
    return main(["train", "diffusion", "--cache", str(setup["cache"]), "--out", str(out), "--config", str(config),
                 "--seed", "0", *extra])


def test_edm_training_adds_the_weighted_pitch_term(setup, tmp_path, capsys):
    critic_path = str(setup["critic"])
    assert _train_tiny_dit(setup, tmp_path / "pitch", "--pitch-critic", critic_path, "--pitch-loss", "2",
                           "--max-steps", "12") == 0
    rows = [r for r in csv.DictReader((tmp_path / "pitch" / "metrics.csv").open()) if r.get("pitch_loss")]
    assert len(rows) >= 4 and all(float(r["pitch_loss"]) >= 0 for r in rows)
    cfg = load_run_config(tmp_path / "pitch" / "run_config.json")
    assert cfg.train.pitch_loss_weight == 2.0
    critic = load_pitch_critic(critic_path)
    weighted = DiffusionModule(cfg, None, critic)
    plain = DiffusionModule(dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, pitch_loss_weight=0.0)))
    plain.load_state_dict(weighted.state_dict())
    data = LatentCacheDataset(setup["cache"], 32)
    batch = torch.utils.data.default_collate([data[i] for i in range(8)])
    with torch.no_grad():
        total, sigma = weighted.loss(batch, 7)
        mse, same_sigma = plain.loss(batch, 7)  # the same draw of noise, sigmas and dropped conditions
        g = weighted.generator(7)
        cond = weighted.conditions(batch, g)
        denoised, _ = edm_training_estimate(weighted.model.denoiser, weighted.model.normalize(batch["target"]), cond, g)
        pitch = pitch_class_loss(critic, weighted.model.denormalize(denoised), batch["target"])
    assert torch.equal(sigma, same_sigma) and float(pitch.sum()) > 0
    assert torch.allclose(total - mse, 2.0 * pitch, rtol=1e-4, atol=1e-7)
    # a resumed run needs the critic again; a critic without a weight, or for other latents, is refused
    capsys.readouterr()

    def refused(message: str) -> bool:
        return message in capsys.readouterr().err

    assert main(["train", "diffusion", "--cache", str(setup["cache"]), "--out", str(tmp_path / "pitch"),
                 "--resume", "--max-steps", "14"]) == 2 and refused("needs a pitch critic")
    assert _train_tiny_dit(setup, tmp_path / "noweight", "--pitch-critic", critic_path, "--max-steps", "2") == 2
    assert refused("only with --pitch-loss")
    foreign = PitchCritic(PitchCriticConfig(latent_dim=3, width=8, blocks=1))
    save_pitch_critic(foreign, tmp_path / "foreign.safetensors")
    assert _train_tiny_dit(setup, tmp_path / "foreign", "--pitch-critic", str(tmp_path / "foreign.safetensors"),
                           "--pitch-loss", "1", "--max-steps", "2") == 2 and refused("latent channels")
    other_codec = PitchCritic(PitchCriticConfig(latent_dim=critic.config.latent_dim, width=8, blocks=1,
                                                codec_id="synth_codec:0000000000000000"))
    save_pitch_critic(other_codec, tmp_path / "other_codec.safetensors")
    assert _train_tiny_dit(setup, tmp_path / "other", "--pitch-critic", str(tmp_path / "other_codec.safetensors"),
                           "--pitch-loss", "1", "--max-steps", "2") == 2 and refused("fitted to codec")
    assert _train_tiny_dit(setup, tmp_path / "ct", "--mode", "consistency", "--pitch-critic", critic_path,
                           "--pitch-loss", "1", "--max-steps", "2") == 2 and refused("for EDM training")
