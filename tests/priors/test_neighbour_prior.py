"""The neighbour context prior (role classifier + bank of embedded pairs) on real audio: FluidSynth-rendered
piano, bass and drum phrases through a tiny randomly initialised BuiltinClap; the `train neighbour-prior`
command on the pairs folder of a real `train prior` run; its use by bundles and the Accompanist."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cli_args import parse_options
from diffariff.bundle import open_bundle, save_bundle
from diffariff.checkpoint import read_checkpoint_metadata
from diffariff.clap.builtin import BuiltinClap
from diffariff.errors import CheckpointError, ConfigError, InputError
from diffariff.priors.context_prior import (
    ROLE_NAMES,
    PriorPairs,
    embed_pair_items,
    evaluate_prior,
    role_centroids,
    sample_for_context,
)
from diffariff.priors.load import load_context_prior
from diffariff.priors.neighbour_prior import NeighbourPrior, NeighbourPriorConfig
from diffariff.testing import make_tiny_bundle
from prior_audio import SR, TINY_CLAP, phrase_crops

BASS, CHORDS, DRUMS = (ROLE_NAMES.index(r) for r in ("bass", "chords", "drums"))


@pytest.fixture(scope="module")
def clap() -> BuiltinClap:
    torch.manual_seed(0)
    return BuiltinClap(TINY_CLAP)


@pytest.fixture(scope="module")
def crops(render_notes) -> dict[str, list[np.ndarray]]:
    """1-s stereo crops [2, 48000] of rendered piano, bass and drum phrases (16 each)."""
    return phrase_crops(render_notes, ("bass", "piano", "drums"))


def _pairs(clap, crops, part: slice) -> PriorPairs:
    """Piano contexts lack a bass (target: a bass crop), bass contexts lack chords (a piano crop), drum
    contexts lack a bass: the missing role follows from the context."""
    contexts = crops["piano"][part] + crops["bass"][part] + crops["drums"][part]
    refs = crops["bass"][part][::-1] + crops["piano"][part][::-1] + crops["bass"][part]
    n = len(crops["piano"][part])
    roles = ["bass"] * n + ["chords"] * n + ["bass"] * n
    items = [{"context": torch.from_numpy(c), "reference": torch.from_numpy(r), "target_role": role}
             for c, r, role in zip(contexts, refs, roles)]
    return embed_pair_items(clap, items, SR)


@pytest.fixture(scope="module")
def train_pairs(clap, crops) -> PriorPairs:
    return _pairs(clap, crops, slice(0, 12))


@pytest.fixture(scope="module")
def held_pairs(clap, crops) -> PriorPairs:
    return _pairs(clap, crops, slice(12, 16))


def test_prior_names_the_missing_role_and_returns_real_stems(clap, crops, train_pairs, held_pairs):
    prior = NeighbourPrior.build(train_pairs, NeighbourPriorConfig(dim=clap.dim, k=4))
    assert sorted(prior.config.roles) == sorted({BASS, CHORDS}) and prior.target.shape == (36, clap.dim)
    # held-out piano and drum crops get bass stems, bass crops get piano stems
    want = {"piano": BASS, "drums": BASS, "bass": CHORDS}
    for name, role in want.items():
        ctx = torch.cat([clap.embed_audio(c[None], sample_rate=SR) for c in crops[name][12:]])
        probs = prior.role_probabilities(ctx)
        assert float((probs.argmax(1) == prior.config.roles.index(role)).float().mean()) == 1.0, name
        draws = prior.sample(ctx, n_per_text=3, seed=1)
        assert draws.shape == (12, clap.dim)
        rows = (draws @ prior.target.T).argmax(1)  # every draw is a bank row ...
        assert torch.allclose(draws, prior.target[rows], atol=1e-6)
        assert float((prior.role[rows] == prior.config.roles.index(role)).float().mean()) >= 0.9, name  # ... of that role
    report = evaluate_prior(prior, held_pairs, samples=4, seed=0, centroids=role_centroids(train_pairs))
    assert report["context"]["role_acc"] > report["unconditional"]["role_acc"]
    assert report["context"]["cos_true"] > report["context"]["cos_other"]


def test_guidance_moves_between_the_marginal_and_the_posterior(clap, crops, train_pairs):
    prior = NeighbourPrior.build(train_pairs, NeighbourPriorConfig(dim=clap.dim))
    ctx = clap.embed_audio(crops["bass"][13][None], sample_rate=SR)
    marginal = prior.role_probabilities(ctx, guidance=0.0)[0]
    assert torch.allclose(marginal, prior.role_prior, atol=1e-6)  # g = 0: the roles' training shares (2/3 bass)
    plain, sharp = prior.role_probabilities(ctx)[0], prior.role_probabilities(ctx, guidance=3.0)[0]
    chords = prior.config.roles.index(CHORDS)
    assert float(marginal[chords]) < float(plain[chords]) < float(sharp[chords])
    assert torch.allclose(sharp.sum(), torch.tensor(1.0))


def test_sampling_contract_and_round_trip(clap, crops, train_pairs, tmp_path):
    prior = NeighbourPrior.build(train_pairs, NeighbourPriorConfig(dim=clap.dim), max_rows=20)
    assert prior.target.shape[0] == 20
    piano = crops["piano"][0]
    a = sample_for_context(prior, clap, piano, SR, n=3, seed=5)
    assert a.shape == (3, clap.dim) and torch.allclose(a.norm(dim=1), torch.ones(3), atol=1e-5)
    assert torch.equal(a, sample_for_context(prior, clap, piano, SR, n=3, seed=5))
    silent = sample_for_context(prior, clap, np.zeros_like(piano), SR, n=4, seed=1)
    assert torch.equal(silent, prior.sample(None, n_per_text=4, seed=1))  # silence: the bank's marginal
    path = prior.save(tmp_path / "np.safetensors")
    loaded = load_context_prior(path)
    assert isinstance(loaded, NeighbourPrior) and loaded.config == prior.config
    assert torch.allclose(sample_for_context(loaded, clap, piano, SR, n=3, seed=5), a, atol=2e-3)  # fp16 on disk
    with pytest.raises(InputError, match="n_per_text"):
        prior.sample(None, n_per_text=0)
    with pytest.raises(InputError, match="guidance"):
        prior.sample(a[:1], guidance=-1.0)
    with pytest.raises(InputError, match=r"\[B, 32\]"):
        prior.sample(torch.zeros(1, 7))
    with pytest.raises(ConfigError, match="temperature"):
        NeighbourPriorConfig(temperature=0.0)
    with pytest.raises(InputError, match="known role"):
        NeighbourPrior.build(PriorPairs(train_pairs.context, train_pairs.target, train_pairs.has_context))
    clap.save(tmp_path / "clap.safetensors")
    with pytest.raises(CheckpointError, match="not a context prior"):
        load_context_prior(tmp_path / "clap.safetensors")


def test_no_role_routing_draws_from_the_nearest_contexts(clap, crops, train_pairs):
    prior = NeighbourPrior.build(train_pairs, NeighbourPriorConfig(dim=clap.dim, k=1, route_by_role=False))
    ctx = train_pairs.context[:3]
    draws = prior.sample(ctx, n_per_text=2, seed=0)
    nearest = (F.normalize(ctx, dim=1) @ prior.context.T).argmax(1)  # k = 1: the single nearest bank context
    assert torch.allclose(draws, prior.target[nearest].repeat_interleave(2, dim=0), atol=1e-6)


# ------------------------------------------------------------------------- command, bundle, Accompanist
@pytest.fixture(scope="module")
def prior_run(tmp_path_factory):
    """A tiny bundle and a real `train prior` run (tiny corpus, tiny model) with the bundle's CLAP,
    whose pairs folder the command reads."""
    from diffariff.commands.train_options import prior_arguments
    from diffariff.data.synth.corpus import build_corpus
    from diffariff.train.prior import run

    root = tmp_path_factory.mktemp("np_run")
    bundle = make_tiny_bundle(root / "tiny", modes=("consistency",))
    build_corpus(root / "corpus", songs=3, seconds=12, seed=3, jobs=1, progress=False)
    config = root / "tiny.json"
    config.write_text(json.dumps({
        "model": {"hidden": 32, "blocks": 1, "noise_emb_dim": 16, "steps": 2},
        "train": {"batch_size": 8, "max_steps": 2, "warmup_steps": 1, "pairs": 24, "part_size": 12, "eval_pairs": 8,
                  "window_seconds": 2.0, "reference_seconds": 1.0, "eval_split": "train", "eval_samples": 1,
                  "context_probabilities": [1.0]},
    }))
    assert run(parse_options(prior_arguments, clap=bundle.clap, corpus=[root / "corpus"], out=root / "run",
                             config=config)) == 0
    return bundle, root / "run" / "pairs", root / "corpus"


def test_train_neighbour_prior_command_builds_scores_and_bundles(prior_run, capsys, tmp_path):
    from diffariff.cli import main
    from diffariff.data.sources import open_dataset
    from diffariff.pipeline import Accompanist

    tiny, pairs, corpus = prior_run
    out = tmp_path / "np.safetensors"
    assert main(["train", "neighbour-prior", "--pairs", str(pairs), "--out", str(out), "--k", "4"]) == 0
    assert "Context prior on" in capsys.readouterr().out
    extra = json.loads(read_checkpoint_metadata(out)["extra"])
    assert 2 <= extra["bank_rows"] <= 24 and 0 <= extra["held_out"]["context"]["role_acc"] <= 1
    assert main(["train", "neighbour-prior", "--pairs", str(pairs), "--out", str(out)]) == 2  # no silent overwrite
    assert "exists" in capsys.readouterr().err
    assert main(["eval", "prior", "--prior", str(out), "--pairs", str(pairs), "--samples", "1",
                 "--out", str(tmp_path / "report")]) == 0

    # a bundle takes it as its context prior, and the Accompanist lets it choose the condition
    bundle = save_bundle(tmp_path / "b", codec=tiny.codec, clap=tiny.clap,
                           diffusion={"consistency": tiny.diffusion["consistency"]}, prior=out)
    acc = Accompanist.from_pretrained(bundle.root)
    assert isinstance(acc.prior, NeighbourPrior)
    song = open_dataset(corpus)[0]
    ctx = song.load_mix(song.target_stems())[:, :SR]
    stem = acc.generate(ctx, seed=0, steps=2, decode_mode="deterministic")
    assert acc.last_condition == "prior" and stem.shape == (1, 2, SR) and np.isfinite(stem).all()
    again = acc.generate(ctx, seed=0, steps=2, decode_mode="deterministic")
    assert np.array_equal(stem, again)  # the prior's draw follows the seed
    # a prior built with another CLAP is refused by the bundle
    prior = NeighbourPrior.load(out)
    other = NeighbourPrior(NeighbourPriorConfig(**{**prior.config.__dict__, "clap_sha256": "0" * 64}), prior.context,
                           prior.target, prior.role, prior.weight, prior.bias, prior.role_prior)
    other.save(bundle.root / "prior.safetensors")
    with pytest.raises(CheckpointError, match="different CLAP"):
        open_bundle(bundle.root)


def test_callers_without_a_guidance_get_the_priors_own(clap, crops, train_pairs):
    from diffariff.priors.context_prior import default_guidance

    prior = NeighbourPrior.build(train_pairs, NeighbourPriorConfig(dim=clap.dim, guidance=3.0))
    assert default_guidance(prior) == 3.0
    bass = crops["bass"][13]
    assert torch.equal(sample_for_context(prior, clap, bass, SR, n=4, seed=2),
                       sample_for_context(prior, clap, bass, SR, n=4, seed=2, guidance=3.0))
    with pytest.raises(ConfigError, match="guidance"):
        NeighbourPriorConfig(guidance=-1.0)


def test_a_role_missing_from_a_subset_bank_is_never_drawn(clap, crops, train_pairs):
    prior = NeighbourPrior.build(train_pairs, NeighbourPriorConfig(dim=clap.dim))
    keep = prior.role == prior.config.roles.index(BASS)  # a bank of bass stems only
    bass_only = NeighbourPrior(prior.config, prior.context[keep], prior.target[keep], prior.role[keep], prior.weight,
                               prior.bias, prior.role_prior)
    ctx = clap.embed_audio(crops["bass"][13][None], sample_rate=SR)  # a context the classifier calls "chords"
    assert float(prior.role_probabilities(ctx)[0, prior.config.roles.index(CHORDS)]) > 0.5
    probs = bass_only.role_probabilities(ctx)[0]
    assert float(probs[prior.config.roles.index(CHORDS)]) == 0.0 and torch.isclose(probs.sum(), torch.tensor(1.0))
    assert bass_only.sample(ctx, n_per_text=3, seed=0).shape == (3, clap.dim)
