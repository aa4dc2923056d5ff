"""The text-to-audio CLAP bridge on real embeddings: a tiny randomly initialised BuiltinClap over
FluidSynth-rendered piano and bass phrases and the real frozen text tower. Shapes, normalisation,
determinism, (un)conditional sampling, persistence, typed errors, a short training that learns to map
"bass" prompts to bass audio, the pair cache and the `train bridge` command on a tiny corpus."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cli_args import parse_options
from diffariff.checkpoint import file_sha256, load_checkpoint, read_checkpoint_metadata
from diffariff.clap.builtin import BuiltinClap, ClapConfig
from diffariff.commands.train_options import bridge_arguments
from diffariff.errors import CheckpointError, ConfigError, InputError
from diffariff.priors.bridge import (
    KIND,
    BridgeConfig,
    ClapBridge,
    evaluate_bridge,
    format_bridge_report,
    mean_pairwise_distance,
)
from diffariff.train.bridge import PairBank, PairBatches, run

SR = 48_000
TINY_CLAP = ClapConfig(dim=32, n_mels=32, channels=(8, 16, 32), pool_dim=32, audio_hidden=64, text_hidden=64,
                       window_seconds=1.0)
TINY = BridgeConfig(dim=32, text_dim=32, hidden=64, blocks=2, noise_emb_dim=32, steps=8)
BASS_TEXTS = ["bass", "electric bass", "a bass line", "warm fingered electric bass", "bassline", "solo bass"]
PIANO_TEXTS = ["piano", "grand piano", "piano chords", "bright acoustic piano", "a recording of piano",
               "solo piano"]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """These models are tiny: one thread avoids the inter-thread overhead that dominates (x10 on a
    busy 2-core machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def clap() -> BuiltinClap:
    torch.manual_seed(0)
    return BuiltinClap(TINY_CLAP)


@pytest.fixture(scope="module")
def audio_emb(clap, render_notes) -> dict[str, torch.Tensor]:
    """Real audio embeddings ``[24, 32]`` per instrument: 1-s crops of three rendered phrases."""
    phrases = {
        "bass": (33, [[36, 43, 41, 38, 36, 31, 33, 36], [40, 40, 43, 45, 28, 31, 33, 35], [33, 45, 33, 45, 38, 50]]),
        "piano": (0, [[60, 64, 67, 72, 67, 64, 60, 55], [72, 71, 69, 67, 65, 64, 62, 60], [64, 68, 71, 76, 64, 68]]),
    }
    out = {}
    for name, (program, pitch_sets) in phrases.items():
        clips = []
        for pitches in pitch_sets:
            audio = render_notes(program, pitches, seconds=2.0)
            clips += [audio[:, s:s + SR] for s in range(0, SR + 1, SR // 7)]
        out[name] = clap.embed_audio(np.stack(clips))
    return out


@pytest.fixture(scope="module")
def text_emb(clap) -> dict[str, torch.Tensor]:
    return {"bass": clap.embed_text(BASS_TEXTS), "piano": clap.embed_text(PIANO_TEXTS)}


def fitted_bridge(audio_emb, config: BridgeConfig = TINY, seed: int = 0) -> ClapBridge:
    torch.manual_seed(seed)
    bridge = ClapBridge(config)
    bridge.set_data_stats(torch.cat(list(audio_emb.values())))
    return bridge


def test_sample_shapes_and_unit_norm(audio_emb, text_emb):
    bridge = fitted_bridge(audio_emb)
    out = bridge.sample(text_emb["bass"][:3], n_per_text=2, seed=0)
    assert out.shape == (6, 32) and out.dtype == torch.float32
    assert torch.allclose(out.norm(dim=1), torch.ones(6), atol=1e-5)
    uncond = bridge.sample(None, n_per_text=5, seed=0)
    assert uncond.shape == (5, 32)
    assert torch.allclose(uncond.norm(dim=1), torch.ones(5), atol=1e-5)
    assert mean_pairwise_distance(uncond) > 1e-4  # distinct samples, not one point
    guided = bridge.sample(text_emb["bass"][:2], guidance=2.0, sampler="euler", steps=4, seed=0)
    assert guided.shape == (2, 32) and bool(torch.isfinite(guided).all())


def test_sampling_is_deterministic_by_seed(audio_emb, text_emb):
    bridge = fitted_bridge(audio_emb)
    text = text_emb["piano"][:2]
    a = bridge.sample(text, n_per_text=3, seed=7)
    assert torch.equal(a, bridge.sample(text, n_per_text=3, seed=7))
    assert not torch.allclose(a, bridge.sample(text, n_per_text=3, seed=8))
    assert torch.equal(bridge.sample(None, n_per_text=2, seed=1), bridge.sample(None, n_per_text=2, seed=1))


def test_data_stats_set_sigma_data(audio_emb):
    bridge = fitted_bridge(audio_emb)
    allemb = torch.cat(list(audio_emb.values()))
    assert bridge.config.sigma_data == pytest.approx(float((allemb - allemb.mean(0)).std(unbiased=False)), rel=1e-4)
    z = bridge.to_net(allemb)
    assert float(z.std(unbiased=False)) == pytest.approx(0.5, rel=1e-3)
    assert torch.allclose(bridge.from_net(z), allemb, atol=1e-5)  # the round trip keeps unit vectors


def test_save_load_identical(audio_emb, text_emb, tmp_path):
    bridge = fitted_bridge(audio_emb)
    bridge.config.clap_sha256 = "abc"
    path = bridge.save(tmp_path / "bridge.safetensors", extra={"step": 3})
    meta = read_checkpoint_metadata(path)
    assert meta["kind"] == KIND and json.loads(meta["config"])["clap_sha256"] == "abc"
    again = ClapBridge.load(path)
    assert again.config == bridge.config
    text = text_emb["bass"][:2]
    assert torch.equal(again.sample(text, n_per_text=2, seed=3), bridge.sample(text, n_per_text=2, seed=3))
    with pytest.raises(CheckpointError, match="expected 'clap'"):
        BuiltinClap.load(path)
    half = ClapBridge.load(bridge.save(tmp_path / "half.safetensors", fp16=True))  # the shipping format
    assert half.config == bridge.config and (tmp_path / "half.safetensors").stat().st_size < 0.6 * path.stat().st_size
    cos = (half.sample(text, n_per_text=2, seed=3) * bridge.sample(text, n_per_text=2, seed=3)).sum(dim=1)
    assert bool((cos > 0.999).all()), cos


def test_bad_input_raises_typed_errors(audio_emb, tmp_path):
    bridge = fitted_bridge(audio_emb)
    with pytest.raises(InputError, match=r"\[B, 32\]"):
        bridge.sample(torch.zeros(2, 31))
    with pytest.raises(InputError, match="NaN"):
        bridge.sample(torch.full((1, 32), float("nan")))
    with pytest.raises(InputError, match="n_per_text"):
        bridge.sample(None, n_per_text=0)
    with pytest.raises(ConfigError, match="unknown sampler"):
        bridge.sample(None, sampler="nope")
    with pytest.raises(ConfigError, match="data statistics"):
        ClapBridge(TINY).sample(None)
    with pytest.raises(ConfigError, match="p_uncond"):
        BridgeConfig(p_uncond=1.5)
    with pytest.raises(CheckpointError, match="not found"):
        ClapBridge.load(tmp_path / "missing.safetensors")


def test_training_maps_bass_text_to_bass_audio(audio_emb, text_emb):
    """A few hundred steps on real (text, audio) pairs: the loss falls, and conditional samples for
    unseen-order bass prompts land nearer the bass audio than the piano audio (and vice versa)."""
    bridge = fitted_bridge(audio_emb, seed=1)
    names = ["bass", "piano"]
    audio = torch.cat([audio_emb[n] for n in names])
    label = torch.cat([torch.full((audio_emb[n].shape[0],), i) for i, n in enumerate(names)])
    gen = torch.Generator().manual_seed(0)

    def batch(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        idx = torch.randint(0, audio.shape[0], (n,), generator=gen)
        texts = torch.stack([text_emb[names[int(label[i])]][int(torch.randint(0, 6, (1,), generator=gen))]
                             for i in idx])
        return audio[idx], texts

    val_audio, val_text = batch(512)

    def val_loss() -> float:
        with torch.no_grad():
            return float(bridge.loss(val_audio, val_text, torch.zeros(512, dtype=torch.bool),
                                     generator=torch.Generator().manual_seed(1)))

    before = val_loss()
    opt = torch.optim.AdamW(bridge.parameters(), lr=2e-3)
    bridge.train()
    for _ in range(300):
        a, t = batch(64)
        loss = bridge.loss(a, t, generator=gen)
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = val_loss()
    assert after < 0.7 * before
    centroids = F.normalize(torch.stack([audio_emb[n].mean(0) for n in names]), dim=-1)
    for i, n in enumerate(names):
        samples = bridge.sample(text_emb[n], n_per_text=4, seed=0)
        sims = samples @ centroids.T  # [24, 2]
        assert float((sims.argmax(dim=1) == i).float().mean()) > 0.8, n
    spread = mean_pairwise_distance(bridge.sample(text_emb["bass"][:1], n_per_text=16, seed=0))
    assert spread > 1e-4  # a prompt gives a distribution, not a single point


def test_pair_batches_are_seeded_and_drop_text(audio_emb, text_emb):
    bank = PairBank(torch.stack([audio_emb["bass"][:4], audio_emb["piano"][:4]]),
                    torch.cat([text_emb["bass"], text_emb["piano"]]),
                    torch.tensor([[0, 1, 2, 3, 4, 5], [6, 7, 8, 8, 8, 8]]), torch.tensor([6, 3]))
    ds = PairBatches(bank, batch_size=200, steps=10, p_uncond=0.25, seed=0)
    a, t, drop = ds[3]
    a2, t2, drop2 = ds[3]
    assert torch.equal(a, a2) and torch.equal(t, t2) and torch.equal(drop, drop2)
    assert a.shape == (200, 32) and t.shape == (200, 32) and drop.dtype == torch.bool
    assert 0.1 < float(drop.float().mean()) < 0.4
    is_bass = (a @ bank.audio[0].T).max(dim=1).values > (a @ bank.audio[1].T).max(dim=1).values - 1e-6
    text_bass = (t[:, None] == text_emb["bass"][None]).all(-1).any(-1)
    assert torch.equal(is_bass, text_bass)  # every pair keeps its own stem's prompts
    assert not (t[~text_bass][:, None] == text_emb["piano"][3:][None]).all(-1).any()  # padding never drawn


@pytest.fixture(scope="module")
def tiny_corpus(tmp_path_factory):
    from diffariff.data.synth.corpus import build_corpus

    root = tmp_path_factory.mktemp("bridge_corpus")
    build_corpus(root, songs=3, seconds=10, seed=1, jobs=1, progress=False)
    return root


def _args(**kw) -> argparse.Namespace:
    return parse_options(bridge_arguments, **kw)


def test_train_command_runs_resumes_and_evaluates(clap, tiny_corpus, tmp_path, capsys):
    clap_path = clap.save(tmp_path / "clap.safetensors")
    config = tmp_path / "tiny.json"
    config.write_text(json.dumps({
        "model": {"hidden": 64, "blocks": 2, "noise_emb_dim": 32, "steps": 4},
        "train": {"batch_size": 32, "max_steps": 6, "warmup_steps": 2, "lr": 1e-3, "crops_per_stem": 2,
                  "crop_seconds": 2.0, "prompts_per_stem": 4, "checkpoint_every": 3, "eval_samples": 4},
    }))
    out = tmp_path / "run"
    common = dict(clap=clap_path, corpus=tiny_corpus, out=out)
    assert run(_args(**common, config=config, eval_split="train")) == 0
    bridge = ClapBridge.load(out / "bridge.safetensors")
    assert bridge.config.dim == clap.dim and bridge.config.sigma_data > 0
    assert bridge.config.clap_sha256 == file_sha256(clap_path) and bridge.check_clap(clap_path)
    result = json.loads((out / "eval.json").read_text())
    assert result["split"] == "train" and result["stems"] >= 6 and result["step"] == 6
    assert 0.0 <= result["retrieval"]["bridged_mean_r10"] <= 1.0 and result["spread_conditional"] > 0
    assert "text->audio R@1" in capsys.readouterr().out
    pairs = load_checkpoint(out / "pairs.safetensors", kind="bridge-pairs")
    assert pairs.tensors["audio"].shape == (result["stems"], 2, 32)  # train split = eval split here
    assert pairs.config["clap_sha256"] == bridge.config.clap_sha256
    pairs_mtime = (out / "pairs.safetensors").stat().st_mtime_ns

    with pytest.raises(InputError, match="--resume"):
        run(_args(**common))
    export = tmp_path / "exported.safetensors"
    assert run(_args(**common, resume=True, max_steps=9, eval_split="none", export=export)) == 0
    meta = json.loads(read_checkpoint_metadata(export)["extra"])
    assert meta["step"] == 9 and meta["throughput"]["steps"] == 3
    assert (out / "pairs.safetensors").stat().st_mtime_ns == pairs_mtime  # embedded once, then cached
    assert json.loads((out / "eval.json").read_text())["step"] == 6  # --eval-split none: not re-evaluated


def test_evaluate_bridge_reports_baselines(clap, tiny_corpus):
    from diffariff.clap.corpus import scan_songs
    from diffariff.priors.bridge import stem_crop_embeddings

    stems = stem_crop_embeddings(clap, scan_songs(tiny_corpus, "train"), crops_per_stem=2, crop_seconds=2.0)
    assert stems.audio.shape[1:] == (2, 32) and len(stems.metas) == stems.audio.shape[0] >= 6
    assert torch.allclose(stems.audio.norm(dim=-1), torch.ones(stems.audio.shape[:2]), atol=1e-5)
    bridge = ClapBridge(TINY)
    bridge.set_data_stats(stems.audio.reshape(-1, 32))
    kw = dict(n_samples=3, spread_samples=4, embeddings=stems)
    result = evaluate_bridge(bridge, clap, tiny_corpus, "train", **kw)
    assert result == evaluate_bridge(bridge, clap, tiny_corpus, "train", **kw)  # seeded end to end
    assert result["stems"] == stems.audio.shape[0]
    assert -1.0 <= result["cos_text"] <= 1.0 and result["spread_real"] > 0
    assert result["retrieval"]["chance_r1"] == pytest.approx(1 / result["stems"])
    assert "bridged mean" in format_bridge_report(result)
    with pytest.raises(InputError, match="n_samples"):
        evaluate_bridge(bridge, clap, tiny_corpus, "train", spread_samples=1, embeddings=stems)
