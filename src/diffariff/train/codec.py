"""``diffariff train codec``: the codec's two-stage training.

* Stage 1: encoder + upsampler with the deterministic head. Two loss recipes (``--recipe``):
  ``complex``: complex L1 on the compressed spectrogram + multi-resolution STFT loss
  (magnitude, log-magnitude, compressed complex) on the waveform after the exact inverse STFT;
  ``magphase``: magnitude (linear + log L1) and magnitude-weighted phase losses on the compressed
  spectrogram + the multi-resolution STFT magnitude terms + log mel-band energies per frame of the
  waveform. ``complex`` left decoded stems 5-25 dB too quiet (bin-wise losses under uncertainty
  predict little energy where a harmonic may lie); the band-energy term asks for the right energy
  per band and frame. ``pitch``: ``magphase`` plus the phase differences across frames and bins
  (:func:`~diffariff.codec.losses.phase_derivative_loss`), an 8192-point resolution in the
  multi-resolution term and log energies in semitone bands (:func:`~diffariff.codec.losses.semitone_band_loss`);
  ``magphase``'s decoder kept the envelope but lost the notes.
  ``--note-weight`` adds a latent term to any recipe: a linear read-out (a 1x1 convolution, trained with
  the codec and not exported) of each latent frame must predict that frame's semitone-band profile
  (:func:`~diffariff.codec.losses.latent_note_loss`), so the notes are linearly in the latents. It
  changes the latent space, so it needs the encoder to train.
  ``--freeze-encoder`` trains the decoder side only: the latents, and hence every latent model
  trained on them, stay valid (the export keeps the initial latent statistics).
* Stage 2 (initialised from a stage-1 export): encoder and upsampler frozen; the consistency U-Net
  learns the residual over the deterministic reconstruction by improved consistency training
  (pseudo-Huber distance in fp32, log-normal interval sampling with extra high-noise draws, N(k)
  doubling from 10 to 1280 intervals, weight sigma_{i+1} / (sigma_{i+1} - sigma_i), teacher = EMA of
  the student with the CT decay mu(k) = exp(s0 log mu0 / N(k)); mu0 = 0 makes it stop-grad iCT).
  Optional terms on the decoder's reconstruction ``det + student``: ``--aux-weight``, a magnitude-only
  term (see :meth:`CodecModule._magnitude_terms`), and ``--energy-weight``, the energy score of two
  decodings of each clip (the batch becomes pairs: one clip, one noise level, two noises). Both exist
  because the young consistency decoder drifts toward "less energy"; their measured effect is in
  docs/experiments.md. ``--align-phase FRAMES`` changes the target instead: the true spectrogram phase-aligned to
  the deterministic one (:func:`~diffariff.codec.losses.phase_aligned`), so the residual holds what the
  latent determines and not a phase field whose posterior mean is ~0.

Data (:mod:`diffariff.train.audio_crops`): random crops of 48 kHz stems *and* mixtures (the sum of a
song's stems) decoded into RAM once as float16; near-silent crops are mostly skipped; songs of split
"test"/"valid" are held out and used for the evaluation written to ``RUN/metrics.csv``: held-out log-mel
L1 (``*_logmel_l1``) and MR-STFT distance (``*_mrstft``) of the EMA codec, as defined in
:mod:`diffariff.eval.reconstruction` (the metrics ``diffariff eval codec`` reports), averaged over the
held-out clips.

This module holds the Lightning module (:class:`CodecModule`: both stages' losses, EMA, evaluation,
export) and :func:`run`; the recipes and every training setting (:class:`CodecTrainConfig`) are in
:mod:`diffariff.train.codec_train_config`. Shared training machinery (EMA step, warm-up + cosine
schedule, Trainer, ``last.ckpt`` resume, CSV writer) comes from :mod:`diffariff.train.common`.

Run folder: ``last.ckpt`` (Lightning, resumable with ``--resume``), ``codec_config.json``,
``metrics.csv``, and the EMA export ``codec_ema.safetensors`` (fp16) or ``--export PATH``.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import sys
import time
from argparse import Namespace
from pathlib import Path

import lightning as L
import numpy as np
import torch
from torch import nn

from ..checkpoint import config_from_dict, config_to_dict, load_checkpoint, load_config_file
from ..codec import Codec, CodecConfig
from ..codec import consistency as ct
from ..codec.losses import (
    PITCH_RESOLUTIONS,
    RESOLUTIONS,
    band_energy_loss,
    complex_l1,
    energy_score,
    latent_note_loss,
    magnitude_loss,
    mr_stft_loss,
    phase_aligned,
    phase_derivative_loss,
    phase_loss,
    semitone_band_loss,
    semitone_bands,
)
from ..errors import ConfigError, InputError
from ..eval.codec_eval import clip_metrics
from ..eval.reconstruction import si_sdr
from ..fsutil import write_json_atomic
from ..torchutil import setup_cpu
from .audio_crops import CropStream, held_out_batch, load_training_audio
from .codec_train_config import RECIPES, CodecTrainConfig
from .common import adamw_with_schedule, build_trainer, ema_decay, ema_update_, fit, write_rows_csv

#: metrics.csv columns per decode mode: (column suffix, key of ``clip_metrics``, decimals).
METRIC_COLUMNS = (("logmel_l1", "log_mel", 4), ("mrstft", "mr_stft", 4), ("level_db", "level_db", 2),
                  ("band_db", "band_db", 2), ("pitch", "pitch_class", 3))


# -------------------------------------------------------------------------------------------- module
class CodecModule(L.LightningModule):
    """Lightning wrapper: holds the codec, its EMA copy (what gets exported) and the CT teacher."""

    def __init__(self, codec_config: dict, train_config: dict):
        super().__init__()
        self.save_hyperparameters()
        self.cfg = config_from_dict(CodecConfig, dict(codec_config))
        self.tcfg = CodecTrainConfig(**train_config)
        self.codec = Codec(self.cfg)
        self.ema = copy.deepcopy(self.codec).requires_grad_(False)
        self.teacher = copy.deepcopy(self.codec.unet).requires_grad_(False) if self.tcfg.stage == 2 else None
        if self.tcfg.w_note and (self.tcfg.stage != 1 or self.tcfg.freeze_encoder):
            raise ConfigError("the latent note term (--note-weight) trains the encoder: stage 1 without --freeze-encoder")
        # training-only read-out of the latent note term (not part of the codec, never exported)
        self.note_head = nn.Conv1d(self.cfg.latent_dim, semitone_bands(), 1) if self.tcfg.w_note else None
        if self.note_head is not None:  # starts at the zero prediction: no random read-out steers the encoder
            nn.init.zeros_(self.note_head.weight)
            nn.init.zeros_(self.note_head.bias)
        if self.tcfg.stage == 2:
            trainable = (self.codec.unet,)
        elif self.tcfg.freeze_encoder:
            trainable = (self.codec.upsampler,)
        else:
            trainable = (self.codec.encoder, self.codec.upsampler)
        self.codec.requires_grad_(False)
        for m in trainable:
            m.requires_grad_(True)
        self.held_out: torch.Tensor | None = None
        self.metrics_path: Path | None = None
        self.rows: list[dict] = []
        self._losses: list[float] = []
        self._note_losses: list[float] = []  # the latent note term's values since the last evaluation
        self._t0 = time.time()

    # training ------------------------------------------------------------------------------------
    def training_step(self, batch: torch.Tensor, batch_idx: int) -> torch.Tensor:
        loss = self._stage1_loss(batch) if self.tcfg.stage == 1 else self._stage2_loss(batch)
        self._losses.append(float(loss.detach()))
        self.log("loss", loss.detach(), prog_bar=True)
        return loss

    def _stage1_loss(self, x: torch.Tensor) -> torch.Tensor:
        t = self.tcfg
        with torch.no_grad():
            spec = self.codec.spectrogram(x)
            # one note profile per crop serves the encoder's note input and the note term's target
            profile = self.codec.note_profiles(x) if t.w_note or self.cfg.note_input else None
        with torch.set_grad_enabled(not t.freeze_encoder):  # a frozen encoder needs no graph
            latents = self.codec.encode_prepared(x, spec, profile)
        _, det = self.codec.upsampler(latents)
        det = det.float()
        y = self.codec.audio_from_spectrogram(det)
        with torch.autocast("cpu", enabled=False):
            loss = t.w_complex * complex_l1(det, spec)
            if t.w_mag:
                loss = loss + t.w_mag * magnitude_loss(det, spec)
            if t.w_phase:
                loss = loss + t.w_phase * phase_loss(det, spec)
            if t.w_dphase:
                loss = loss + t.w_dphase * phase_derivative_loss(det, spec)
            loss = loss + t.w_mrstft * mr_stft_loss(y.flatten(0, 1), x.flatten(0, 1), t.w_mrstft_complex,
                                                    PITCH_RESOLUTIONS if t.hires else RESOLUTIONS)
            if t.w_band:
                loss = loss + t.w_band * band_energy_loss(y.flatten(0, 1), x.flatten(0, 1), self.cfg.sample_rate)
            if t.w_semitone:
                loss = loss + t.w_semitone * semitone_band_loss(y.flatten(0, 1), x.flatten(0, 1), self.cfg.sample_rate)
            if t.w_wave:
                loss = loss + t.w_wave * (y - x).abs().mean()
            if t.w_note:
                frames = min(profile.shape[-1], latents.shape[-1])
                read_out = self.note_head(latents.float()[..., :frames])
                note = latent_note_loss(read_out, profile[..., :frames])
                self._note_losses.append(float(note.detach()))
                loss = loss + t.w_note * note
        return loss

    def _stage2_loss(self, x: torch.Tensor) -> torch.Tensor:
        t, c = self.tcfg, self.cfg
        batch, half = x.shape[0], x.shape[0] // 2
        if t.w_energy:  # pairs: only the first half's clips are used (each twice), so only they are encoded
            x = x[:half]
        with torch.no_grad():
            spec, pyramid, det, residual = stage2_residual(self.codec, x, t.align_frames)
        g = torch.Generator().manual_seed(t.seed * 100_003 + int(self.global_step))
        n = ct.discretisation_steps(int(self.global_step), t.total_steps, t.ct_s0, t.ct_s1)
        s_lo, s_hi = ct.sample_intervals(n, batch, g, c.sigma_min, c.sigma_max, c.rho,
                                         high_fraction=t.ct_high_fraction)
        if t.w_energy:  # the second half repeats the first half's clips and noise levels (fresh noise)
            x, spec, det, residual = (torch.cat([v, v]) for v in (x, spec, det, residual))
            pyramid = [torch.cat([p, p]) for p in pyramid]
            s_lo, s_hi = torch.cat([s_lo[:half], s_lo[:half]]), torch.cat([s_hi[:half], s_hi[:half]])
        noise = torch.randn(residual.shape, generator=g)
        bc = (slice(None), None, None, None)
        student = self.codec.denoise(residual + s_hi[bc] * noise, s_hi, det, pyramid)
        with torch.no_grad():
            teacher_net = self.teacher if t.teacher_mu0 > 0 else self.codec.unet
            target = self.codec.denoise(residual + s_lo[bc] * noise, s_lo, det, pyramid, unet=teacher_net)
        with torch.autocast("cpu", enabled=False):
            w = ct.interval_weight(s_lo, s_hi)
            loss = (w * ct.pseudo_huber(student.float(), target.float())).mean() / c.sigma_data
            if t.w_aux:
                loss = loss + t.w_aux * self._magnitude_terms(det + student.float(), spec, x)
            if t.w_energy:
                rec = det + student.float()
                loss = loss + t.w_energy * energy_score(rec[:half], rec[half:], spec[:half])
        return loss

    def _magnitude_terms(self, spec_hat: torch.Tensor, spec: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Stage 2's auxiliary term: the reconstruction ``spec_hat = det + student [B, S, F, T]`` scored on
        magnitudes only (compressed-spectrogram magnitude L1 + log L1, multi-resolution STFT magnitudes
        and 2 x log mel-band energies of its waveform against the clip ``x [B, C, N]``). Phase is free,
        so a sample with any plausible phase scores as well as the true one; what it forbids is the
        consistency model's early drift to the residual's posterior mean, which removes energy."""
        y = self.codec.audio_from_spectrogram(spec_hat)[..., : x.shape[-1]].flatten(0, 1)
        ref = x.flatten(0, 1).float()
        return (magnitude_loss(spec_hat, spec) + mr_stft_loss(y, ref, complex_weight=0.0)
                + 2.0 * band_energy_loss(y, ref, self.cfg.sample_rate))

    def on_train_batch_end(self, outputs, batch, batch_idx) -> None:
        t, step = self.tcfg, int(self.global_step)
        ema_update_(self.ema, self.codec, ema_decay(t.ema_decay, step))  # warm-up: early exports are not init
        if self.teacher is not None and t.teacher_mu0 > 0:  # CT teacher: mu(k), no warm-up
            n = ct.discretisation_steps(step, t.total_steps, t.ct_s0, t.ct_s1)
            ema_update_(self.teacher, self.codec.unet, math.exp(t.ct_s0 * math.log(t.teacher_mu0) / n))
        if t.eval_every and step % t.eval_every == 0:
            self.evaluate(step)

    # evaluation ----------------------------------------------------------------------------------
    @torch.no_grad()
    def evaluate(self, step: int) -> dict:
        """Held-out metrics of the EMA codec; appends a row to ``metrics.csv`` (rewritten atomically).

        Per decode mode (``det``, and ``con`` in stage 2): the mean over the held-out clips ``[C, n]`` of
        the :func:`~diffariff.eval.codec_eval.clip_metrics` that ``diffariff eval codec`` reports (log-mel
        L1, MR-STFT distance, level / octave-band errors, pitch-class correlation; see ``METRIC_COLUMNS``)."""
        row = {"step": step, "minutes": round((time.time() - self._t0) / 60, 2),
               "train_loss": round(float(np.mean(self._losses)) if self._losses else float("nan"), 5),
               "lr": float(self.optimizers().param_groups[0]["lr"]) if self._trainer is not None else float("nan")}
        self._losses = []
        if self.note_head is not None:
            row["train_note"] = round(float(np.mean(self._note_losses)) if self._note_losses else float("nan"), 5)
            self._note_losses = []
        if self.held_out is not None:
            x = self.held_out
            modes = ["deterministic"] if self.tcfg.stage == 1 else ["deterministic", "consistency"]
            self.ema.eval()
            with torch.autocast("cpu", enabled=False):
                z = self.ema.encode(x)
                for mode in modes:
                    y = self.ema.decode(z, steps=1, seed=0, mode=mode)[..., : x.shape[-1]]
                    # held-out clips [C, n] are already in the codec's channels; one call scores each clip
                    scores = [clip_metrics(a.numpy(), b.numpy()) for a, b in zip(x, y)]
                    for column, metric, digits in METRIC_COLUMNS:
                        row[f"{mode[:3]}_{column}"] = round(float(np.mean([c[metric] for c in scores])), digits)
                    if mode == "consistency":  # the room pseudo-stereo has: a second decoding, another seed
                        y2 = self.ema.decode(z, steps=1, seed=1, mode=mode)[..., : x.shape[-1]]
                        row["con_twice_sisdr"] = round(float(np.mean(
                            [si_sdr(a.numpy(), b.numpy()) for a, b in zip(y, y2)])), 2)
                if self.note_head is not None:
                    row["heldout_note"] = round(self._held_out_note_loss(x), 5)
        self.rows.append(row)
        if self.metrics_path is not None:
            write_rows_csv(self.metrics_path, self.rows)
        print("codec eval " + " ".join(f"{k}={v}" for k, v in row.items()), file=sys.stderr, flush=True)
        return row

    def _held_out_note_loss(self, x: torch.Tensor) -> float:
        """The latent note term on held-out clips ``[C, channels, n]``: the training read-out applied to
        the live encoder's latents (the ones it is trained with). Falling with ``train_note`` means the
        notes the latents gain generalise to unseen songs."""
        was_training = self.codec.training
        self.codec.eval()
        try:
            latents = self.codec.encode(x).float()
        finally:
            self.codec.train(was_training)
        profile = self.codec.note_profiles(x)  # held-out clips are already in the codec's channels
        frames = min(profile.shape[-1], latents.shape[-1])
        return float(latent_note_loss(self.note_head(latents[..., :frames]), profile[..., :frames]))

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["codec_metrics_rows"] = self.rows

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self.rows = list(checkpoint.get("codec_metrics_rows", []))

    # optimisation --------------------------------------------------------------------------------
    def configure_optimizers(self):
        t = self.tcfg  # the codec in one group (weight decay on everything), the note read-out in its own
        head = [] if self.note_head is None else [
            {"params": self.note_head.parameters(), "lr": t.lr * t.note_lr_scale, "weight_decay": 0.0}]
        return adamw_with_schedule(self.codec, t.lr, t.total_steps, t.warmup_steps, (0.9, 0.99), t.weight_decay,
                                   t.min_lr_ratio, split_decay=False, extra_groups=head)

    # export ---------------------------------------------------------------------------------------
    @torch.no_grad()
    def measure_latent_stats(self, batches: list[torch.Tensor]) -> None:
        """Set the EMA codec's latent mean/std buffers from the latents of ``batches`` (kept as they are
        when the encoder is frozen: latent models trained on the initial codec rely on them)."""
        if self.tcfg.freeze_encoder or self.tcfg.stage == 2:
            return
        zs = torch.cat([self.ema.encode(b).flatten() for b in batches])
        self.ema.latent_mean.fill_(float(zs.mean()))
        self.ema.latent_std.fill_(float(zs.std().clamp_min(1e-4)))

    def export(self, path: Path, batches: list[torch.Tensor]) -> Path:
        # frozen parts are exported bit for bit (an EMA of constants can round them or flip 0.0 to -0.0)
        frozen = ["encoder"] if self.tcfg.freeze_encoder else []
        frozen += ["encoder", "upsampler"] if self.tcfg.stage == 2 else []
        for name in set(frozen):
            getattr(self.ema, name).load_state_dict(getattr(self.codec, name).state_dict())
        self.measure_latent_stats(batches)
        return self.ema.save(path, dtype=torch.float16,
                             extra={"stage": self.tcfg.stage, "step": int(self.global_step)})


