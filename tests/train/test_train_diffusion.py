"""Diffusion training on a real (tiny) latent cache: EDM loss falls, resume continues the step count,
consistency training and distillation run, the EMA export loads, condition dropout rates, the context
chroma option; the shared training utilities."""

from __future__ import annotations

import argparse
import copy
import csv
import dataclasses
import json
import math
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from diffariff.checkpoint import read_checkpoint_metadata
from diffariff.commands.train_options import diffusion_arguments
from diffariff.data.latents import CacheRecipe, LatentCacheDataset, build_latent_cache
from diffariff.diffusion.model import LatentDiffusion
from diffariff.errors import ConfigError, InputError
from diffariff.train.common import EMA, adamw_with_schedule, ema_decay, ema_update_, lr_factor, write_rows_csv
from diffariff.train.diffusion import DiffusionModule, add_context_chroma, load_run_config, run
from latent_helpers import RECIPE, tiny_cache

TINY = ('{"model": {"net_config": {"width": 32, "depth": 2, "heads": 2, "cond_dim": 32, "noise_emb_dim": 32,'
        ' "dpb_dim": 16}, "train_frames": 16}, "train": {"batch_size": 6, "lr": 0.003, "warmup_steps": 2,'
        ' "log_every": 2, "checkpoint_every": 4, "ema_decay": 0.5, "precision": "32-true"}}')


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tiny_cache(tmp_path_factory)["cache"]


@pytest.fixture(scope="module")
def config_file(tmp_path_factory) -> Path:
    p = tmp_path_factory.mktemp("cfg") / "tiny.json"
    p.write_text(TINY)
    return p


def train(cache, out, config, *extra) -> int:
    """``cache``: one cache folder or a list of them (read as one data set)."""
    parser = argparse.ArgumentParser()
    diffusion_arguments(parser)
    caches = [str(c) for c in cache] if isinstance(cache, list) else [str(cache)]
    return run(parser.parse_args(["--cache", *caches, "--out", str(out), "--config", str(config), *extra]))


