"""Latent cache: built from a tiny real corpus with a tiny random codec / CLAP (real networks), resumable,
deterministic; LatentCacheDataset crops; the context chroma rows; the ``diffariff latents build`` command."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from safetensors import safe_open

from diffariff.cli import main as cli_main
from diffariff.data.context_chroma import context_chroma
from diffariff.data.latent_stream import StreamingLatentCache
from diffariff.data.latents import (
    CacheRecipe,
    LatentCacheDataset,
    build_latent_cache,
    check_model_fits_cache,
    has_context_chroma,
    read_manifest,
    shard_path,
)
from diffariff.data.pairs import PairSampler
from diffariff.diffusion.model import model_identity
from diffariff.errors import DatasetError, InputError
from latent_helpers import FRAMES, RECIPE, tiny_cache


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    return tiny_cache(tmp_path_factory)


def test_shards_have_the_right_shapes_and_metadata(built):
    man = built["manifest"]
    assert man["pairs"] == 12 and man["shards"] == 3 and man["frames"] == FRAMES
    assert man["codec_id"] == model_identity(built["codec"])
    assert man["codec_id"].startswith("codec:") and man["clap_id"] == model_identity(built["clap"])
    assert len(man["stats"]["channel_std"]) == 64 and man["stats"]["std"] > 0
    for k, rows in enumerate((5, 5, 2)):
        with safe_open(str(shard_path(built["cache"], k)), framework="pt") as f:
            t = {n: f.get_tensor(n) for n in f.keys()}
        assert t["target"].shape == (rows, 64, FRAMES) and t["context"].shape == (rows, 64, FRAMES)
        assert t["clap_audio"].shape == (rows, 32) and t["clap_text"].shape == (rows, 32)
        assert torch.allclose(t["clap_audio"].norm(dim=1), torch.ones(rows), atol=1e-3)
        assert t["index"].tolist() == list(range(5 * k, 5 * k + rows))
        side = json.loads(shard_path(built["cache"], k, ".json").read_text())
        assert len(side["items"]) == rows
        for item in side["items"]:
            assert item["prompt"] and item["song"].startswith("song_") and item["stem"]
    # the target latent is the codec's encoding of the pair's target window (mono downmix)
    ds = LatentCacheDataset(built["cache"])
    meta = ds.metadata(7)
    song = next(s for s in built["songs"] if s.name == meta["song"])
    audio = song.load_stem(meta["stem"], 48_000, 1, meta["start"] / 48_000, 3.0)
    z = built["encoders"].codec.encode(torch.from_numpy(audio)[None])
    assert torch.allclose(z[0], ds[7]["target"], atol=2e-3)


def test_second_build_skips_complete_shards_and_rebuilds_missing_ones(built):
    calls = []
    recipe = CacheRecipe(**RECIPE)
    build_latent_cache(built["encoders"], built["songs"], built["cache"], recipe, progress=False, on_shard=calls.append)
    assert calls == []
    before = LatentCacheDataset(built["cache"]).tensors
    shard_path(built["cache"], 1).unlink()
    build_latent_cache(built["encoders"], built["songs"], built["cache"], recipe, batch_size=3, progress=False,
                       on_shard=calls.append)
    assert calls == [1]
    after = LatentCacheDataset(built["cache"]).tensors
    for name in before:  # deterministic: the rebuilt shard equals the first build
        assert torch.allclose(before[name].float(), after[name].float(), atol=1e-3), name
    with pytest.raises(InputError, match="different"):
        build_latent_cache(built["encoders"], built["songs"], built["cache"], CacheRecipe(**{**RECIPE, "seed": 4}),
                           progress=False)


def test_an_interrupted_build_leaves_a_readable_smaller_cache_and_resumes(built, tmp_path):
    """A build stopped after its second shard (as by a kill) leaves a manifest of the 10 pairs it has,
    marked incomplete, whose rows equal the full build's; the resumed build completes it."""
    recipe = CacheRecipe(**RECIPE)
    out = tmp_path / "stopped"

    def stop_after_second(k):
        if k == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        build_latent_cache(built["encoders"], built["songs"], out, recipe, progress=False, on_shard=stop_after_second)
    man = json.loads((out / "manifest.json").read_text())
    assert man["pairs"] == 10 and man["shards"] == 2 and man["complete"] is False and man["target_pairs"] == 12
    part, whole = LatentCacheDataset(out), LatentCacheDataset(built["cache"])
    assert len(part) == 10
    for name in ("target", "context", "clap_audio"):
        assert torch.allclose(part.tensors[name].float(), whole.tensors[name][:10].float(), atol=1e-3), name
    calls = []
    final = build_latent_cache(built["encoders"], built["songs"], out, recipe, progress=False, on_shard=calls.append)
    assert calls == [2] and final["complete"] is True and final["pairs"] == 12
    assert final["stats"] == built["manifest"]["stats"]