def stage2_residual(codec: Codec, x: torch.Tensor, align_frames: int):
    """Clips ``x [B, A, N]`` (prepared) -> (spec, pyramid, det, residual): the compressed spectrogram, the
    upsampler's feature pyramid and deterministic spectrogram (float32), and what stage 2 learns, ``target -
    det`` ``[B, S, F, T]``. The target is ``spec``, or with ``align_frames`` > 0 ``spec`` phase-aligned to
    ``det`` (:func:`phase_aligned`), so the residual holds what the latent determines, not an unknowable phase."""
    spec = codec.spectrogram(x)
    pyramid, det = codec.upsampler(codec.encode_prepared(x, spec))
    det = det.float()
    target = phase_aligned(spec, det, align_frames) if align_frames > 0 else spec
    return spec, pyramid, det, target - det


# ----------------------------------------------------------------------------------------------- CLI
def _codec_config(args: Namespace, run_dir: Path) -> tuple[CodecConfig, dict | None]:
    """The run's codec config and the weights to start from: for stage 2 the stage-1 export; for
    stage 1 an optional export to continue from (e.g. the bundled default codec on a machine without
    its training state in ``runs/``)."""
    saved = run_dir / "codec_config.json"
    if args.resume and saved.is_file():
        return load_config_file(CodecConfig, saved), None
    init = None
    if args.stage == 2 and not args.init:
        raise InputError("--stage 2 needs --init STAGE1_EXPORT.safetensors")
    if args.init:
        ck = load_checkpoint(args.init, kind="codec")
        cfg = config_from_dict(CodecConfig, ck.config)
        init = ck.tensors
        if args.config:  # stage 1: start from the weights, train with this config (e.g. a new front end)
            if args.stage == 2 or args.freeze_encoder:
                raise ConfigError("--config with --init only applies to stage 1 without --freeze-encoder")
            cfg = load_config_file(CodecConfig, args.config)
    else:
        cfg = load_config_file(CodecConfig, args.config) if args.config else CodecConfig()
    return cfg, init


