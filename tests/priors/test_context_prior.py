"""The context prior (a CLAP bridge conditioned on the context mix's audio embedding) on real audio:
FluidSynth-rendered piano and bass phrases through a tiny randomly initialised BuiltinClap, pairs cut
from a rendered corpus, the `train prior` command, and its use by the Accompanist, bundles and the
evaluation protocol."""

from __future__ import annotations

import argparse
import json
import shutil

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from cli_args import parse_options
from diffariff.bundle import open_bundle
from diffariff.checkpoint import file_sha256, read_checkpoint_metadata
from diffariff.clap.builtin import BuiltinClap
from diffariff.cli import main
from diffariff.commands.train_options import prior_arguments
from diffariff.errors import CheckpointError, ConfigError, InputError
from diffariff.priors.bridge import BridgeConfig, ClapBridge
from diffariff.priors.context_prior import (
    ROLE_NAMES,
    PriorPairs,
    embed_pair_items,
    evaluate_prior,
    format_prior_report,
    role_centroids,
    sample_for_context,
)
from diffariff.priors.load import load_context_prior
from diffariff.testing import make_tiny_bundle
from diffariff.train.prior import PriorBatches, run
from prior_audio import SR, TINY_CLAP, phrase_crops

TINY = BridgeConfig(dim=32, text_dim=32, hidden=64, blocks=2, noise_emb_dim=32, steps=8, condition="context")
# fp32: the tiny random models react to the CLAP condition by less than a bf16 step
FAST = dict(steps=2, decode_mode="deterministic", precision="fp32")


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def clap() -> BuiltinClap:
    torch.manual_seed(0)
    return BuiltinClap(TINY_CLAP)


@pytest.fixture(scope="module")
def phrases(render_notes) -> dict[str, list[np.ndarray]]:
    """1-s stereo crops [2, 48000] of rendered piano and bass phrases (16 each)."""
    return phrase_crops(render_notes, ("bass", "piano"))


def _items(contexts, references, roles=None) -> list[dict]:
    roles = roles or [None] * len(contexts)
    return [{"context": torch.from_numpy(np.asarray(c)), "reference": torch.from_numpy(np.asarray(r)), "target_role": role}
            for c, r, role in zip(contexts, references, roles)]


def test_embed_pair_items_marks_silent_contexts(clap, phrases):
    silent = np.zeros_like(phrases["piano"][0])
    pairs = embed_pair_items(clap, _items([phrases["piano"][0], silent, phrases["bass"][1]],
                                          [phrases["bass"][0], phrases["piano"][0], phrases["piano"][1]]), SR)
    assert pairs.has_context.tolist() == [True, False, True] and len(pairs) == 3
    assert torch.equal(pairs.context[1], torch.zeros(32))
    assert torch.allclose(pairs.context[[0, 2]].norm(dim=1), torch.ones(2), atol=1e-5)
    assert torch.allclose(pairs.target[0], clap.embed_audio(phrases["bass"][0][None], sample_rate=SR)[0], atol=1e-6)
    with pytest.raises(InputError, match="no pairs"):
        embed_pair_items(clap, [], SR)


def test_batches_train_rows_without_context_unconditionally(clap, phrases):
    pairs = PriorPairs(torch.randn(6, 32), torch.randn(6, 32), torch.tensor([True, False] * 3))
    ds = PriorBatches(pairs, batch_size=400, steps=5, p_uncond=0.2, seed=0)
    target, context, drop = ds[2]
    again = ds[2]
    assert torch.equal(target, again[0]) and torch.equal(drop, again[2]) and target.shape == (400, 32)
    rows = (target[:, None] == pairs.target[None]).all(-1).float().argmax(dim=1)
    assert torch.equal(context, pairs.context[rows])  # each row keeps its own pair's context
    assert bool(drop[~pairs.has_context[rows]].all())  # no context -> always the null condition
    share = float(drop[pairs.has_context[rows]].float().mean())
    assert 0.1 < share < 0.3  # the others are dropped with p_uncond