def edm_batch(cache: Path, n: int) -> dict:
    """``n`` training examples (the cache's, repeated) as one collated batch."""
    ds = LatentCacheDataset(cache, 16)
    one = torch.utils.data.default_collate([ds[i] for i in range(len(ds))])
    return {k: v.repeat(n // len(ds) + 1, *([1] * (v.ndim - 1)))[:n] for k, v in one.items() if k != "index"}


def eval_loss(module: DiffusionModule, ds: LatentCacheDataset) -> float:
    """Mean loss over the whole cache for 4 fixed draws of sigma / noise / conditions."""
    batch = torch.utils.data.default_collate([ds[i] for i in range(len(ds))])
    with torch.no_grad():
        return float(sum(module.loss(batch, 10_000 + k)[0].mean() for k in range(4)) / 4)


@pytest.fixture(scope="module")
def edm_run(cache, config_file, tmp_path_factory):
    out = tmp_path_factory.mktemp("edm_run")
    assert train(cache, out, config_file, "--max-steps", "10", "--seed", "1") == 0
    first = list(csv.DictReader((out / "metrics.csv").open()))
    assert train(cache, out, config_file, "--max-steps", "16", "--resume") == 0
    return out, first


def test_edm_training_reduces_the_loss_and_resume_continues(edm_run, cache):
    out, first = edm_run
    rows = list(csv.DictReader((out / "metrics.csv").open()))
    steps = [int(r["step"]) for r in rows]
    assert int(first[-1]["step"]) == 10
    assert steps == sorted(set(steps)) and steps[-1] == 16  # resumed at 10, not from 0
    assert {"loss", "loss_band0", "lr", "samples_per_s"} <= set(rows[0])
    cfg = load_run_config(out / "run_config.json")
    assert abs(cfg.model.sigma_data - 1.0) < 0.05  # global normalisation: unit std on the cache
    assert cfg.model.codec_id.startswith("codec:") and cfg.model.clap_dim == 32
    ds = LatentCacheDataset(cache, cfg.model.train_frames, seed=0)
    torch.manual_seed(1)
    fresh = DiffusionModule(cfg)
    trained = DiffusionModule(cfg)
    trained.model.load_state_dict(LatentDiffusion.load(out / "diffusion_ema.safetensors").state_dict())
    before, after = eval_loss(fresh, ds), eval_loss(trained, ds)
    assert after < 0.95 * before, (before, after)


def test_a_time_limited_run_stops_at_the_end_of_its_schedule(cache, config_file, tmp_path):
    """With only --max-minutes, the run ends with its learning-rate schedule (--total-steps), not with
    minutes of steps at learning rate 0."""
    out = tmp_path / "timed"
    assert train(cache, out, config_file, "--total-steps", "4", "--max-minutes", "1") == 0
    steps = [int(r["step"]) for r in csv.DictReader((out / "metrics.csv").open())]
    meta = json.loads(read_checkpoint_metadata(out / "diffusion_ema.safetensors")["extra"])
    assert meta["step"] == 4 and max(steps) <= 4


def test_export_round_trip_and_sampling(edm_run, cache):
    out, _ = edm_run
    model = LatentDiffusion.load(out / "diffusion_ema.safetensors")
    ck = torch.load(out / "last.ckpt", weights_only=True)
    ema = {k.removeprefix("ema.module."): v for k, v in ck["state_dict"].items() if k.startswith("ema.module.")}
    for k, v in model.state_dict().items():
        assert torch.allclose(v, ema[k].float(), atol=1e-2, rtol=1e-2), k
    ds = LatentCacheDataset(cache, full_length=True)
    item = ds[0]
    z = model.sample(item["context"][None], item["clap_audio"][None], steps=3, seed=0)
    assert z.shape == (1, 64, ds.frames) and torch.isfinite(z).all()
    assert model.config.codec_id == ds.manifest["codec_id"]


def test_consistency_training_and_distillation_run(edm_run, cache, config_file, tmp_path):
    assert train(cache, tmp_path / "ct", config_file, "--mode", "consistency", "--max-steps", "3") == 0
    ct = LatentDiffusion.load(tmp_path / "ct" / "diffusion_ema.safetensors")
    assert ct.config.mode == "consistency"
    assert torch.isfinite(ct.sample(None, None, frames=8, seed=0)).all()
    teacher = edm_run[0] / "diffusion_ema.safetensors"
    assert train(cache, tmp_path / "cd", config_file, "--teacher", str(teacher), "--max-steps", "2") == 0
    cd = LatentDiffusion.load(tmp_path / "cd" / "diffusion_ema.safetensors")
    assert cd.config.mode == "consistency" and cd.config.latent_std == LatentDiffusion.load(teacher).config.latent_std
    assert cd.config.distilled_guidance == (1.0, 1.0)


def test_guided_distillation_bakes_the_strengths_into_the_student(edm_run, cache, config_file, tmp_path):
    """--distill-guidance: the teacher step is guided, the student records the strengths and samples
    them in a single pass (sampling at w = g equals the same weights sampled unguided at w = 1)."""
    teacher = edm_run[0] / "diffusion_ema.safetensors"
    assert train(cache, tmp_path / "gd", config_file, "--teacher", str(teacher), "--distill-guidance", "1.5", "2",
                 "--max-steps", "2") == 0
    gd = LatentDiffusion.load(tmp_path / "gd" / "diffusion_ema.safetensors")
    assert gd.config.distilled_guidance == (1.5, 2.0)
    ctx, clap = torch.randn(1, gd.config.latent_channels, 12), torch.nn.functional.normalize(torch.randn(1, 32), dim=1)
    guided = gd.sample(ctx, clap, cfg_context=1.5, cfg_clap=2.0, seed=3)
    plain = copy.deepcopy(gd)
    plain.config = dataclasses.replace(gd.config, distilled_guidance=(1.0, 1.0))
    assert torch.allclose(guided, plain.sample(ctx, clap, cfg_context=1.0, cfg_clap=1.0, seed=3), atol=1e-5)
    assert not torch.allclose(guided, plain.sample(ctx, clap, cfg_context=1.5, cfg_clap=2.0, seed=3), atol=1e-4)
    # the same training step with the guided teacher aims at other targets than with the unguided one
    cfg = load_run_config(tmp_path / "gd" / "run_config.json")
    assert cfg.train.distill_guidance == (1.5, 2.0)
    ds = LatentCacheDataset(cache, cfg.model.train_frames, seed=0)
    batch = torch.utils.data.default_collate([ds[i] for i in range(len(ds))])
    unguided = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, distill_guidance=(1.0, 1.0)))
    t = LatentDiffusion.load(teacher)
    with torch.no_grad():
        a = DiffusionModule(cfg, t).loss(batch, 5)[0]
        b = DiffusionModule(unguided, t).loss(batch, 5)[0]
    assert not torch.allclose(a, b)
    with pytest.raises(ConfigError, match="needs --teacher"):
        train(cache, tmp_path / "bad", config_file, "--distill-guidance", "1.5", "2", "--max-steps", "1")
    # further training on data (here iCT from the guided student) learns the unguided model again
    assert train(cache, tmp_path / "ict", config_file, "--init", str(tmp_path / "gd" / "diffusion_ema.safetensors"),
                 "--mode", "consistency", "--max-steps", "1") == 0
    assert LatentDiffusion.load(tmp_path / "ict" / "diffusion_ema.safetensors").config.distilled_guidance == (1.0, 1.0)