def run(args: Namespace) -> int:
    setup_cpu()
    if not args.note_lr_scale > 0:
        raise ConfigError(f"--note-lr-scale must be > 0, got {args.note_lr_scale}")
    if args.aux_weight < 0 or args.energy_weight < 0 or args.note_weight < 0:
        raise ConfigError("--aux-weight, --energy-weight and --note-weight must be >= 0")
    if args.sigma_max is not None and (args.stage != 2 or not args.sigma_max > 0.01):
        raise ConfigError("--sigma-max applies to --stage 2 and must be > 0.01 (the codec's sigma_min is 0.002)")
    if args.align_phase < 0 or (args.align_phase and args.stage != 2):
        raise ConfigError("--align-phase applies to --stage 2 and must be >= 0 frames")
    if args.energy_weight and args.batch_size < 2:
        raise ConfigError("--energy-weight needs --batch-size >= 2 (pairs of decodings of one clip)")
    torch.manual_seed(args.seed)
    run_dir = Path(args.out)
    run_dir.mkdir(parents=True, exist_ok=True)
    cfg, init = _codec_config(args, run_dir)
    total = args.total_steps or args.max_steps or 20_000
    tcfg = CodecTrainConfig(stage=args.stage, batch_size=args.batch_size, crop_seconds=args.crop_seconds,
                            lr=args.lr or (3e-4 if args.stage == 1 else 1e-4), total_steps=total,
                            eval_every=args.eval_every, eval_seconds=args.eval_seconds, seed=args.seed,
                            warmup_steps=min(200, max(1, total // 10)), freeze_encoder=args.freeze_encoder,
                            w_aux=args.aux_weight, w_energy=args.energy_weight, w_note=args.note_weight,
                            note_lr_scale=args.note_lr_scale, align_frames=args.align_phase,
                            **RECIPES[args.recipe])
    if tcfg.freeze_encoder and init is None and not args.resume:
        raise ConfigError("--freeze-encoder needs --init CODEC.safetensors (a trained encoder to keep)")
    if tcfg.batch_size < 1 or tcfg.crop_seconds <= 0:
        raise ConfigError("--batch-size must be >= 1 and --crop-seconds > 0")
    train, held = load_training_audio(args.data, args.real, cfg.audio_channels, cfg.sample_rate,
                                      held_seconds=tcfg.eval_seconds + 1, seed=args.seed)
    spf = cfg.samples_per_frame
    crop = max(spf, int(tcfg.crop_seconds * cfg.sample_rate) // spf * spf)
    stream = CropStream(train, crop, args.seed, tcfg.silence_dbfs, tcfg.keep_silent_prob)
    loader = torch.utils.data.DataLoader(stream, batch_size=tcfg.batch_size, num_workers=0)
    probe = [torch.stack([t for _, t in zip(range(tcfg.batch_size), iter(CropStream(
        train, crop, args.seed + 1, tcfg.silence_dbfs, 0.0)))])]

    if init is not None and args.stage == 2:  # sigma_data of stage 2 from the measured residual
        tmp = Codec(cfg)
        tmp.load_state_dict(init, strict=False)
        with torch.no_grad():
            res = stage2_residual(tmp, tmp.prepare_audio(probe[0])[0], tcfg.align_frames)[3]
        cfg = dataclasses.replace(cfg, sigma_data=round(float(res.std()), 4))
        if args.sigma_max is not None:
            cfg = dataclasses.replace(cfg, sigma_max=float(args.sigma_max))
        print(f"codec stage 2: measured residual std (sigma_data) = {cfg.sigma_data}", file=sys.stderr)
    write_json_atomic(run_dir / "codec_config.json", config_to_dict(cfg))

    module = CodecModule(config_to_dict(cfg), dataclasses.asdict(tcfg))
    if init is not None:
        try:  # weights the config lacks or adds (e.g. the sub-frame embedding) keep their initial values
            module.codec.load_state_dict(init, strict=False)
        except RuntimeError as exc:
            raise ConfigError(f"--init weights do not fit the codec config: {str(exc).splitlines()[-1].strip()}") from None
        module.ema.load_state_dict(module.codec.state_dict())
        if module.teacher is not None:
            module.teacher.load_state_dict(module.codec.unet.state_dict())
    module.held_out = held_out_batch(held, tcfg.eval_clips, tcfg.eval_seconds, spf, cfg.sample_rate)
    module.metrics_path = run_dir / "metrics.csv"

    trainer = build_trainer(run_dir, max_steps=args.max_steps or (None if args.max_minutes else total),
                            max_minutes=args.max_minutes, precision=args.precision, checkpoint_every=tcfg.ckpt_every,
                            grad_clip=None, log_every_n_steps=10)
    fit(trainer, module, loader, run_dir, args.resume)
    if not module.rows or module.rows[-1]["step"] != int(module.global_step):
        module.evaluate(int(module.global_step))
    out = Path(args.export) if args.export else run_dir / "codec_ema.safetensors"
    module.export(out, probe)
    summary = {"stage": args.stage, "steps": int(module.global_step), "export": str(out),
               "latent_std": float(module.ema.latent_std), "last_eval": module.rows[-1] if module.rows else None}
    print(json.dumps(summary), flush=True)
    return 0
