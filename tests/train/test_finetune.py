"""``diffariff finetune`` end to end on tiny rendered songs with a tiny bundle: full and LoRA fine-tunes
write a bundle that ``generate`` loads, with new EDM weights (LoRA: only the adapted layers change);
held-out scores before and after; adapter maths; the streaming cache; bad data and a refused --out;
two-process DDP on CPU (gloo); the context prior's bank grown with the songs' pairs; an interrupted scoring resumed."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from diffariff.audio import save_audio
from diffariff.bundle import open_bundle
from diffariff.clap.builtin import BuiltinClap
from diffariff.cli import main
from diffariff.codec import load_codec
from diffariff.data.latent_stream import StreamingLatentCache
from diffariff.data.latents import CacheRecipe, Encoders, LatentCacheDataset, build_latent_cache
from diffariff.data.survey import survey_data
from diffariff.diffusion.model import LatentDiffusion
from diffariff.nets.lora import DIT_TARGETS, LoRALinear, add_lora, lora_parameters, merge_lora
from diffariff.testing import make_tiny_bundle

SR = 48_000
SECONDS = 6.0
#: per song: (drum pitches, bass pitches, piano pitches); one note per 0.25 s beat
SONGS = [([36, 38, 42, 38], [33, 40, 38, 36], [57, 60, 64, 67]),
         ([36, 42, 36, 38], [31, 38, 36, 43], [55, 59, 62, 67]),
         ([36, 36, 38, 42], [29, 36, 34, 41], [53, 57, 60, 65]),
         ([38, 42, 36, 42], [28, 35, 33, 40], [52, 55, 59, 64])]
FAST = ["--steps", "6", "--batch-size", "4", "--pairs", "16", "--holdout", "1", "--holdout-pairs", "6", "--device", "cpu",
        "--precision", "32-true", "--quiet", "--eval-pairs", "0"]


@pytest.fixture(scope="module")
def songs(tmp_path_factory, render_notes) -> Path:
    """4 songs of drums, bass and piano (6 s), plus one song with a single stem and one corrupt file."""
    root = tmp_path_factory.mktemp("songs")
    for k, (drums, bass, piano) in enumerate(SONGS):
        folder = root / f"song{k}"
        folder.mkdir()
        parts = {"drums": render_notes(0, drums * 6, drum=True, seconds=SECONDS),
                 "bass": render_notes(33, bass * 6, seconds=SECONDS),
                 "piano": render_notes(0, piano * 6, seconds=SECONDS)}
        for name, audio in parts.items():
            save_audio(folder / f"{name}.wav", audio, SR)
    (root / "song0" / "guitar.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEnot really audio")
    (root / "lonely").mkdir()
    save_audio(root / "lonely" / "bass.wav", render_notes(33, [33] * 24, seconds=SECONDS), SR)
    return root


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    return make_tiny_bundle(tmp_path_factory.mktemp("src") / "tiny", train_frames=24).root


def finetune(capsys, *argv) -> tuple[int, str, str]:
    code = main(["finetune", *[str(a) for a in argv]])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("work") / "w"


@pytest.fixture(scope="module")
def full_run(songs, source, work, tmp_path_factory):
    out = tmp_path_factory.mktemp("full") / "bundle"
    code, text = _run_cli(["finetune", songs, "--out", out, "--from", source, "--work", work, "--keep-work", *FAST,
                           "--eval-pairs", "4"])
    return code, text, out


@pytest.fixture(scope="module")
def lora_run(songs, source, work, full_run, tmp_path_factory):
    """Runs in the full run's work folder: the caches are reused, the folder removed at the end."""
    out = tmp_path_factory.mktemp("lora") / "bundle"
    code, text = _run_cli(["finetune", songs, "--out", out, "--from", source, "--work", work, "--method", "lora",
                           "--lora-rank", "4", "--lr", "0.01", *FAST])
    return code, text, out


def _run_cli(argv) -> tuple[int, str]:
    """``main(argv)`` with stdout captured (for module-scoped fixtures)."""
    import contextlib
    import io

    buf, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(err):
        code = main([str(a) for a in argv])
    return code, buf.getvalue() + err.getvalue()


def _weights(bundle: Path) -> dict[str, torch.Tensor]:
    """The EDM model's weights rounded to fp16 (the tiny source bundle stores fp32, exports store fp16)."""
    return {k: v.to(torch.float16) for k, v in load_file(str(open_bundle(bundle).diffusion["edm"])).items()}