def test_init_warm_starts_a_new_run_from_a_trained_model(edm_run, cache, config_file, tmp_path):
    """--init: a fresh run (step 0, new schedule) that begins at the checkpoint's weights and keeps
    its normalisation; with --teacher, a distillation continues from an earlier student, which must
    share the teacher's normalisation but not its depth. The warm start reads two caches as one data set
    (a grown corpus)."""
    start = edm_run[0] / "diffusion_ema.safetensors"
    init = LatentDiffusion.load(start)
    out = tmp_path / "warm"
    assert train([cache, cache], out, config_file, "--init", str(start), "--max-steps", "2", "--lr", "1e-12",
                 "--p-drop-context", "0.15", "--p-mean", "-0.5") == 0
    warm_cfg = load_run_config(out / "run_config.json")
    assert warm_cfg.train.p_drop_context == 0.15
    # the noise-level distribution is a training choice: --p-mean overrides the init model's, --p-std keeps it
    assert (warm_cfg.model.p_mean, warm_cfg.model.p_std) == (-0.5, init.config.p_std) and init.config.p_mean != -0.5
    sigmas = DiffusionModule(warm_cfg).loss(edm_batch(cache, 200), 0)[1]
    assert abs(float(sigmas.log().mean()) + 0.5) < 0.25
    rows = list(csv.DictReader((out / "metrics.csv").open()))
    assert int(rows[-1]["step"]) == 2  # counted from 0, not from the init run's 16
    warm = LatentDiffusion.load(out / "diffusion_ema.safetensors")
    assert warm.config.latent_std == init.config.latent_std and warm.config.sigma_data == init.config.sigma_data
    for k, v in init.state_dict().items():  # lr ~0: the run still holds the initial weights
        assert torch.allclose(warm.state_dict()[k], v, atol=2e-3), k
    assert train(cache, tmp_path / "cd", config_file, "--init", str(out / "diffusion_ema.safetensors"),
                 "--teacher", str(start), "--max-steps", "1") == 0
    assert LatentDiffusion.load(tmp_path / "cd" / "diffusion_ema.safetensors").config.mode == "consistency"
    # a shallower student of the teacher: distillation continues from it and keeps its depth
    shallow = tmp_path / "shallow.safetensors"
    LatentDiffusion(dataclasses.replace(init.config, net_config={**init.config.net_config, "depth": 1})).save(shallow)
    assert train(cache, tmp_path / "cd1", config_file, "--init", str(shallow), "--teacher", str(start),
                 "--max-steps", "1") == 0
    student = LatentDiffusion.load(tmp_path / "cd1" / "diffusion_ema.safetensors")
    assert student.config.net_config["depth"] == 1 and init.config.net_config["depth"] == 2
    other = tmp_path / "other.safetensors"
    LatentDiffusion(dataclasses.replace(init.config, latent_std=(2.0,))).save(other)
    with pytest.raises(ConfigError, match="latent_std"):
        train(cache, tmp_path / "bad", config_file, "--init", str(other), "--teacher", str(start), "--max-steps", "1")
    with pytest.raises(ConfigError, match="p-std"):
        train(cache, tmp_path / "bad2", config_file, "--p-std", "0", "--max-steps", "1")