def test_dataset_crops_aligned_deterministic_windows(built):
    full = LatentCacheDataset(built["cache"], full_length=True)
    ds = LatentCacheDataset(built["cache"], train_frames=16, seed=5)
    assert len(ds) == 12 and full[0]["target"].shape == (64, FRAMES)
    starts = []
    for i in range(len(ds)):
        item = ds[i]
        s = ds.crop_start(i)
        starts.append(s)
        assert item["target"].shape == (64, 16) and item["context"].shape == (64, 16)
        assert torch.equal(item["target"], full[i]["target"][:, s:s + 16])
        assert torch.equal(item["context"], full[i]["context"][:, s:s + 16])
        assert item["clap_audio"].shape == (32,)
    assert len(set(starts)) > 1
    assert [LatentCacheDataset(built["cache"], 16, seed=5).crop_start(i) for i in range(12)] == starts
    ds.set_epoch(1)
    assert [ds.crop_start(i) for i in range(12)] != starts
    with pytest.raises(InputError):
        LatentCacheDataset(built["cache"], train_frames=FRAMES + 1)
    with pytest.raises(DatasetError):
        LatentCacheDataset(built["corpus"])


def test_build_command_resumes_and_reports_bad_input(built, capsys):
    args = ["latents", "build", "--codec", str(built["codec"]), "--clap", str(built["clap"]),
            "--data", str(built["corpus"]), "--out", str(built["cache"]), "--split", "all", "--pairs", "12",
            "--shard-size", "5", "--window-seconds", "3", "--reference-seconds", "1", "--seed", "3", "--quiet"]
    assert cli_main(args) == 0
    assert "12 pairs in 3 shards" in capsys.readouterr().out
    bad = list(args)
    bad[bad.index("--window-seconds") + 1] = "4"
    assert cli_main(bad) == 2
    assert "different" in capsys.readouterr().err
    missing = list(args)
    missing[missing.index("--codec") + 1] = str(Path(built["cache"]) / "nope.safetensors")
    assert cli_main(missing) == 2


def test_two_workers_fill_one_cache_identical_to_a_single_build(built, tmp_path):
    recipe = CacheRecipe(**RECIPE)
    shared = tmp_path / "shared"
    first = build_latent_cache(built["encoders"], built["songs"], shared, recipe, progress=False, worker=(1, 2))
    assert first is None and not (shared / "manifest.json").exists()
    assert shard_path(shared, 1).is_file() and not shard_path(shared, 0).exists()
    manifest = build_latent_cache(built["encoders"], built["songs"], shared, recipe, progress=False, worker=(0, 2))
    assert manifest is not None and manifest["stats"] == built["manifest"]["stats"]
    whole, split = LatentCacheDataset(built["cache"]).tensors, LatentCacheDataset(shared).tensors
    for name in whole:
        assert torch.allclose(whole[name].float(), split[name].float(), atol=1e-3), name
    with pytest.raises(InputError, match="worker"):
        build_latent_cache(built["encoders"], built["songs"], shared, recipe, progress=False, worker=(2, 2))


def test_several_caches_read_as_one_data_set(built, tmp_path):
    """Two caches (another seed: other pairs of the same songs) follow one another; the statistics are
    those of all rows; metadata maps each row to its own cache; a cache of another codec is refused."""
    other = tmp_path / "other"
    build_latent_cache(built["encoders"], built["songs"], other, CacheRecipe(**{**RECIPE, "seed": 4, "pairs": 7}),
                       progress=False)
    a, b = LatentCacheDataset(built["cache"]), LatentCacheDataset(other)
    both = LatentCacheDataset([built["cache"], other], train_frames=16)
    assert len(both) == len(a) + len(b) == 19
    assert both.offsets == [0, 12, 19] and both.manifest["pairs"] == 19
    assert torch.equal(both.tensors["target"][12:], b.tensors["target"])
    assert both.metadata(13) == b.metadata(1) and both.metadata(11) == a.metadata(11)
    with pytest.raises(IndexError):
        both.metadata(19)
    t = torch.cat([a.tensors["target"], b.tensors["target"]]).double()
    assert both.manifest["stats"]["mean"] == pytest.approx(float(t.mean()), abs=1e-6)
    assert both.manifest["stats"]["std"] == pytest.approx(float(t.std(unbiased=False)), rel=1e-5)
    assert both.manifest["stats"]["std"] != a.manifest["stats"]["std"]
    assert both[15]["target"].shape == (64, 16)
    limited = LatentCacheDataset([built["cache"], other], limit=14)
    assert len(limited) == 14 and torch.equal(limited.tensors["target"][12:], b.tensors["target"][:2])
    alien = tmp_path / "alien"
    alien.mkdir()
    man = json.loads((other / "manifest.json").read_text())
    (alien / "manifest.json").write_text(json.dumps({**man, "codec_id": "codec:0000"}))
    with pytest.raises(DatasetError, match="codec_id"):
        LatentCacheDataset([built["cache"], alien])


