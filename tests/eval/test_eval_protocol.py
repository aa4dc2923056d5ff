"""The generation evaluation protocol end to end on a tiny rendered corpus with a real (randomly
initialised, tiny) BuiltinClap: bounds, candidates from files and from a generator, the report
files, the embedding cache and the CLI's typed errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from diffariff.audio import loudness, save_audio
from diffariff.checkpoint import file_sha256
from diffariff.clap.builtin import BuiltinClap, ClapConfig
from diffariff.cli import main
from diffariff.data.sources import open_dataset
from diffariff.data.synth.corpus import build_corpus
from diffariff.errors import ConfigError, InputError
from diffariff.eval.cache import CachedEmbedder, EmbeddingCache
from diffariff.eval.candidates import noise_stems, random_stems, scan_candidates
from diffariff.eval.protocol import (
    GenerationEvalConfig,
    draw_pairs,
    evaluate_generation,
    target_prompt,
)

SR = 48_000
TINY = ClapConfig(dim=32, n_mels=32, channels=(8, 16, 32), pool_dim=32, audio_hidden=64, text_hidden=64,
                  window_seconds=1.0)
N, BATCHES, REF_N, WINDOW = 6, 3, 8, 4.0
CLI_DATA = ["--split", "all", "--n", str(N), "--window-seconds", str(WINDOW)]


@pytest.fixture(scope="session")
def eval_corpus(tmp_path_factory):
    """4 rendered songs of 12 s (shared by the evaluation test files: rendered once per session)."""
    root = tmp_path_factory.getbasetemp() / "eval_corpus"
    build_corpus(root, songs=4, seconds=12, seed=11, jobs=1, progress=False)
    return root


@pytest.fixture(scope="module")
def clap_file(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("clap") / "clap.safetensors"
    BuiltinClap(TINY).save(path)
    return path


@pytest.fixture(scope="module")
def config():
    return GenerationEvalConfig(n=N, reference_n=REF_N, seed=3, split="all", window_seconds=WINDOW, batches=BATCHES)


@pytest.fixture(scope="module")
def items(eval_corpus, config):
    return draw_pairs(open_dataset(eval_corpus, split="all"), config, N, config.seed)


@pytest.fixture(scope="module")
def report(eval_corpus, clap_file, config, items, tmp_path_factory):
    """One CLI run with two candidate settings: the true stems and the noise bound's stems, as files."""
    tmp = tmp_path_factory.mktemp("report")
    cand = tmp / "cand"
    for it, noise in zip(items, noise_stems(items, config.seed)):
        save_audio(cand / "truth" / f"{it['index']}.wav", it["target"], SR, subtype="float")
        save_audio(cand / "noisy" / f"{it['index']}.wav", noise, SR, subtype="float")
    out = tmp / "out"
    code = main(["eval", "generation", "--clap", str(clap_file), "--data", str(eval_corpus), *CLI_DATA,
                 "--seed", "3", "--reference-n", str(REF_N), "--batches", str(BATCHES), "--out", str(out),
                 "--candidates", str(cand), "--no-progress"])
    assert code == 0
    return out


def _rows(out) -> dict:
    return {r["name"]: r for r in json.loads((out / "results.json").read_text())["rows"]}


def _means(row) -> dict:
    return {k: v["mean"] for k, v in row["metrics"].items()}