def test_grow_depth_warm_starts_a_deeper_dit_with_the_same_output(edm_run, cache, config_file, tmp_path):
    """--grow-depth: the --init DiT (depth 2) becomes a depth-3 network whose first step starts from the
    trained model's exact output; without --init, or to a shallower depth, it is refused."""
    start = edm_run[0] / "diffusion_ema.safetensors"
    init = LatentDiffusion.load(start).eval()
    out = tmp_path / "grown"
    assert train(cache, out, config_file, "--init", str(start), "--grow-depth", "3", "--max-steps", "2",
                 "--lr", "1e-12") == 0
    grown = LatentDiffusion.load(out / "diffusion_ema.safetensors").eval()
    assert grown.config.net_config["depth"] == 3 and init.config.net_config["depth"] == 2
    assert load_run_config(out / "run_config.json").model.net_config["depth"] == 3
    batch = edm_batch(cache, 4)
    x, ctx, clap = batch["target"], batch["context"], batch["clap_audio"]
    noisy = x + 2.0 * torch.randn(x.shape, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        a, b = (m.denoiser(noisy, 2.0, context=ctx, clap=clap) for m in (init, grown))
    assert torch.allclose(a, b, atol=2e-3), float((a - b).abs().max())  # lr ~0: still the trained function
    with pytest.raises(ConfigError, match="--grow-depth needs --init"):
        train(cache, tmp_path / "bad", config_file, "--grow-depth", "3", "--max-steps", "1")
    with pytest.raises(ConfigError, match="depth >= 2"):
        train(cache, tmp_path / "bad2", config_file, "--init", str(start), "--grow-depth", "1", "--max-steps", "1")


def test_init_new_latents_warm_starts_across_codecs(edm_run, cache, config_file, tmp_path):
    """--init-new-latents: a model trained on another codec's latents (other codec id, other
    normalisation) warm-starts on this cache with its weights kept, the normalisation re-measured here
    and the cache's codec id; plain --init refuses the pair."""
    trained = LatentDiffusion.load(edm_run[0] / "diffusion_ema.safetensors")
    foreign = tmp_path / "foreign.safetensors"
    other = LatentDiffusion(dataclasses.replace(trained.config, codec_id="codec:another", latent_mean=(0.7,),
                                                latent_std=(3.0,), sigma_data=0.25))
    other.load_state_dict(trained.state_dict())
    other.save(foreign)
    with pytest.raises(InputError, match="codec:another"):
        train(cache, tmp_path / "plain", config_file, "--init", str(foreign), "--max-steps", "1")
    out = tmp_path / "adapted"
    assert train(cache, out, config_file, "--init", str(foreign), "--init-new-latents", "--max-steps", "2",
                 "--lr", "1e-12") == 0
    adapted = LatentDiffusion.load(out / "diffusion_ema.safetensors")
    assert adapted.config.codec_id == trained.config.codec_id != "codec:another"
    assert adapted.config.latent_mean == pytest.approx(trained.config.latent_mean)  # measured on this cache
    assert adapted.config.latent_std == pytest.approx(trained.config.latent_std)
    assert adapted.config.sigma_data == pytest.approx(trained.config.sigma_data, rel=1e-3)
    for k, v in trained.state_dict().items():
        assert torch.allclose(adapted.state_dict()[k], v, atol=2e-3), k
    # a distillation continues from a student of the other latents: it takes its teacher's normalisation
    assert train(cache, tmp_path / "student", config_file, "--init", str(foreign), "--init-new-latents",
                 "--teacher", str(out / "diffusion_ema.safetensors"), "--max-steps", "1") == 0
    student = LatentDiffusion.load(tmp_path / "student" / "diffusion_ema.safetensors")
    assert student.config.mode == "consistency"
    assert (student.config.latent_std, student.config.codec_id) == (adapted.config.latent_std, adapted.config.codec_id)
    with pytest.raises(ConfigError, match="--init-new-latents"):
        train(cache, tmp_path / "bad", config_file, "--init-new-latents", "--max-steps", "1")


def test_condition_dropout_happens_at_the_configured_rate(edm_run, cache):
    cfg = load_run_config(edm_run[0] / "run_config.json")
    module = DiffusionModule(cfg)
    batch = edm_batch(cache, 4000)
    cond = module.conditions(batch, module.generator(0))
    dc, dl = cond["drop_context"].float(), cond["drop_clap"].float()
    assert abs(float(dc.mean()) - 0.3) < 0.035 and abs(float(dl.mean()) - 0.3) < 0.035
    assert abs(float((dc * dl).mean()) - 0.09) < 0.025  # independent
    audio = (cond["clap"] == batch["clap_audio"]).all(dim=1).float().mean()
    assert abs(float(audio) - 0.7) < 0.035
    again = module.conditions(batch, module.generator(0))
    assert torch.equal(again["drop_context"], cond["drop_context"])


def test_shared_utilities():
    assert lr_factor(0, 10, 100) == pytest.approx(0.1)
    assert lr_factor(9, 10, 100) == pytest.approx(1.0)
    assert lr_factor(55, 10, 100) == pytest.approx(0.5)
    assert lr_factor(100, 10, 100) == pytest.approx(0.0) and lr_factor(500, 10, 100, 0.1) == pytest.approx(0.1)
    net = torch.nn.Linear(3, 3)
    ema = EMA(net, decay=0.999)
    assert ema.current_decay() == pytest.approx(0.1)  # warm-up: (1 + 0) / (10 + 0)
    with torch.no_grad():
        net.weight.add_(1.0)
    old = ema.module.weight.clone()
    ema.update(net)
    assert torch.allclose(ema.module.weight, old + 0.9 * (net.weight - old))
    for _ in range(10_000):
        ema.num_updates += 1
    assert ema.current_decay() == pytest.approx(0.999)
    assert not any(p.requires_grad for p in ema.module.parameters())


def test_shared_ema_step_optimiser_groups_and_csv_writer(tmp_path):
    assert ema_decay(0.999, 0) == pytest.approx(0.1) and ema_decay(0.999, 10**6) == 0.999
    net = torch.nn.BatchNorm1d(3)
    avg = copy.deepcopy(net)
    with torch.no_grad():
        net.weight.add_(1.0)
        net.running_mean.add_(2.0)
    ema_update_(avg, net, 0.75)  # parameters move a quarter of the way, buffers are copied
    assert torch.allclose(avg.weight, torch.full((3,), 1.25)) and torch.equal(avg.running_mean, net.running_mean)

    model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.LayerNorm(4))
    split = adamw_with_schedule(model, 1e-3, 100, 10, weight_decay=0.1)
    groups = split["optimizer"].param_groups
    assert [g["weight_decay"] for g in groups] == [0.1, 0.0] and [len(g["params"]) for g in groups] == [1, 3]
    one = adamw_with_schedule(model, 1e-3, 100, 10, weight_decay=0.1, split_decay=False)["optimizer"]
    assert len(one.param_groups) == 1 and len(one.param_groups[0]["params"]) == 4
    assert one.param_groups[0]["lr"] == pytest.approx(1e-3 * lr_factor(0, 10, 100))  # warm-up starts

    path = tmp_path / "m.csv"
    write_rows_csv(path, [{"step": 1, "a": 0.5}, {"step": 2, "b": 1.0}])
    assert list(csv.DictReader(path.open())) == [{"step": "1", "a": "0.5", "b": ""}, {"step": "2", "a": "", "b": "1.0"}]