def _fit(pairs: PriorPairs, steps: int, seed: int = 0) -> ClapBridge:
    torch.manual_seed(seed)
    prior = ClapBridge(TINY)
    prior.set_data_stats(pairs.target)
    opt = torch.optim.AdamW(prior.parameters(), lr=2e-3)
    ds = PriorBatches(pairs, batch_size=64, steps=steps, p_uncond=0.2, seed=seed)
    prior.train()
    for i in range(steps):
        target, context, drop = ds[i]
        loss = prior.loss(target, context, drop)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return prior.eval()


def test_prior_learns_which_instrument_a_context_lacks(clap, phrases):
    """Piano contexts were always paired with bass targets and bass contexts with piano targets: after
    a short training, samples for a held-out piano crop land nearer the bass audio, and vice versa; the
    held-out report shows the context beating the unconditional samples."""
    train = {k: v[:12] for k, v in phrases.items()}
    held = {k: v[12:] for k, v in phrases.items()}
    contexts = train["piano"] + train["bass"]
    refs = train["bass"][::-1] + train["piano"][::-1]
    pairs = embed_pair_items(clap, _items(contexts, refs, ["bass"] * 12 + ["chords"] * 12), SR)
    assert pairs.role.tolist() == [ROLE_NAMES.index("bass")] * 12 + [ROLE_NAMES.index("chords")] * 12
    prior = _fit(pairs, steps=300)
    centroids = F.normalize(torch.stack([pairs.target[:12].mean(0), pairs.target[12:].mean(0)]), dim=-1)  # bass, piano
    for ctx_name, want in (("piano", 0), ("bass", 1)):
        samples = torch.cat([sample_for_context(prior, clap, c, SR, n=4, seed=i) for i, c in enumerate(held[ctx_name])])
        assert float(((samples @ centroids.T).argmax(dim=1) == want).float().mean()) > 0.8, ctx_name
    held_pairs = embed_pair_items(clap, _items(held["piano"] + held["bass"], held["bass"] + held["piano"],
                                               ["bass"] * 4 + ["chords"] * 4), SR)
    report = evaluate_prior(prior, held_pairs, samples=4, seed=0, centroids=role_centroids(pairs))
    assert report["pairs"] == 8 and report["role_pairs"] == 8
    assert report["context"]["cos_true"] > report["unconditional"]["cos_true"]
    assert report["context"]["cos_true"] > report["context"]["cos_other"]
    # roles: the classifier names the true targets' roles, the context's samples mostly the right one,
    # the unconditional samples either role (chance)
    assert report["role_acc_true_target"] == 1.0
    assert report["context"]["role_acc"] > 0.8 > report["unconditional"]["role_acc"]
    assert "role accuracy" in format_prior_report(report)
    assert "| context |" in format_prior_report(report)


def test_sample_for_context_contract(clap, phrases):
    prior = ClapBridge(TINY)
    prior.set_data_stats(F.normalize(torch.randn(16, 32), dim=-1))
    piano = phrases["piano"][0]
    a = sample_for_context(prior, clap, piano, SR, n=3, seed=5)
    assert a.shape == (3, 32) and torch.allclose(a.norm(dim=1), torch.ones(3), atol=1e-5)
    assert torch.equal(a, sample_for_context(prior, clap, piano, SR, n=3, seed=5))
    silent = sample_for_context(prior, clap, np.zeros_like(piano), SR, n=2, seed=1)
    assert torch.equal(silent, prior.sample(None, n_per_text=2, seed=1))  # silence = the unconditional prior
    assert torch.equal(sample_for_context(prior, clap, None, SR, n=2, seed=1), silent)
    text_bridge = ClapBridge(BridgeConfig(dim=32, text_dim=32, hidden=64, blocks=2, noise_emb_dim=32))
    text_bridge.set_data_stats(F.normalize(torch.randn(16, 32), dim=-1))
    with pytest.raises(InputError, match="not a context prior"):
        sample_for_context(text_bridge, clap, piano, SR)
    with pytest.raises(ConfigError, match="condition"):
        BridgeConfig(condition="lyrics")