def test_true_stems_as_candidates_score_like_real_and_noise_like_noise(report):
    rows = _rows(report)
    assert set(rows) == {"real", "truth", "noisy", "random", "noise", "silence"}
    for name, bound in (("truth", "real"), ("noisy", "noise")):
        got, want = _means(rows[name]), _means(rows[bound])
        assert got.keys() == want.keys()
        for key in want:
            assert got[key] == pytest.approx(want[key], rel=1e-6, abs=1e-9), (name, key)
    # true stems play in time with their own contexts; silence has no onsets at all
    assert rows["real"]["metrics"]["rhythm"]["mean"] > rows["random"]["metrics"]["rhythm"]["mean"] + 0.2
    assert rows["silence"]["metrics"]["rhythm"]["mean"] == 0.0 == rows["silence"]["metrics"]["key"]["mean"]
    # white noise spreads its energy: its grid share is the chance share 2 Hz / 23.44 Hz; silence has none
    assert rows["noise"]["metrics"]["grid"]["mean"] == pytest.approx(2 / 23.4375, abs=0.02)
    assert "grid" not in rows["silence"]["metrics"]
    # likeness of different pairs' stems: real stems share a corpus's spectral shapes, white noise has only
    # uncorrelated fluctuations around one flat spectrum; silence is not applicable
    assert 0 < rows["noise"]["metrics"]["alike"]["mean"] < rows["real"]["metrics"]["alike"]["mean"] < 0.9
    assert "alike" not in rows["silence"]["metrics"]
    # the real row is measured against another draw, so it is not trivially perfect ...
    assert rows["real"]["metrics"]["fad"]["mean"] > 0
    # ... and noise is much further from the real reference set than real stems are, by the kernel distance
    # (unbiased; FAD of 2 pairs per batch against 8 carries a covariance bias that can favour noise's tight cluster)
    assert rows["noise"]["metrics"]["kd"]["mean"] > rows["real"]["metrics"]["kd"]["mean"] + 1.0


def test_results_json_table_and_plots_are_well_formed(report, clap_file, eval_corpus):
    results = json.loads((report / "results.json").read_text())
    assert results["n"] == N and results["reference_n"] == REF_N and results["batches"] == BATCHES
    assert results["versions"]["diffariff"] and results["versions"]["torch"] == torch.__version__
    assert results["clap"]["sha256"] == file_sha256(clap_file)
    assert results["data"] == str(eval_corpus) and results["seeds"]["pairs"] == 3
    for row in results["rows"]:
        for key, ci in row["metrics"].items():
            assert np.isfinite(ci["mean"]) and ci["n"] == BATCHES, (row["name"], key)
        assert {"kd", "fad", "coverage", "density", "apa", "cs_aa", "cs_ta", "rhythm", "key"} <= set(row["metrics"])
    table = (report / "table.md").read_text().splitlines()
    header = next(line for line in table if line.startswith("| Row"))
    assert [c.strip() for c in header.strip("|").split("|")][2:] == [
        "KD (x1e-3) ↓", "FAD ↓", "Cov ↑", "Den ↑", "APA ↑", "CS_AA ↑", "CS_TA ↑", "Rhythm ↑", "Key ↑", "Grid ↓",
        "Alike"]
    body = [line for line in table if line.startswith("| ") and not line.startswith("| Row")]
    assert len(body) == len(results["rows"]) and all(line.count("|") == 14 for line in body)
    for png in ("metrics.png", "pca.png"):
        data = (report / png).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
    pairs = json.loads((report / "pairs.json").read_text())
    assert [p["index"] for p in pairs["pairs"]] == list(range(N))
    assert all(p["prompt"] and p["samples"] == int(WINDOW * SR) for p in pairs["pairs"])


def test_cache_makes_a_rerun_free_and_generators_cost_only_new_audio(report, clap_file, eval_corpus, config, items):
    clap = BuiltinClap.load(clap_file)
    cache = EmbeddingCache(report / "cache", file_sha256(clap_file))
    assert len(cache) > 0
    again = CachedEmbedder(clap, cache)
    first = evaluate_generation(again, eval_corpus, config, candidates_dir=report.parent / "cand", bounds=())
    assert again.calls == 0 and again.computed == 0
    assert [r.name for r in first.rows] == ["real", "noisy", "truth"]
    assert _means(first.rows[0].as_dict()) == pytest.approx(_means(_rows(report)["real"]))

    # generators: the true stems (already embedded under another row: free) and half-level true
    # stems for a context-free setting (new audio: only its stems are embedded, no APA mixes)
    by_index = {it["index"]: it["target"] for it in items}
    seeds = []

    def truth(item, setting, seed):
        seeds.append(seed)
        return torch.from_numpy(by_index[item["index"]])

    def quieter(item, setting, seed):
        assert setting == "clap_a"
        return 0.5 * item["target"]

    fresh = CachedEmbedder(clap, EmbeddingCache(report / "cache", file_sha256(clap_file)))
    result = evaluate_generation(fresh, eval_corpus, config, generators={"ctx": truth, "clap_a": quieter}, bounds=())
    assert seeds == [config.seed + i for i in range(N)]
    real, ctx, clap_a = result.rows
    assert (ctx.name, ctx.label, clap_a.label) == ("ctx", "ctx", "CLAP_A")
    assert fresh.computed == N
    for key in real.metrics:
        assert ctx.metrics[key].mean == pytest.approx(real.metrics[key].mean, rel=1e-6, abs=1e-9), key
    assert "apa" not in clap_a.metrics and "cs_aa" in clap_a.metrics