def test_full_finetune_writes_a_loadable_bundle_with_new_weights(full_run, source, tmp_path, capsys):
    code, text, out = full_run
    assert code == 0, text
    assert "4 usable songs of 5" in text and "lonely" in text and "guitar.wav" in text  # report + warning
    assert "held out for evaluation: song" in text and "before" in text and "ctx+clap" in text
    summary = json.loads((out / "finetune.json").read_text())
    assert summary["steps"] == 6 and summary["method"] == "full" and summary["heldout"]["songs"]
    before, after = summary["heldout"]["before"], summary["heldout"]["after"]
    assert set(before) == set(after) == {"ctx+clap", "ctx", "clap", "none", "mean"}
    assert all(np.isfinite(v) for v in [*before.values(), *after.values()])
    assert after["mean"] < before["mean"] and summary["ranks_in_sync"] is None  # one process: nothing to compare
    # generated stems of both bundles scored on the same held-out pairs
    gen = summary["generation"]
    assert gen["pairs"] == 4 and set(gen["rows"]) == {"before", "after", "real"}
    for row in gen["rows"].values():
        assert {"fad", "apa", "rhythm", "key"} <= set(row) and all(np.isfinite(m["mean"]) for m in row.values())
    assert gen["rows"]["real"]["fad"]["mean"] < gen["rows"]["before"]["fad"]["mean"]  # tiny random models vs truth
    assert "generated stems, 4 held-out pairs" in text and re.search(r"\n  apa +-?\d", text)
    new, old = _weights(out), _weights(source)
    assert new.keys() == old.keys()
    assert all(v.dtype == torch.float16 for v in load_file(str(open_bundle(out).diffusion["edm"])).values())
    assert sum(not torch.equal(new[k], old[k]) for k in new) > len(new) // 2
    bundle, src = open_bundle(out), open_bundle(source)
    assert LatentDiffusion.load(bundle.diffusion["edm"]).config == LatentDiffusion.load(src.diffusion["edm"]).config
    assert summary["prior"] == {"refit": False, "reason": "no context prior"} and summary["scored"] is True
    assert (out / "codec.safetensors").read_bytes() == (source / "codec.safetensors").read_bytes()
    assert bundle.diffusion["consistency"].read_bytes() == src.diffusion["consistency"].read_bytes()
    ctx = tmp_path / "ctx.wav"
    save_audio(ctx, np.stack([np.sin(np.arange(SR) / 20.0)] * 2).astype(np.float32) * 0.3, SR)
    code = main(["generate", str(ctx), "-o", str(tmp_path / "stem.wav"), "--bundle", str(out), "--text", "bass",
                 "--steps", "2", "--sampler", "euler", "--quiet"])
    assert code == 0 and (tmp_path / "stem.wav").is_file(), capsys.readouterr().err


def test_a_rerun_resumes_from_the_work_folder(full_run, songs, source, work, tmp_path):
    """Same data and source in the same work folder: the caches are kept and training continues from the
    last checkpoint (6 -> 8 steps), as after an interruption."""
    args = ["--steps", "8", *FAST[2:]]  # FAST starts with --steps 6
    code, text = _run_cli(["finetune", songs, "--out", tmp_path / "more", "--from", source, "--work", work,
                           "--keep-work", *args])
    assert code == 0, text
    assert "resuming from" in text and "encoded" not in text
    assert json.loads((tmp_path / "more" / "finetune.json").read_text())["steps"] == 8
    code, text = _run_cli(["finetune", songs, "--out", tmp_path / "other", "--from", source, "--work", work,
                           "--seed", "1", *FAST])
    assert code == 2 and "holds a fine-tune with another" in text  # another hold-out draw: refused
    code, text = _run_cli(["finetune", songs, "--out", tmp_path / "other", "--from", source, "--work", work,
                           "--lr", "0.5", *FAST])
    assert code == 2 and "trained with another lr" in text  # resuming would silently keep the old settings


def test_lora_finetune_changes_only_the_adapted_layers(lora_run, source, work):
    code, text, out = lora_run
    assert code == 0, text
    assert "encoded" not in text and not work.exists()  # caches of the full run reused; work removed
    summary = json.loads((out / "finetune.json").read_text())
    assert summary["method"] == "lora" and 0 < summary["trainable_parameters"] < summary["parameters"] / 2
    new, old = _weights(out), _weights(source)
    assert new.keys() == old.keys()  # merged: an ordinary model, no adapter tensors
    adapted = {k for k in new if any(re.search(rf"\.{t}\.weight$", k) for t in DIT_TARGETS)}
    assert len(adapted) == 4 * 2  # 2 blocks: attention qkv / out, MLP in / out
    changed = {k for k in new if not torch.equal(new[k], old[k])}
    assert changed and changed <= adapted, changed - adapted