# ------------------------------------------------------------------------------------ context chroma
def test_the_cache_stores_each_pairs_context_chroma(built):
    full = LatentCacheDataset(built["cache"], full_length=True)
    assert full.has_context_chroma and has_context_chroma(full.manifest)
    assert full.manifest["recipe"]["context_chroma"] is True
    stored = full.tensors["context_chroma"]
    assert stored.shape == (12, 12, FRAMES) and stored.dtype == torch.float16
    assert float(stored.min()) >= 0 and float(stored.max()) <= 1 and float(stored.max()) == 1
    # row i is the chroma of the very context audio the codec encoded for pair i
    sampler = PairSampler(built["songs"], CacheRecipe(**RECIPE).pair_config(built["encoders"].channels), RECIPE["seed"])
    for i in (0, 7):
        want = context_chroma(sampler.pair(i)["context"], 4096)[0]
        assert torch.allclose(full[i]["context_chroma"], want, atol=1e-3)
    # crops take the same span as the context latents, in memory and streamed from disk
    ds, stream = LatentCacheDataset(built["cache"], 16, seed=5), StreamingLatentCache(built["cache"], 16, seed=5)
    assert stream.has_context_chroma
    for i in range(len(ds)):
        s = ds.crop_start(i)
        assert ds[i]["context_chroma"].shape == (12, 16)
        assert torch.equal(ds[i]["context_chroma"], full[i]["context_chroma"][:, s:s + 16])
        assert torch.equal(stream[i]["context_chroma"], ds[i]["context_chroma"])


def test_caches_without_chroma_build_grow_and_read_consistently(built, tmp_path, capsys):
    plain = tmp_path / "plain"
    recipe = {**RECIPE, "pairs": 4, "shard_size": 2}
    build_latent_cache(built["encoders"], built["songs"], plain, CacheRecipe(**recipe, context_chroma=False),
                       progress=False)
    ds = LatentCacheDataset(plain)
    assert not ds.has_context_chroma and not has_context_chroma(ds.manifest) and "context_chroma" not in ds[0]
    assert not StreamingLatentCache(plain).has_context_chroma
    with pytest.raises(InputError, match="without context chroma.*--no-context-chroma"):
        build_latent_cache(built["encoders"], built["songs"], plain, CacheRecipe(**recipe), progress=False)
    # a cache built before the field existed (no context_chroma in its recipe) counts as one without chroma
    man = json.loads((plain / "manifest.json").read_text())
    del man["recipe"]["context_chroma"]
    (plain / "manifest.json").write_text(json.dumps(man))
    assert not has_context_chroma(read_manifest(plain))
    grown = build_latent_cache(built["encoders"], built["songs"], plain,
                               CacheRecipe(**{**recipe, "pairs": 6}, context_chroma=False), progress=False)
    assert grown["pairs"] == 6 and not LatentCacheDataset(plain).has_context_chroma
    for k in range(3):
        with safe_open(str(shard_path(plain, k)), framework="pt") as f:
            assert "context_chroma" not in f.keys()
    with pytest.raises(InputError, match="context chroma"):
        build_latent_cache(built["encoders"], built["songs"], plain, CacheRecipe(**{**recipe, "pairs": 6}),
                           progress=False)
    # read together with a chroma cache: the chroma is kept only when every cache has it
    both = LatentCacheDataset([built["cache"], plain])
    assert not both.has_context_chroma and both.manifest["context_chroma"] is False
    assert "context_chroma" not in both[0] and "context_chroma" not in both.tensors
    assert not StreamingLatentCache([built["cache"], plain]).has_context_chroma
    # a model that takes the chroma does not fit such a cache
    with pytest.raises(InputError, match="stores none"):
        check_model_fits_cache(SimpleNamespace(context_chroma=True), both.manifest, "--model")
    check_model_fits_cache(SimpleNamespace(context_chroma=True), LatentCacheDataset(built["cache"]).manifest, "--model")
    # the build command's switch
    cli = tmp_path / "cli"
    assert cli_main(["latents", "build", "--codec", str(built["codec"]), "--clap", str(built["clap"]),
                     "--data", str(built["corpus"]), "--out", str(cli), "--split", "all", "--pairs", "2",
                     "--window-seconds", "3", "--reference-seconds", "1", "--no-context-chroma", "--quiet"]) == 0
    capsys.readouterr()
    assert read_manifest(cli)["recipe"]["context_chroma"] is False and not LatentCacheDataset(cli).has_context_chroma