def test_denoising_eval_scores_fixed_draws_and_separates_trained_from_fresh(edm_run, cache, tmp_path):
    """`eval denoising`: a zero-output network (AdaLN-Zero at init) scores ~1.0 at every noise level
    (the EDM weighting normalises predicting c_skip x to 1); the trained model scores lower; the
    draw is fixed (two runs agree); a cache of another codec is refused."""
    import json

    from diffariff.cli import main
    from diffariff.eval.denoising import DenoisingEvalConfig, denoising_losses

    trained_path = edm_run[0] / "diffusion_ema.safetensors"
    trained = LatentDiffusion.load(trained_path)
    fresh = LatentDiffusion(trained.config).eval()
    tensors = LatentCacheDataset(cache).tensors
    config = DenoisingEvalConfig(sigmas=(0.1, 1.0, 10.0), batch_size=5)
    zero = denoising_losses(fresh, tensors, config)
    assert zero["rows"] == len(tensors["target"]) and set(zero["conditionings"]) == {"ctx+clap", "ctx", "clap", "none"}
    for row in zero["conditionings"].values():
        assert row["per_sigma"] == pytest.approx([1.0, 1.0, 1.0], abs=0.25)
    good = denoising_losses(trained, tensors, config)
    assert good["conditionings"]["ctx+clap"]["mean"] < 0.9 * zero["conditionings"]["ctx+clap"]["mean"]
    assert denoising_losses(trained, tensors, config) == good
    out = tmp_path / "report"
    assert main(["eval", "denoising", "--model", str(trained_path), "--cache", str(cache), "--out", str(out),
                 "--sigmas", "0.5", "2", "--n", "4"]) == 0
    res = json.loads((out / "results.json").read_text())
    assert res["caches"][str(cache)]["rows"] == 4 and "| ctx+clap |" in (out / "table.md").read_text()
    other = tmp_path / "other.safetensors"
    LatentDiffusion(dataclasses.replace(trained.config, codec_id="codec:0000")).save(other)
    assert main(["eval", "denoising", "--model", str(other), "--cache", str(cache), "--out", str(out)]) != 0