def test_adapters_start_at_identity_and_merge_exactly(source):
    torch.manual_seed(0)
    source = LatentDiffusion.load(open_bundle(source).diffusion["edm"])
    model = LatentDiffusion(source.config)
    model.load_state_dict(source.state_dict())
    x, ctx = torch.randn(2, 64, 10), torch.randn(2, 64, 10)
    clap, sigma = torch.randn(2, source.config.clap_dim), torch.tensor([0.3, 2.0])
    with torch.no_grad():
        ref = model.denoise(x, sigma, ctx, clap)
        names = add_lora(model, rank=3, alpha=6.0)
        assert len(names) == 4 * source.config.net_config["depth"]
        assert torch.allclose(model.denoise(x, sigma, ctx, clap), ref)  # B = 0: the same function
        trainable = [p for p in model.parameters() if p.requires_grad]
        assert {id(p) for p in trainable} == {id(p) for p in lora_parameters(model)}
        for m in model.modules():
            if isinstance(m, LoRALinear):
                m.lora_b.normal_(0, 0.05)
        adapted = model.denoise(x, sigma, ctx, clap)
        assert not torch.allclose(adapted, ref, atol=1e-4)
        assert merge_lora(model) == len(names)
        assert torch.allclose(model.denoise(x, sigma, ctx, clap), adapted, atol=1e-5, rtol=1e-4)
    assert model.state_dict().keys() == source.state_dict().keys()


def test_streaming_cache_reads_the_same_items_as_the_in_memory_one(songs, source, tmp_path):
    bundle = open_bundle(source)
    codec, clap = load_codec(bundle.codec), BuiltinClap.load(bundle.clap)
    model = LatentDiffusion.load(bundle.diffusion["edm"])
    recipe = CacheRecipe(pairs=11, shard_size=5, window_seconds=2.5, reference_seconds=1.0, split=None)
    build_latent_cache(Encoders(codec, clap, model.config.codec_id, model.config.clap_id),
                       survey_data(songs, 3.5, warn=False).songs, tmp_path / "c", recipe, progress=False)
    mem, stream = LatentCacheDataset(tmp_path / "c", 16, seed=2), StreamingLatentCache(tmp_path / "c", 16, seed=2)
    assert len(stream) == len(mem) == 11 and stream.clap_dim == mem.clap_dim and stream.frames == mem.frames
    for ds in (mem, stream):
        ds.set_epoch(1)
    for i in (0, 4, 5, 10):  # first rows, a shard boundary (5 rows per shard), the last row
        a, b = mem[i], stream[i]
        assert a["index"] == b["index"] and stream.metadata(i) == mem.metadata(i)
        for key in ("target", "context", "clap_audio", "clap_text"):
            assert torch.equal(a[key], b[key]), key
    loader = torch.utils.data.DataLoader(stream, batch_size=4, num_workers=2)  # handles opened per worker
    assert sum(len(b["index"]) for b in loader) == len(stream)


def test_bad_data_exits_2_with_one_line(songs, source, tmp_path, capsys):
    few = tmp_path / "few"
    (few / "a").mkdir(parents=True)
    (few / "b").mkdir()
    for name in ("drums", "bass"):
        (few / "a" / f"{name}.wav").symlink_to(songs / "song0" / f"{name}.wav")
    (few / "b" / "bass.wav").symlink_to(songs / "song1" / "bass.wav")
    for data in (few, tmp_path / "missing"):
        code, out, err = finetune(capsys, data, "--out", tmp_path / "b", "--from", source, *FAST)
        assert code == 2 and err.count("\n") == 1 and err.startswith("diffariff: error:"), err
    assert "1 usable song" in finetune(capsys, few, "--out", tmp_path / "b", "--from", source, *FAST)[2]
    assert not (tmp_path / "b").exists()


def test_out_equal_to_from_or_existing_is_refused(songs, source, full_run, capsys):
    for out, extra in ((source, []), (full_run[2], [])):
        code, _, err = finetune(capsys, songs, "--out", out, "--from", source, *FAST, *extra)
        assert code == 2 and err.count("\n") == 1, err
    assert "source bundle" in finetune(capsys, songs, "--out", source, "--from", source, *FAST)[2]
    with pytest.raises(SystemExit) as exit_info:  # argparse: one of --steps / --minutes
        main(["finetune", str(songs), "--out", "x", "--steps", "2", "--minutes", "1"])
    assert exit_info.value.code == 2