# ---------------------------------------------------------------------------------- the command
@pytest.fixture(scope="module")
def tiny_corpus(tmp_path_factory):
    from diffariff.data.synth.corpus import build_corpus

    root = tmp_path_factory.mktemp("prior_corpus")
    build_corpus(root, songs=3, seconds=12, seed=2, jobs=1, progress=False)
    return root


def _args(**kw) -> argparse.Namespace:
    return parse_options(prior_arguments, **kw)


def test_train_prior_command_embeds_once_resumes_and_evaluates(clap, tiny_corpus, tmp_path, capsys):
    clap_path = clap.save(tmp_path / "clap.safetensors")
    config = tmp_path / "tiny.json"
    config.write_text(json.dumps({
        "model": {"hidden": 64, "blocks": 2, "noise_emb_dim": 32, "steps": 4},
        "train": {"batch_size": 16, "max_steps": 6, "warmup_steps": 2, "lr": 1e-3, "pairs": 20, "part_size": 8,
                  "eval_pairs": 10, "window_seconds": 2.0, "reference_seconds": 1.0, "checkpoint_every": 3,
                  "eval_split": "train", "eval_samples": 2, "context_probabilities": [0.5, 1.0]},
    }))
    out = tmp_path / "run"
    common = dict(clap=clap_path, corpus=[tiny_corpus], out=out)
    assert run(_args(**common, config=config)) == 0
    prior = ClapBridge.load(out / "prior.safetensors")
    assert prior.config.condition == "context" and prior.config.dim == clap.dim and prior.config.sigma_data > 0
    assert prior.config.clap_sha256 == file_sha256(clap_path)
    parts = sorted(p.name for p in (out / "pairs").iterdir())
    assert parts == ["eval.safetensors", "part_00000.safetensors", "part_00001.safetensors", "part_00002.safetensors"]
    full = PriorPairs(**load_file(out / "pairs" / "part_00001.safetensors"))
    assert bool(full.has_context.all())  # context probability 1.0 for odd parts: every other stem joins
    result = json.loads((out / "eval.json").read_text())
    assert result["step"] == 6 and result["pairs"] >= 2 and -1 <= result["context"]["cos_true"] <= 1
    assert bool((full.role >= 0).all())  # the corpus's roles are kept with the pairs
    assert result["role_pairs"] <= result["pairs"] and 0 <= result["context"]["role_acc"] <= 1
    assert "Context prior on" in capsys.readouterr().out
    mtimes = {p.name: p.stat().st_mtime_ns for p in (out / "pairs").iterdir()}

    with pytest.raises(InputError, match="--resume"):
        run(_args(**common))
    export = tmp_path / "exported.safetensors"
    assert run(_args(**common, resume=True, max_steps=8, pairs=28, export=export)) == 0
    meta = json.loads(read_checkpoint_metadata(export)["extra"])
    assert meta["step"] == 8 and meta["pairs"] == 28
    now = {p.name: p.stat().st_mtime_ns for p in (out / "pairs").iterdir()}
    assert {k: now[k] for k in mtimes if k != "part_00002.safetensors"} == \
        {k: v for k, v in mtimes.items() if k != "part_00002.safetensors"}  # complete parts embedded once
    assert "part_00003.safetensors" in now  # more pairs: only the new parts are embedded

    # `eval prior` scores the trained prior on the run's held-out pairs, at two guidance strengths
    report = tmp_path / "report"
    assert main(["eval", "prior", "--prior", str(out / "prior.safetensors"), "--pairs", str(out / "pairs"),
                 "--guidance", "1", "3", "--samples", "2", "--out", str(report)]) == 0
    scored = json.loads((report / "results.json").read_text())
    assert [r["guidance"] for r in scored["rows"]] == [1.0, 3.0]
    assert 0 <= scored["role_probe"]["linear"] <= 1 and scored["role_probe"]["pairs"] >= 1
    assert "Role from the context embedding alone" in (report / "table.md").read_text()
    bridge = ClapBridge(BridgeConfig(dim=clap.dim, text_dim=clap.dim, hidden=16, blocks=1, noise_emb_dim=8))
    bridge.set_data_stats(F.normalize(torch.randn(16, clap.dim), dim=-1))
    bridge.save(tmp_path / "text_bridge.safetensors")
    assert main(["eval", "prior", "--prior", str(tmp_path / "text_bridge.safetensors"), "--pairs", str(out / "pairs"),
                 "--out", str(tmp_path / "bad")]) != 0  # a text bridge is refused with a one-line error
    assert "not a context prior" in capsys.readouterr().err
    assert main(["eval", "prior", "--prior", str(out / "prior.safetensors"), "--pairs", str(tmp_path),
                 "--out", str(tmp_path / "bad")]) != 0
    assert "no embedded prior pairs" in capsys.readouterr().err