def test_sigterm_stops_a_run_like_a_time_limit(cache, config_file, tmp_path):
    """`kill PID` on a training: the run saves last.ckpt, exports its EMA weights and exits 0, and
    --resume continues from the step it reached."""
    out = tmp_path / "killed"
    cmd = [sys.executable, "-c", "import sys; from diffariff.cli import main; sys.exit(main(sys.argv[1:]))",
           "train", "diffusion", "--cache", str(cache), "--out", str(out), "--config", str(config_file),
           "--max-steps", "1000000"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            metrics = out / "metrics.csv"
            if metrics.is_file() and len(metrics.read_text().splitlines()) >= 3:  # header + 2 logged rows
                break
            time.sleep(0.2)
        assert proc.poll() is None, proc.communicate()[1][-2000:]
        proc.send_signal(signal.SIGTERM)
        stdout, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 0, err[-2000:]
    assert "stopped by SIGTERM" in err
    assert LatentDiffusion.load(out / "diffusion_ema.safetensors").config.mode == "edm"
    reached = json.loads(next(line for line in stdout.splitlines() if line.startswith("{")))["steps"]
    assert reached >= 2 and (out / "last.ckpt").is_file()
    target = reached + 2 + reached % 2  # the next-but-one logged (even) step
    assert train(cache, out, config_file, "--max-steps", str(target), "--resume") == 0
    steps = [int(r["step"]) for r in csv.DictReader((out / "metrics.csv").open())]
    assert steps[-1] == target and steps == sorted(set(steps))  # continued: no step logged twice


def test_auto_precision_is_bf16_only_with_native_bf16():
    """``"auto"`` (the trainers' default) picks bf16-mixed only where the CPU has native bf16 (emulated bf16
    made a codec step 10x slower than fp32); explicit precisions pass through."""
    from diffariff.torchutil import resolve_precision

    native = torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()
    assert resolve_precision("auto") == ("bf16-mixed" if native else "32-true")
    assert resolve_precision("32-true") == "32-true" and resolve_precision("bf16-mixed") == "bf16-mixed"


# ------------------------------------------------------------------------------------ context chroma
@pytest.fixture(scope="module")
def plain_cache(tmp_path_factory) -> Path:
    """A 6-pair cache of the same corpus built without the context chroma (as caches before it were)."""
    built = tiny_cache(tmp_path_factory)
    out = tmp_path_factory.mktemp("plain_cache") / "cache"
    build_latent_cache(built["encoders"], built["songs"], out,
                       CacheRecipe(**{**RECIPE, "pairs": 6, "context_chroma": False}), progress=False)
    return out


def test_a_chroma_model_trains_on_the_caches_chroma_and_drops_it_with_the_context(cache, config_file, tmp_path):
    """--context-chroma: the model takes the cache's chroma rows beside the context latents; the loss is
    finite; a dropped context drops its chroma (the loss does not see it); the export samples with
    chroma and the denoising eval reads the cache's chroma."""
    from diffariff.eval.denoising import DenoisingEvalConfig, denoising_losses

    out = tmp_path / "chroma"
    assert train(cache, out, config_file, "--context-chroma", "--max-steps", "3") == 0
    cfg = load_run_config(out / "run_config.json")
    assert cfg.model.context_chroma and "context_channels" not in cfg.model.net_config
    losses = [float(r["loss"]) for r in csv.DictReader((out / "metrics.csv").open()) if r.get("loss")]
    assert losses and all(math.isfinite(v) for v in losses)
    module = DiffusionModule(cfg)
    with torch.no_grad():  # AdaLN-Zero / zero output init makes an untrained net ignore its inputs
        for p in module.model.parameters():
            p.add_(torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel())) * 0.05)
    batch = edm_batch(cache, 6)
    assert batch["context_chroma"].shape == (6, 12, 16)
    per_sample, _ = module.loss(batch, 0)
    assert torch.isfinite(per_sample).all()
    with pytest.raises(InputError, match="context chroma"):
        module.loss({k: v for k, v in batch.items() if k != "context_chroma"}, 0)
    other = {**batch, "context_chroma": batch["context_chroma"].flip(-1)}
    assert not torch.equal(module.loss(batch, 0)[0], module.loss(other, 0)[0])
    module.tcfg = dataclasses.replace(module.tcfg, p_drop_context=1.0)  # every context dropped
    assert torch.equal(module.loss(batch, 0)[0], module.loss(other, 0)[0])
    model = LatentDiffusion.load(out / "diffusion_ema.safetensors")
    assert model.config.context_chroma and model.net.config.context_channels == 64 + 12
    item = LatentCacheDataset(cache, full_length=True)[0]
    z = model.sample(item["context"][None], item["clap_audio"][None], steps=2, seed=0,
                     context_chroma=item["context_chroma"][None])
    assert z.shape == (1, 64, item["context"].shape[-1]) and torch.isfinite(z).all()
    scores = denoising_losses(model, LatentCacheDataset(cache).tensors, DenoisingEvalConfig(sigmas=(0.5,), n=4))
    assert all(math.isfinite(row["mean"]) for row in scores["conditionings"].values())