def test_ddp_on_two_cpu_processes(songs, source, tmp_path):
    """Lightning's DDP launcher re-runs the command as rank 1; gloo syncs the two CPU processes."""
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "diffariff.cli", "finetune", str(songs), "--out", str(out), "--from", str(source),
           *[a for a in FAST if a not in ("--device", "cpu")], "--device", "cpu", "--devices", "2",
           "--strategy", "ddp"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((out / "finetune.json").read_text())
    assert summary["processes"] == 2 and summary["steps"] == 6 and summary["ranks_in_sync"] is True
    assert summary["heldout"]["after"]["mean"] < summary["heldout"]["before"]["mean"]
    assert proc.stdout.count("bundle written to") == 1  # only rank 0 reports
    assert not torch.equal(_weights(out)["denoiser.net.proj_in.weight"], _weights(source)["denoiser.net.proj_in.weight"])


@pytest.fixture(scope="module")
def source_with_bank(tmp_path_factory) -> Path:
    """The tiny bundle with a neighbour context prior (40 random bank rows of four roles) and a pitch
    critic: what a fine-tune grows (the prior) and copies (the critic)."""
    from diffariff.bundle import save_bundle
    from diffariff.checkpoint import file_sha256
    from diffariff.codec.pitch_critic import PitchCritic, PitchCriticConfig, save_pitch_critic
    from diffariff.priors.context_prior import ROLE_NAMES, PriorPairs
    from diffariff.priors.neighbour_prior import NeighbourPrior, NeighbourPriorConfig

    root = tmp_path_factory.mktemp("banked")
    base = make_tiny_bundle(root / "base", train_frames=24)
    torch.manual_seed(1)
    n, dim = 40, BuiltinClap.load(base.clap).dim
    roles = torch.tensor([ROLE_NAMES.index(r) for r in ("lead", "pad", "bass", "drums")] * (n // 4))
    bank = PriorPairs(torch.randn(n, dim), torch.randn(n, dim), torch.ones(n, dtype=torch.bool), roles)
    prior = NeighbourPrior.build(bank, NeighbourPriorConfig(dim=dim, k=4, clap_sha256=file_sha256(base.clap)))
    prior.save(root / "prior.safetensors")
    latent_dim = LatentDiffusion.load(base.diffusion["edm"]).config.latent_channels
    save_pitch_critic(PitchCritic(PitchCriticConfig(latent_dim=latent_dim, width=8, blocks=1)), root / "critic.safetensors")
    return save_bundle(root / "src", codec=base.codec, clap=base.clap, diffusion=dict(base.diffusion),
                       prior=root / "prior.safetensors", pitch_critic=root / "critic.safetensors").root


def test_the_context_prior_bank_grows_with_the_producers_pairs_and_an_interrupted_scoring_resumes(
        songs, source_with_bank, tmp_path):
    from diffariff.priors.load import load_context_prior as load_prior

    out, work = tmp_path / "banked", tmp_path / "w"
    argv = ["finetune", songs, "--out", out, "--from", source_with_bank, "--work", work, "--keep-work", *FAST,
            "--prior-pairs", "12", "--eval-pairs", "4"]
    code, text = _run_cli(argv)
    assert code == 0, text
    summary = json.loads((out / "finetune.json").read_text())
    p = summary["prior"]
    assert p["refit"] and p["source_rows"] == 40 and 0 < p["added_rows"] <= 12
    assert set(p["roles"]) <= {"drums", "bass", "chords"} and p["roles"]  # the songs' own stems (piano: chords)
    src, new = open_bundle(source_with_bank), open_bundle(out)
    old_prior, grown = load_prior(src.prior), load_prior(new.prior)
    assert grown.target.shape[0] == 40 + p["added_rows"]
    torch.testing.assert_close(grown.target[:40], old_prior.target, atol=2e-3, rtol=0)  # the source rows kept
    assert set(grown.config.roles) > set(old_prior.config.roles)  # the songs' piano (chords) joins the classifier
    assert new.pitch_critic.read_bytes() == src.pitch_critic.read_bytes()
    assert "pairs of the training songs added" in text
    for key in ("generation", "generation_prior"):
        assert summary[key]["rows"].keys() == {"before", "after", "real"}
    assert summary["generation_prior"]["setting"] == "ctx_prior" and summary["scored"] is True
    # an interruption while scoring: the rerun scores the written bundle without training or writing it again
    weights = new.diffusion["edm"].read_bytes()
    del summary["generation_prior"]
    summary["scored"] = False
    (out / "finetune.json").write_text(json.dumps(summary))
    code, text = _run_cli(argv)
    assert code == 0 and "was written by this fine-tune; scoring it" in text and "resuming from" not in text, text
    assert "(all in an earlier run of this work folder)" in text  # no training step in this run
    again = json.loads((out / "finetune.json").read_text())
    assert again["scored"] is True and again["generation_prior"]["rows"].keys() == {"before", "after", "real"}
    assert open_bundle(out).diffusion["edm"].read_bytes() == weights
    code, text = _run_cli(argv)  # scored: a third run is refused as before
    assert code == 2 and "already exists" in text
