"""Codec training: stage-1 steps reduce the loss on rendered audio, a stage-2 (consistency) step, and
the ``diffariff train codec`` entry point end to end (checkpoint, metrics, export, resume, stage 2)."""

from __future__ import annotations

import argparse
import csv
import json
from dataclasses import asdict

import numpy as np
import pytest
import soundfile as sf
import torch

from cli_args import parse_options
from codec_helpers import TINY, tiny_codec
from diffariff.codec import Codec, CodecConfig
from diffariff.commands.train_options import CODEC_RECIPES, codec_arguments
from diffariff.errors import ConfigError, InputError
from diffariff.train.audio_crops import CropStream
from diffariff.train.codec import CodecModule, run
from diffariff.train.codec_train_config import RECIPES


def _clips(render_notes) -> torch.Tensor:
    a = render_notes(0, [60, 64, 67, 72, 71, 67], seconds=0.7)[0, 4096: 4096 * 5]
    b = render_notes(33, [36, 43, 40, 45, 38, 41], seconds=0.7)[0, 4096: 4096 * 5]
    return torch.from_numpy(np.stack([a, b]))[:, None]  # [2, 1, 16384]


def _stage1_steps(module: CodecModule, x: torch.Tensor, steps: int = 12) -> list[float]:
    """``steps`` Adam steps (lr 2e-3) of the module's stage-1 loss on ``x``; the losses before each step."""
    opt = torch.optim.Adam([p for p in module.codec.parameters() if p.requires_grad], 2e-3)
    losses = []
    for _ in range(steps):
        loss = module._stage1_loss(x)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    return losses


def test_stage1_steps_reduce_loss_on_rendered_audio(render_notes):
    torch.manual_seed(0)
    module = CodecModule(asdict(CodecConfig(**TINY)), {"stage": 1})
    x = _clips(render_notes)
    losses = _stage1_steps(module, x)
    assert np.mean(losses[-3:]) < 0.85 * np.mean(losses[:3])
    assert not any(p.requires_grad for p in module.codec.unet.parameters())


def test_magphase_decoder_fine_tune_keeps_the_encoder(render_notes):
    """``--recipe magphase --freeze-encoder``: the loss falls, only the upsampler moves, latents stay."""
    torch.manual_seed(0)
    module = CodecModule(asdict(CodecConfig(**TINY)), {"stage": 1, "freeze_encoder": True, **RECIPES["magphase"]})
    x = _clips(render_notes)
    with torch.no_grad():
        latents_before = module.codec.encode(x)
    losses = _stage1_steps(module, x)
    assert np.mean(losses[-3:]) < 0.9 * np.mean(losses[:3])
    assert not any(p.requires_grad for p in module.codec.encoder.parameters())
    with torch.no_grad():
        assert torch.equal(module.codec.encode(x), latents_before)


def test_note_term_puts_the_notes_into_the_latents(render_notes):
    """``--note-weight``: a training-only linear read-out of the latents; its loss falls as encoder and
    read-out train, the encoder's gradient comes from it, and it refuses a frozen encoder."""
    torch.manual_seed(0)
    train = {"stage": 1, "w_note": 1.0, "w_complex": 0.0, "w_mrstft": 0.0}  # the note term alone
    module = CodecModule(asdict(CodecConfig(**TINY)), train)
    assert module.note_head is not None and module.note_head.out_channels == 84
    assert not module.note_head.weight.any()  # starts at the zero prediction
    groups = module.configure_optimizers()["optimizer"].param_groups  # the read-out learns 10x faster
    assert [g["initial_lr"] for g in groups] == [pytest.approx(module.tcfg.lr), pytest.approx(10 * module.tcfg.lr)]
    assert sum(p.numel() for p in groups[1]["params"]) == 84 * 64 + 84 and groups[1]["weight_decay"] == 0
    x = _clips(render_notes)
    opt = torch.optim.Adam([*module.codec.encoder.parameters(), *module.note_head.parameters()], 2e-3)
    with torch.no_grad():
        note_before = module._held_out_note_loss(x)
    losses = []
    for _ in range(25):
        loss = module._stage1_loss(x)
        opt.zero_grad()
        loss.backward()
        losses.append(float(loss.detach()))
        opt.step()
    assert np.mean(losses[-3:]) < 0.6 * np.mean(losses[:3])
    with torch.no_grad():  # the evaluation's note column: the read-out on the (eval-mode) encoder
        assert module._held_out_note_loss(x) < 0.6 * note_before
    assert module.codec.training  # restored after the evaluation
    row = module.evaluate(25)
    assert row["train_note"] == pytest.approx(np.mean(losses), rel=1e-3)
    assert module.codec.encoder.bottleneck.weight.grad.abs().sum() > 0
    assert all(p.grad is None or not p.grad.any() for p in module.codec.upsampler.parameters())
    with pytest.raises(ConfigError, match="note"):
        CodecModule(asdict(CodecConfig(**TINY)), {**train, "freeze_encoder": True})
    assert "note_head" not in str(module.codec.state_dict().keys())  # the export holds the codec alone
    # with the encoder's note branch (note_input) the reconstruction loss reaches that branch too
    noted = CodecModule(asdict(CodecConfig(**TINY, note_input=True)), {"stage": 1, "w_note": 1.0})
    noted._stage1_loss(x).backward()
    assert noted.codec.encoder.note_in.weight.grad.abs().sum() > 0


