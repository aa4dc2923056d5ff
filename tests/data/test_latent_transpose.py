"""Transposed copies of a latent cache (:mod:`diffariff.data.latent_transpose`, ``diffariff latents transpose``):
built from rendered songs with a tiny synth codec, the copy keeps the contexts and CLAP embeddings, rolls each
row's context chroma by the row's shift, moves pitched targets (drum targets stay), reads together with its
source as one data set, resumes, and refuses what cannot work."""

from __future__ import annotations

import json

import pytest
import torch

from diffariff.clap.builtin import BuiltinClap
from diffariff.cli import main
from diffariff.codec import load_codec
from diffariff.data.latent_transpose import SHIFTS, UNPITCHED_ROLES, rolled_chroma, transpose_fit
from diffariff.data.latents import CHROMA_KEY, CacheRecipe, Encoders, LatentCacheDataset, build_latent_cache
from diffariff.data.sources import open_dataset
from diffariff.data.synth.corpus import build_corpus
from diffariff.diffusion.model import model_identity
from diffariff.testing import make_tiny_bundle

RECIPE = dict(pairs=12, shard_size=6, window_seconds=3.0, reference_seconds=1.0, split=None, seed=3)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A tiny synth-codec bundle, a 12-pair cache (2 shards, with context chroma) of 3 rendered songs, and its
    transposed copy made through the CLI."""
    base = tmp_path_factory.mktemp("transpose")
    bundle = make_tiny_bundle(base / "bundle", train_frames=24, modes=("edm",), codec="synth")
    corpus = base / "corpus"
    build_corpus(corpus, songs=3, seconds=12, seed=6, jobs=1, progress=False)
    codec, clap = load_codec(bundle.codec), BuiltinClap.load(bundle.clap)
    encoders = Encoders(codec, clap, model_identity(bundle.codec), model_identity(bundle.clap))
    cache = base / "cache"
    build_latent_cache(encoders, open_dataset(corpus), cache, CacheRecipe(**RECIPE), batch_size=6, progress=False)
    out = base / "moved"
    assert main(["latents", "transpose", "--codec", str(bundle.codec), "--cache", str(cache), "--out", str(out),
                 "--seed", "3", "--batch-size", "4", "--quiet"]) == 0
    return dict(base=base, bundle=bundle, codec=codec, encoders=encoders, corpus=corpus, cache=cache, out=out)


def _rows(root) -> tuple[dict[str, torch.Tensor], list[dict]]:
    data = LatentCacheDataset(root, full_length=True)
    items = []
    for k in range(int(data.manifest["shards"])):
        items += json.loads((root / f"shard_{k:05d}.json").read_text())["items"]
    return data.tensors, items


def test_copy_moves_pitched_targets_and_rolls_the_chroma(setup):
    src, src_items = _rows(setup["cache"])
    new, items = _rows(setup["out"])
    assert len(items) == len(src_items) == 12
    for name in ("context", "clap_audio", "clap_text", "index"):
        assert torch.equal(new[name], src[name]), name
    shifts = [item["transpose"] for item in items]
    assert all(k in SHIFTS for k in shifts) and len(set(shifts)) > 1
    assert torch.allclose(new[CHROMA_KEY].float(), rolled_chroma(src[CHROMA_KEY].float(), shifts), atol=1e-3)
    pitched = [i for i, item in enumerate(items) if item["role"] not in UNPITCHED_ROLES]
    drums = [i for i, item in enumerate(items) if item["role"] in UNPITCHED_ROLES]
    assert pitched and drums  # the rendered songs have both
    assert all(torch.equal(new["target"][i], src["target"][i]) for i in drums)
    assert all(not torch.equal(new["target"][i], src["target"][i]) for i in pitched)
    assert all("transpose_fit" in items[i] for i in pitched) and not any("transpose_fit" in items[i] for i in drums)
    manifest = json.loads((setup["out"] / "manifest.json").read_text())
    assert manifest["transposed_from"] == str(setup["cache"]) and manifest["pairs"] == 12
    assert manifest["recipe"]["target_transpose"] == {"shifts": list(SHIFTS), "seed": 3}
    assert manifest["transpose_fit"]["pitched_rows"] == len(pitched)


def test_source_and_copy_train_as_one_data_set(setup):
    data = LatentCacheDataset([setup["cache"], setup["out"]], 24)
    assert len(data) == 24 and data.has_context_chroma
    assert tuple(data[13]["context_chroma"].shape) == (12, 24)


def test_fit_is_one_for_an_unmoved_target_and_lower_for_a_wrong_shift(setup):
    codec = setup["codec"]
    target = LatentCacheDataset(setup["cache"], full_length=True).tensors["target"][:4].float()
    same = transpose_fit(codec, target, target, [0] * 4)
    assert all(f == pytest.approx(1.0, abs=1e-5) for f in same)
    wrong = transpose_fit(codec, target, target, [5] * 4)  # claims a move of 5 semitones that never happened
    assert max(wrong) < 0.999


def test_rerun_skips_complete_shards_and_a_smaller_copy_takes_the_first_shards(setup, tmp_path):
    shard = setup["out"] / "shard_00000.safetensors"
    before = shard.stat().st_mtime_ns
    assert main(["latents", "transpose", "--codec", str(setup["bundle"].codec), "--cache", str(setup["cache"]),
                 "--out", str(setup["out"]), "--seed", "3", "--quiet"]) == 0
    assert shard.stat().st_mtime_ns == before
    small = tmp_path / "small"
    assert main(["latents", "transpose", "--codec", str(setup["bundle"].codec), "--cache", str(setup["cache"]),
                 "--out", str(small), "--shards", "1", "--quiet"]) == 0
    manifest = json.loads((small / "manifest.json").read_text())
    assert manifest["shards"] == 1 and manifest["pairs"] == 6 and manifest["recipe"]["pairs"] == 6
    assert len(LatentCacheDataset(small, 24)) == 6


def test_refusals(setup, tmp_path, capsys):
    codec = str(setup["bundle"].codec)

    def refused(args: list[str], message: str) -> bool:
        capsys.readouterr()
        return main(["latents", "transpose", "--quiet", *args]) == 2 and message in capsys.readouterr().err

    assert refused(["--codec", codec, "--cache", str(setup["cache"]), "--out", str(setup["cache"])], "another folder")
    assert refused(["--codec", codec, "--cache", str(setup["cache"]), "--out", str(tmp_path / "w"), "--worker", "2/2"],
                   "0 <= I < N")
    assert refused(["--codec", codec, "--cache", str(setup["cache"]), "--out", str(tmp_path / "z"), "--shards", "0"],
                   "--shards must be >= 1")
    other = make_tiny_bundle(tmp_path / "other", seed=1, modes=("edm",), codec="synth")
    assert refused(["--codec", str(other.codec), "--cache", str(setup["cache"]), "--out", str(tmp_path / "o")],
                   "the codec given is")
    first = make_tiny_bundle(tmp_path / "first", modes=("edm",), codec="consistency")
    assert refused(["--codec", str(first.codec), "--cache", str(setup["cache"]), "--out", str(tmp_path / "f")],
                   "the cache was built with")
    plain = tmp_path / "plain"
    build_latent_cache(setup["encoders"], open_dataset(setup["corpus"]), plain,
                       CacheRecipe(**{**RECIPE, "pairs": 4, "context_chroma": False}), batch_size=4, progress=False)
    assert refused(["--codec", codec, "--cache", str(plain), "--out", str(tmp_path / "p")], "no context chroma")
    assert not any((tmp_path / d).exists() for d in ("p", "o", "z"))