def test_a_chroma_model_refuses_a_cache_without_chroma_before_training(plain_cache, cache, config_file, tmp_path):
    out = tmp_path / "refused"
    with pytest.raises(ConfigError, match="stores none.*rebuild"):
        train(plain_cache, out, config_file, "--context-chroma", "--max-steps", "1")
    assert not (out / "run_config.json").exists()
    with pytest.raises(ConfigError, match="not every cache of .* stores it"):  # one cache without chroma of two
        train([cache, plain_cache], tmp_path / "refused2", config_file, "--context-chroma", "--max-steps", "1")
    as_json = tmp_path / "chroma.json"  # the config file's model section sets it too
    data = json.loads(config_file.read_text())
    as_json.write_text(json.dumps({**data, "model": {**data["model"], "context_chroma": True}}))
    with pytest.raises(ConfigError, match="stores none"):
        train(plain_cache, tmp_path / "refused3", as_json, "--max-steps", "1")
    assert train(plain_cache, tmp_path / "plain", config_file, "--max-steps", "1") == 0  # a plain model trains


def test_init_widens_a_trained_model_to_take_the_chroma(edm_run, cache, config_file, tmp_path):
    """--init with --context-chroma: the trained model gets zero-weight chroma inputs, so it starts from
    exactly its function; a teacher without chroma cannot have a chroma student."""
    start = edm_run[0] / "diffusion_ema.safetensors"
    plain = LatentDiffusion.load(start)
    wide = add_context_chroma(plain).eval()
    assert wide.config.context_chroma and not plain.config.context_chroma
    batch = edm_batch(cache, 4)
    x, clap = batch["target"], batch["clap_audio"]
    noisy = plain.normalize(x) + 2.0 * torch.randn(x.shape, generator=torch.Generator().manual_seed(0))
    keep = torch.tensor([False, True, False, True])
    with torch.no_grad():
        a = plain.denoise(noisy, 2.0, context=plain.context_input(batch["context"]), clap=clap, drop_context=keep)
        b = wide.denoise(noisy, 2.0, context=wide.context_input(batch["context"], batch["context_chroma"]), clap=clap,
                         drop_context=keep)
    assert torch.allclose(a, b, atol=1e-5), float((a - b).abs().max())
    out = tmp_path / "widened"
    assert train(cache, out, config_file, "--init", str(start), "--context-chroma", "--max-steps", "1") == 0
    assert LatentDiffusion.load(out / "diffusion_ema.safetensors").config.context_chroma
    with pytest.raises(ConfigError, match="teacher takes no context chroma"):
        train(cache, tmp_path / "bad", config_file, "--teacher", str(start), "--context-chroma", "--max-steps", "1")
    with pytest.raises(ConfigError, match="context_chroma"):  # a chroma student of a plain teacher
        train(cache, tmp_path / "bad2", config_file, "--init", str(out / "diffusion_ema.safetensors"),
              "--teacher", str(start), "--max-steps", "1")