def test_stage2_step_trains_only_the_unet(render_notes):
    torch.manual_seed(0)
    cfg = asdict(tiny_codec().config)
    module = CodecModule(cfg, {"stage": 2, "total_steps": 100})
    x = _clips(render_notes)
    enc_before = module.codec.encoder.bottleneck.weight.detach().clone()
    unet_before = module.codec.unet.head.conv.weight.detach().clone()
    opt = torch.optim.Adam([p for p in module.codec.parameters() if p.requires_grad], 1e-3)
    loss = module._stage2_loss(x)
    assert torch.isfinite(loss) and loss > 0
    loss.backward()
    opt.step()
    assert torch.equal(enc_before, module.codec.encoder.bottleneck.weight)
    assert not torch.equal(unet_before, module.codec.unet.head.conv.weight)
    teacher_before = module.teacher.head.conv.weight.detach().clone()
    module.on_train_batch_end(None, x, 0)  # EMA weights and EMA teacher follow the student
    assert not torch.equal(teacher_before, module.teacher.head.conv.weight)


def test_stage2_magnitude_term_charges_energy_loss_more_than_phase_error(render_notes):
    """The auxiliary term of ``--aux-weight`` is ~0 for the true spectrogram, and removing half the
    amplitude costs more than scrambling every bin's phase (the drift it exists to stop)."""
    module = CodecModule(asdict(tiny_codec().config), {"stage": 2, "w_aux": 1.0})
    x = _clips(render_notes)
    with torch.no_grad():
        spec = module.codec.spectrogram(x)
        b, s = spec.shape[:2]
        z = spec.reshape(b, s // 2, 2, *spec.shape[2:])
        z = torch.complex(z[:, :, 0], z[:, :, 1])
        turned = z * torch.exp(1j * 2 * torch.pi * torch.rand(z.shape, generator=torch.Generator().manual_seed(0)))
        scrambled = torch.stack([turned.real, turned.imag], dim=2).reshape(spec.shape)
        exact = float(module._magnitude_terms(spec, spec, x))
        phase_err = float(module._magnitude_terms(scrambled, spec, x))
        quieter = float(module._magnitude_terms(0.5 * spec, spec, x))
    assert exact < 0.05
    assert phase_err > exact
    assert quieter > 1.2 * phase_err  # measured 5.1 vs 3.6: a scrambled phase also cancels energy in the iSTFT


def test_stage2_aux_weight_adds_the_magnitude_term(render_notes):
    torch.manual_seed(0)
    cfg = asdict(tiny_codec().config)
    x = _clips(render_notes)
    plain = CodecModule(cfg, {"stage": 2, "total_steps": 100})
    with_aux = CodecModule(cfg, {"stage": 2, "total_steps": 100, "w_aux": 10.0})
    with_aux.load_state_dict(plain.state_dict())
    base, total = plain._stage2_loss(x), with_aux._stage2_loss(x)  # same seed, same noise draws
    assert float(total.detach()) > float(base.detach()) + 1.0
    total.backward()
    assert all(p.grad is None for p in with_aux.codec.upsampler.parameters())


def test_held_out_metrics_are_those_of_eval_codec(render_notes):
    """The metrics.csv columns are the per-clip means of the `diffariff eval codec` metrics."""
    from diffariff.eval.codec_eval import clip_metrics

    module = CodecModule(asdict(tiny_codec().config), {"stage": 1})
    x = _clips(render_notes)
    module.held_out = x
    row = module.evaluate(0)
    with torch.no_grad():
        y = module.ema.decode(module.ema.encode(x), steps=1, seed=0, mode="deterministic")[..., : x.shape[-1]]
    scores = [clip_metrics(a.numpy(), b.numpy()) for a, b in zip(x, y)]
    assert row["det_mrstft"] == pytest.approx(np.mean([s["mr_stft"] for s in scores]), abs=6e-5)
    assert row["det_logmel_l1"] == pytest.approx(np.mean([s["log_mel"] for s in scores]), abs=6e-5)
    assert row["det_pitch"] == pytest.approx(np.mean([s["pitch_class"] for s in scores]), abs=1e-3)
    assert row["det_mrstft"] > 0.1 and row["det_logmel_l1"] > 0.1  # an untrained codec is far off


def test_crop_stream_skips_silence_and_is_seeded():
    loud = (np.sin(np.arange(48_000) * 0.05) * 0.5).astype(np.float16)[None]
    silent = np.zeros((1, 48_000), np.float16)
    crops = [c for _, c in zip(range(20), CropStream([loud, silent], 4096, 1, -50.0, 0.0))]
    assert all(float(c.abs().max()) > 0.1 for c in crops)
    again = [c for _, c in zip(range(20), CropStream([loud, silent], 4096, 1, -50.0, 0.0))]
    assert all(torch.equal(a, b) for a, b in zip(crops, again))


def test_recipe_option_offers_the_trainers_recipes():
    """``--recipe``'s choices (named in the light options module) are the trainer's recipes."""
    assert CODEC_RECIPES == tuple(sorted(RECIPES))


def _args(**kw) -> argparse.Namespace:
    return parse_options(codec_arguments, **kw)


def test_train_codec_command_end_to_end(render_notes, tmp_path, capsys):
    data = tmp_path / "corpus"
    for i, (prog, pitches) in enumerate([(0, [60, 64, 67]), (33, [36, 40, 43]), (73, [72, 76, 79])]):
        song = data / f"song_{i}"
        song.mkdir(parents=True)
        sf.write(song / "keys.flac", render_notes(prog, pitches, seconds=1.0).T, 48_000)
        sf.write(song / "bass.flac", render_notes(33, [p - 24 for p in pitches], seconds=1.0).T, 48_000)
    cfg = tmp_path / "tiny.json"
    cfg.write_text(json.dumps(asdict(CodecConfig(**TINY))))
    run_dir = tmp_path / "run"
    common = dict(data=data, out=run_dir, batch_size=2, crop_seconds=0.35, eval_every=2, eval_seconds=0.5)
    assert run(_args(config=cfg, max_steps=2, **common)) == 0
    assert (run_dir / "last.ckpt").is_file()
    rows = list(csv.DictReader((run_dir / "metrics.csv").open()))
    assert rows[-1]["step"] == "2" and float(rows[-1]["det_logmel_l1"]) > 0
    export = run_dir / "codec_ema.safetensors"
    codec = Codec.load(export)
    assert codec.config == CodecConfig(**TINY) and codec.latent_scale != pytest.approx(1 / 0.06)
    assert run(_args(config=cfg, max_steps=3, resume=True, **common)) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["steps"] == 3
    with pytest.raises(InputError):
        run(_args(stage=2, max_steps=1, **{**common, "out": tmp_path / "run2"}))
    with pytest.raises(ConfigError):  # the noise range is a stage-2 setting
        run(_args(config=cfg, sigma_max=2.0, max_steps=1, **{**common, "out": tmp_path / "run2"}))
    assert run(_args(stage=2, init=export, sigma_max=2.0, max_steps=1, **{**common, "out": tmp_path / "run2"})) == 0
    stage2 = Codec.load(tmp_path / "run2" / "codec_ema.safetensors")
    assert stage2.config.sigma_data != CodecConfig(**TINY).sigma_data  # measured from the residual
    assert stage2.config.sigma_max == 2.0  # recorded in the export, so decoding starts from the trained level
    room = list(csv.DictReader((tmp_path / "run2" / "metrics.csv").open()))[-1]["con_twice_sisdr"]
    assert 0.0 < float(room) < 140.0  # two seeds give two different (but related) decodings
    # the phase-aligned target: |X - D| >= ||X| - |D||, so its residual (and sigma_data) is smaller
    with pytest.raises(ConfigError):
        run(_args(config=cfg, align_phase=1, max_steps=1, **{**common, "out": tmp_path / "run2a"}))
    assert run(_args(stage=2, init=export, align_phase=1, max_steps=1, **{**common, "out": tmp_path / "run2a"})) == 0
    aligned = Codec.load(tmp_path / "run2a" / "codec_ema.safetensors")
    assert 0 < aligned.config.sigma_data < stage2.config.sigma_data
    # decoder-only fine-tune of an export: needs --init; keeps the encoder and the latent statistics
    with pytest.raises(ConfigError):
        run(_args(freeze_encoder=True, max_steps=1, **{**common, "out": tmp_path / "run3"}))
    assert run(_args(init=export, recipe="magphase", freeze_encoder=True, max_steps=2,
                     **{**common, "out": tmp_path / "run3"})) == 0
    tuned, start = Codec.load(tmp_path / "run3" / "codec_ema.safetensors"), Codec.load(export)
    assert float(tuned.latent_std) == float(start.latent_std) and float(tuned.latent_mean) == float(start.latent_mean)
    for name, w in start.encoder.state_dict().items():  # bit for bit (not even 0.0 -> -0.0)
        assert torch.equal(tuned.encoder.state_dict()[name].view(torch.int32), w.view(torch.int32)), name
    assert not torch.equal(tuned.upsampler.head.conv.weight, start.upsampler.head.conv.weight)
    # warm start in a new config (demodulated front end + sub-frame embedding) with the pitch recipe
    framed = tmp_path / "framed.json"
    framed.write_text(json.dumps(asdict(CodecConfig(**TINY, demodulate=True, subframe_embedding=True))))
    assert run(_args(init=export, config=framed, recipe="pitch", max_steps=2,
                     **{**common, "out": tmp_path / "run4"})) == 0
    moved = Codec.load(tmp_path / "run4" / "codec_ema.safetensors")
    assert moved.config.demodulate and moved.config.subframe_embedding
    assert float(moved.upsampler.subframe.detach().abs().max()) > 0  # trained from its zero start
    assert not torch.equal(moved.encoder.patch.conv.weight, start.encoder.patch.conv.weight)
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps(asdict(CodecConfig(**{**TINY, "enc_channels": (16, 16, 16, 32)}))))
    with pytest.raises(ConfigError, match="do not fit"):
        run(_args(init=export, config=wrong, max_steps=1, **{**common, "out": tmp_path / "run5"}))
    with pytest.raises(ConfigError, match="only applies"):
        run(_args(init=export, config=framed, freeze_encoder=True, max_steps=1, **{**common, "out": tmp_path / "run6"}))