def test_bounds_are_what_they_claim(items, config):
    for it, noise in zip(items, noise_stems(items, config.seed)):
        assert noise.shape == it["target"].shape
        assert loudness(noise, SR) == pytest.approx(loudness(it["target"], SR), abs=0.5)
    shuffled = random_stems(items, config.seed)
    for i, stem in enumerate(shuffled):
        assert not np.array_equal(stem, items[i]["target"])
    assert np.array_equal(noise_stems(items, config.seed)[0], noise_stems(items, config.seed)[0])


def test_pairs_are_seeded_and_prompts_come_from_tags(eval_corpus, config, items):
    again = draw_pairs(open_dataset(eval_corpus, split="all"), config, N, config.seed)
    assert [(a["song"], a["start"]) for a in again] == [(b["song"], b["start"]) for b in items]
    assert np.array_equal(again[0]["context"], items[0]["context"])
    other = draw_pairs(open_dataset(eval_corpus, split="all"), config, N, config.seed + 1)
    assert [a["start"] for a in other] != [b["start"] for b in items]
    item = {"target_tags": ["electric bass", "fingered", "warm"], "target_instrument": "x"}
    assert target_prompt(item, 2) == "electric bass, fingered"
    assert target_prompt({"target_tags": [], "target_instrument": "Cello"}) == "Cello"


def test_cycle_stem_draw_takes_other_targets_and_the_cli_takes_it(eval_corpus, config, items, tmp_path):
    """With fewer than 2 pairs per song the default draw takes each song's first stems; ``cycle`` takes song
    j's j-th stem (same songs, other targets); the CLI passes it to the manifest; a bad value is a typed
    error."""
    songs = open_dataset(eval_corpus, split="all")
    cycle = GenerationEvalConfig(n=N, reference_n=REF_N, seed=config.seed, split="all", window_seconds=WINDOW,
                                 batches=BATCHES, stem_draw="cycle")
    cycled = draw_pairs(songs, cycle, N, cycle.seed)
    assert [it["song"] for it in cycled] == [it["song"] for it in items]
    # pair j < songs: the default takes song j's first stem, cycle its j-th (every song has >= 3 parts)
    assert cycled[0]["target_stem"] == items[0]["target_stem"]
    assert all(cycled[j]["target_stem"] != items[j]["target_stem"] for j in (1, 2))
    out = tmp_path / "manifest"
    assert main(["eval", "pairs", "--data", str(eval_corpus), *CLI_DATA, "--stem-draw", "cycle", "--out", str(out)]) == 0
    manifest = json.loads((out / "pairs.json").read_text())
    assert manifest["stem_draw"] == "cycle"
    assert [p["target_stem"] for p in manifest["pairs"]] == [it["target_stem"] for it in cycled]
    with pytest.raises(ConfigError, match="--stem-draw"):
        GenerationEvalConfig(stem_draw="random")


def test_scan_candidates_reports_missing_stems(tmp_path):
    for i in (0, 1, 3):
        save_audio(tmp_path / "set" / f"{i}.wav", np.zeros((2, 100), np.float32), SR)
    with pytest.raises(InputError, match=r"lacks stems for pairs 2, 4"):
        scan_candidates(tmp_path, 5)
    assert set(scan_candidates(tmp_path, 2)) == {"set"}


@pytest.mark.parametrize("case", ["missing-data", "zero-n", "missing-candidates", "bundle-and-codec"])
def test_cli_errors_exit_2_with_one_line(case, eval_corpus, clap_file, tmp_path, capsys):
    args = ["eval", "generation", "--clap", str(clap_file), "--out", str(tmp_path / "out"), "--no-progress"]
    if case == "missing-data":
        args += ["--data", str(tmp_path / "nope"), *CLI_DATA]
        expect = "no such folder"
    elif case == "zero-n":
        args += ["--data", str(eval_corpus), "--split", "all", "--n", "0"]
        expect = "--n must be at least 2"
    elif case == "bundle-and-codec":
        args += ["--data", str(eval_corpus), *CLI_DATA, "--bundle", "default", "--codec", str(clap_file)]
        expect = "not both"
    else:
        for i in range(N - 1):
            save_audio(tmp_path / "cand" / f"{i}.wav", np.zeros((2, 1000), np.float32), SR)
        args += ["--data", str(eval_corpus), *CLI_DATA, "--candidates", str(tmp_path / "cand")]
        expect = f"lacks stems for pairs {N - 1}"
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("diffariff: error:") and expect in err[0]