# ------------------------------------------------------------------------- bundle and Accompanist
def test_accompanist_lets_the_prior_choose_only_without_other_conditions(tmp_path, render_notes):
    from diffariff.pipeline import Accompanist

    root = make_tiny_bundle(tmp_path / "pr", modes=("consistency",), prior=True).root
    assert open_bundle(root).prior is not None
    acc = Accompanist.from_pretrained(root)
    ctx = render_notes(0, [60, 64, 67, 72, 67, 64], beat_seconds=0.15, seconds=1.0)
    with_prior = acc.generate(ctx, seed=0, **FAST)
    assert acc.last_condition == "prior"
    raw = acc.generate(ctx, seed=0, use_prior=False, **FAST)
    assert acc.last_condition is None and not np.allclose(with_prior, raw)
    assert np.array_equal(with_prior, acc.generate(ctx, seed=0, **FAST))  # the prior's draw follows the seed
    guided = acc.generate(ctx, seed=0, prior_guidance=3.0, **FAST)
    assert acc.last_condition == "prior" and not np.allclose(guided, with_prior)  # the strength reaches the prior
    with pytest.raises(InputError, match="guidance"):
        acc.generate(ctx, seed=0, prior_guidance=-1.0, **FAST)
    acc.generate(ctx, seed=0, text="bass", **FAST)
    assert acc.last_condition == "text"
    acc.generate(None, seconds=1.0, seed=0, **FAST)  # silent context: nothing to condition the prior on
    assert acc.last_condition is None
    assert acc.context_condition(ctx, seed=1).shape == (1, acc.clap.dim)
    with pytest.raises(ConfigError, match="no context prior"):
        Accompanist.from_pretrained(root, load_prior=False).context_condition(ctx)


def test_bundle_refuses_a_text_bridge_as_prior(tmp_path):
    root = make_tiny_bundle(tmp_path / "b", modes=("consistency",), bridge=True, prior=True).root
    shutil.copyfile(root / "bridge.safetensors", root / "prior.safetensors")
    with pytest.raises(CheckpointError, match="conditioned on 'context'"):
        open_bundle(root)


def test_eval_settings_include_the_prior_row_only_with_a_prior(tmp_path):
    from diffariff.eval.candidates import bundle_generators

    with_prior = make_tiny_bundle(tmp_path / "p", modes=("consistency",), prior=True).root
    without = make_tiny_bundle(tmp_path / "n", modes=("consistency",)).root
    assert "ctx_prior" in bundle_generators(with_prior)
    assert "ctx_prior" not in bundle_generators(without)
    with pytest.raises(InputError, match="context prior"):
        bundle_generators(without, ["ctx_prior"])


def test_default_bundle_ships_a_context_prior_for_its_clap(render_notes):
    bundle = open_bundle("default")
    prior = load_context_prior(bundle.prior)
    assert prior.config.condition == "context" and prior.check_clap(bundle.clap)
    clap = BuiltinClap.load(bundle.clap)
    ctx = render_notes(0, [60, 64, 67, 72, 67, 64], beat_seconds=0.15, seconds=2.0)
    samples = sample_for_context(prior, clap, ctx, SR, n=2, seed=0)
    assert samples.shape == (2, clap.dim) and torch.allclose(samples.norm(dim=1), torch.ones(2), atol=1e-4)
    assert not torch.allclose(samples[0], samples[1])  # a distribution of instruments, not one point