def test_stage2_energy_weight_pairs_each_clip_with_a_second_decoding(render_notes, tmp_path):
    """``--energy-weight``: the batch becomes pairs (one clip, one noise level, two noises) and the
    energy score of the pair's reconstructions joins the loss; the U-Net gets its gradient."""
    torch.manual_seed(0)
    cfg = asdict(tiny_codec().config)
    x = torch.cat([_clips(render_notes), _clips(render_notes).flip(0)])  # 4 clips
    module = CodecModule(cfg, {"stage": 2, "total_steps": 100, "w_energy": 100.0})
    seen = []
    original = module.codec.denoise

    def spy(y_t, sigma, det, pyramid, unet=None):
        seen.append((sigma.clone(), det.clone()))
        return original(y_t, sigma, det, pyramid, unet=unet)

    module.codec.denoise = spy
    loss = module._stage2_loss(x)
    sigma, det = seen[0]  # the student's call
    assert torch.equal(sigma[:2], sigma[2:]) and torch.equal(det[:2], det[2:])
    faint = CodecModule(cfg, {"stage": 2, "total_steps": 100, "w_energy": 1e-9})  # same pairs, same noise
    faint.load_state_dict(module.state_dict())
    assert float(loss.detach()) > float(faint._stage2_loss(x).detach()) + 0.5
    loss.backward()
    assert module.codec.unet.head.conv.weight.grad is not None
    with pytest.raises(ConfigError, match="batch-size >= 2"):
        run(_args(stage=2, init=tmp_path / "none.safetensors", batch_size=1, energy_weight=1.0,
                  data=tmp_path, out=tmp_path / "run"))
    with pytest.raises(ConfigError, match=">= 0"):
        run(_args(stage=2, init=tmp_path / "none.safetensors", aux_weight=-1.0, data=tmp_path, out=tmp_path / "run"))