def test_bundle_generators_serve_every_setting_with_a_real_tiny_bundle(items, tmp_path):
    from diffariff.eval.candidates import bundle_generators
    from diffariff.eval.settings import SETTINGS
    from diffariff.testing import make_tiny_bundle

    root = make_tiny_bundle(tmp_path / "b", modes=("consistency",), bridge=True, prior=True).root
    gens = bundle_generators(root)
    assert set(gens) == {s.name for s in SETTINGS}  # a bridge / prior -> their settings too
    item = items[0]
    outs = {name: gen(item, name, 5) for name, gen in gens.items()}
    for name, out in outs.items():
        assert out.shape == item["target"].shape and np.isfinite(out).all(), name
        assert np.abs(out).max() > 0, name
    # the conditions differ: text through the bridge vs raw text vs an unconditional bridge sample
    assert not np.allclose(outs["clap_t+ctx"], outs["clap_t_bridge+ctx"])
    assert not np.allclose(outs["clap_a_bridge+ctx"], outs["ctx"])
    assert not np.allclose(outs["codec"], outs["ctx"])  # the real target through the codec, not a generation
    assert not np.allclose(outs["ctx_prior"], outs["ctx"])  # the raw ctx row runs with the prior off
    # the harmony ablation: another pair's context (the random bound's derangement) goes in instead
    assert item["other_pair"] != 0 and item["other_context"] is items[item["other_pair"]]["context"]
    assert not np.allclose(outs["ctx_other"], outs["ctx"])
    other_item = {**item, "context": item["other_context"]}
    np.testing.assert_array_equal(gens["ctx"](other_item, "ctx", 5), outs["ctx_other"])
    again = gens["clap_a+ctx"](item, "clap_a+ctx", 5)
    np.testing.assert_array_equal(again, outs["clap_a+ctx"])
    stronger = bundle_generators(root, ["ctx"], cfg_context=3.0)["ctx"](item, "ctx", 5)
    assert not np.allclose(stronger, outs["ctx"])  # the guidance strength reaches the sampler
    no_bridge = make_tiny_bundle(tmp_path / "nb", modes=("consistency",)).root
    assert all(not n.endswith("bridge") and "bridge+" not in n for n in bundle_generators(no_bridge))
    with pytest.raises(InputError, match="bridge"):
        bundle_generators(no_bridge, ["clap_t_bridge"])
    with pytest.raises(InputError, match="unknown"):
        bundle_generators(no_bridge, ["nope"])


def test_codec_generators_give_the_bundles_codec_row_without_a_diffusion_model(items, tmp_path):
    """``eval generation --codec``: the ceiling row of a codec alone equals the bundle's "codec" setting with
    that codec; such a codec-only Accompanist refuses to generate."""
    from diffariff.bundle import open_bundle
    from diffariff.clap.builtin import BuiltinClap
    from diffariff.codec import Codec
    from diffariff.errors import ConfigError
    from diffariff.eval.candidates import bundle_generators, codec_generators
    from diffariff.pipeline import Accompanist
    from diffariff.testing import make_tiny_bundle

    b = open_bundle(make_tiny_bundle(tmp_path / "b", modes=("consistency",)).root)
    clap = BuiltinClap.load(b.clap)
    alone = codec_generators(b.codec, clap)
    assert set(alone) == {"codec"}
    item = items[1]
    np.testing.assert_array_equal(alone["codec"](item, "codec", 3),
                                  bundle_generators(b.root, ["codec"])["codec"](item, "codec", 3))
    with pytest.raises(ConfigError, match="no diffusion model"):
        Accompanist(Codec.load(b.codec), clap, {}).generate(context=item["context"], seed=0)
