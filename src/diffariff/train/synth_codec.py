"""``diffariff train synth-codec``: train the synth codec (:mod:`diffariff.codec.synth_codec`) end to end.

One stage, no adversary: encoder and decoder learn together from spectral losses on the synthesised
waveform (bank decoder) or on the predicted magnitudes (stftmag decoder):

* multi-resolution STFT magnitude (linear + log L1, 256 .. 8192-point windows; the 8192-point one has
  5.9 Hz bins and so tells bass notes apart),
* log mel-band energies per frame (the right energy per band even where a partial's exact bin is unsure),
* log energies in semitone bands of an 8192-point STFT (the notes).

The stftmag arm has no waveform in training: it scores its log-magnitudes against the true 2048-point
|STFT| (log L1 + spectral convergence); its audio comes from Griffin-Lim only at evaluation.

Data: random crops (RAM, float16, mono) of every stem and mixture of the corpus folders given with
``--data`` (held out: songs of split test / valid) and of spans of real recordings in the plain-mixture
folders given with ``--real`` (:mod:`diffariff.data.mixtures`; held out: their test split). Every
``--eval-every`` steps the EMA codec is scored on fixed held-out clips (log-mel L1, MR-STFT, pitch-class
correlation, as :func:`diffariff.eval.codec_eval.clip_metrics` defines them) into ``RUN/metrics.csv``.

``--init CODEC`` starts from an exported synth codec (its config; ``--set`` may change only decoder-side
fields then). With ``--freeze-encoder`` only the decoder side (:data:`~diffariff.codec.synth_codec.DECODER_PREFIXES`)
learns: the encoder runs without a graph, the export copies it and the latent statistics bit for bit, so the
codec keeps its identity (:func:`~diffariff.diffusion.model.model_identity`) and every latent model, latent
cache and pitch critic made with the initial codec stays valid.

Run folder: ``last.ckpt`` (resumable with ``--resume``), ``metrics.csv``, the EMA export
``synth_codec.safetensors`` (fp32; ``--export PATH`` for another place, fp16 with ``--fp16``).
"""

from __future__ import annotations

import copy
import json
import math
import time
from argparse import Namespace
from dataclasses import asdict, dataclass
from pathlib import Path

import lightning as L
import numpy as np
import torch

from ..checkpoint import config_from_dict, load_checkpoint, load_state_into
from ..codec.losses import PITCH_RESOLUTIONS, band_energy_loss, mr_stft_loss, semitone_band_loss
from ..codec.synth_codec import DECODER_ONLY_FIELDS, DECODER_PREFIXES, KIND, SynthCodec, SynthCodecConfig
from ..errors import ConfigError
from .audio_crops import CropStream, held_out_batch, load_training_audio
from .common import adamw_with_schedule, build_trainer, ema_update_, fit, write_rows_csv


@dataclass
class SynthTrainConfig:
    batch_size: int = 8
    crop_seconds: float = 1.5
    lr: float = 5e-4
    min_lr_ratio: float = 0.1
    warmup_steps: int = 200
    total_steps: int = 40_000
    ema_decay: float = 0.998
    w_mrstft: float = 1.0
    w_mel: float = 1.0
    w_semitone: float = 1.0
    w_bank_shape: float = 0.0  # bank decoder: oscillator log-levels follow the input's 1/3-semitone band shape
    w_bank_level: float = 0.0  # bank decoder: oscillators on the input's partials sound at the partials' level
    eval_every: int = 200
    eval_clips: int = 8
    eval_seconds: float = 4.0
    ckpt_every: int = 200
    silence_dbfs: float = -50.0
    keep_silent_prob: float = 0.05
    real_spans: int = 600
    real_span_seconds: float = 8.0
    seed: int = 0
    freeze_encoder: bool = False  # train the decoder side only (needs --init): the latents stay as they are


def stftmag_loss(codec: SynthCodec, controls: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Log-magnitude L1 + spectral convergence of the stftmag decoder's output ``[B, F, T]`` against the
    true centred 2048-point |STFT| of ``x [B, 1, N]`` (first T frames)."""
    c = codec.config
    spec = torch.stft(x[:, 0].float(), c.stft_fft, c.feature_hop, window=torch.hann_window(c.stft_fft),
                      center=True, return_complex=True).abs()[..., : controls.shape[-1]]
    log_true = torch.log(spec.clamp_min(1e-8)).clamp(-18.0, 2.0)
    mag = controls.exp()
    sc = (mag - spec).norm() / spec.norm().clamp_min(1e-6)
    return (controls - log_true).abs().mean() + sc


def _band_shape(log_levels: torch.Tensor, half_width: int) -> torch.Tensor:
    """``[B, K, T]`` -> the same minus its moving average over ``2 half_width + 1`` bands (edges repeated):
    level and spectral envelope removed, the peaks (notes and their partials) left."""
    padded = torch.nn.functional.pad(log_levels, (0, 0, half_width, half_width), mode="replicate")
    b, k, t = padded.shape
    avg = torch.nn.functional.avg_pool1d(padded.transpose(1, 2).reshape(b * t, 1, k), 2 * half_width + 1, 1)
    return log_levels - avg.reshape(b, t, -1).transpose(1, 2)


def bank_shape_loss(codec: SynthCodec, controls: torch.Tensor, feats: torch.Tensor) -> torch.Tensor:
    """A direct pitch target for the bank decoder. The front end's 1/3-semitone band energies ``E`` (same grid
    as the oscillators) say which oscillators should sound; the spectral losses on the waveform say it only
    through the synthesiser. Shapes only (an octave's moving average removed from both, so level and timbre are
    left to the spectral losses): ``|shape(log a) - shape(0.5 ln E)|`` with the decoder's log-levels ``log a``
    averaged to the front end's frame rate, frames weighted by how peaked their band profile is."""
    c = codec.config
    k = codec.bank.size
    ratio = c.feature_hop // c.control_hop
    log_amp = controls[:, :k].float()
    log_amp = log_amp.reshape(*log_amp.shape[:2], -1, ratio).mean(dim=-1)  # [B, K, T_f]
    log_energy = feats[:, -k:].float().detach() * 5.0  # undo the front end's 1/5 scaling: ln E
    half = 6 * c.per_semitone
    target = _band_shape(0.5 * log_energy, half)
    weight = target.std(dim=1, keepdim=True)
    weight = weight / weight.mean().clamp_min(1e-6)
    return (weight * (_band_shape(log_amp, half) - target).abs()).mean()


#: long-window peak picking of the bank level loss: FFT size, bins a peak must top on each side (Hann's main
#: lobe), bins within which it must lie within ``_SIDELOBE_DB`` of the loudest (a partial, not a sidelobe),
#: and how far under the frame's loudest bin a partial may be
_PEAK_FFT = 8192
_PEAK_LOBE_BINS = 2
_PEAK_NEAR_BINS = 6
#: a partial's peak bin stands this far above the mean power of the bins around its main lobe (to +-12 bins)
_PEAK_AROUND_BINS = 12
_PROMINENCE_DB = 12.0
_SIDELOBE_DB = 20.0
_PEAK_RANGE_DB = 60.0
#: oscillator log-amplitudes the level target is clamped to: below -12 (~ -104 dBFS) a partial is silence
_LEVEL_RANGE = (-12.0, 2.0)


def partial_targets(codec: SynthCodec, x: torch.Tensor) -> torch.Tensor:
    """The partials of ``x [B, N]`` as oscillator log-amplitudes ``[B, K, N / feature_hop]`` (NaN: no partial).

    Per front-end frame, peaks of an 8192-point Hann power spectrum (5.9 Hz bins) that top every bin within
    ``_PEAK_LOBE_BINS`` and lie within ``_SIDELOBE_DB`` of the loudest bin within ``_PEAK_NEAR_BINS`` (not a
    window sidelobe: Hann's first is 31 dB down), ``_PROMINENCE_DB`` above the mean power of the bins around its
    main lobe (tonal: the peaks of noise rarely stand so far out) and within ``_PEAK_RANGE_DB`` of the frame's loudest bin; a peak's amplitude is
    ``2 sqrt(P_-1 + P_0 + P_+1) / (1.5^0.5 sum(w))`` (the three bins of its main lobe) and it goes to the
    oscillator nearest its parabolically interpolated frequency."""
    c, k = codec.config, codec.bank.size
    with torch.autocast(x.device.type, enabled=False):
        window = torch.hann_window(_PEAK_FFT, device=x.device)
        power = codec.front._power(x.float(), _PEAK_FFT, window)  # [B, F, T]
        b, nf, t = power.shape
        db = 10 * torch.log10(power + 1e-12)
        flat = db.transpose(1, 2).reshape(b * t, 1, nf)

        def pooled(bins: int) -> torch.Tensor:
            out = torch.nn.functional.max_pool1d(flat, 2 * bins + 1, 1, padding=bins)
            return out.reshape(b, t, nf).transpose(1, 2)

        def summed(bins: int) -> torch.Tensor:
            out = torch.nn.functional.avg_pool1d(power.transpose(1, 2).reshape(b * t, 1, nf), 2 * bins + 1, 1,
                                                 padding=bins, count_include_pad=False) * (2 * bins + 1)
            return out.reshape(b, t, nf).transpose(1, 2)

        # tonal: the main lobe stands out of the power around it (noise's peaks rarely reach this)
        around = (summed(_PEAK_AROUND_BINS) - summed(_PEAK_LOBE_BINS)) / (2 * (_PEAK_AROUND_BINS - _PEAK_LOBE_BINS))
        frame_max = db.amax(dim=1, keepdim=True)
        peak = ((db >= pooled(_PEAK_LOBE_BINS)) & (db > 10 * torch.log10(around + 1e-12) + _PROMINENCE_DB) & (db > pooled(_PEAK_NEAR_BINS) - _SIDELOBE_DB)
                & (db > frame_max - _PEAK_RANGE_DB))
        peak[:, :2] = False
        peak[:, -2:] = False
        bi, fi, ti = torch.nonzero(peak, as_tuple=True)
        lo, mid, hi = db[bi, fi - 1, ti], db[bi, fi, ti], db[bi, fi + 1, ti]
        offset = 0.5 * (lo - hi) / (lo - 2 * mid + hi).clamp_max(-1e-6)  # parabolic peak position, in bins
        hz = (fi.double() + offset.double().clamp(-0.5, 0.5)) * c.sample_rate / _PEAK_FFT
        midi = 69.0 + 12.0 * torch.log2(hz.clamp_min(1.0) / 440.0)
        osc = torch.round((midi - c.midi_lo) * c.per_semitone).long()
        energy = power[bi, fi - 1, ti] + power[bi, fi, ti] + power[bi, fi + 1, ti]
        log_amp = 0.5 * torch.log(energy / 1.5 + 1e-20) - math.log(window.sum().item() / 2)
        keep = (osc >= 0) & (osc < k)
        target = torch.full((b, k, t), -1e4, device=x.device)
        index = (bi[keep] * k + osc[keep]) * t + ti[keep]
        target.view(-1).scatter_reduce_(0, index, log_amp[keep].float(), reduce="amax")
        return torch.where(target > _LEVEL_RANGE[0], target.clamp_max(_LEVEL_RANGE[1]), torch.nan)


def bank_level_loss(codec: SynthCodec, controls: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """A direct level target for the oscillators that carry the input's partials (:func:`partial_targets`).
    The spectral losses reach an oscillator only through ``exp(log-level)``, whose gradient vanishes while it
    is off, and the noise synthesiser can match a band's energy with noise: trained at scale, the decoder left
    the bank nearly silent and rendered pitched stems as shaped noise. L1 in the log domain between each
    partial's log-amplitude and the loudest oscillator within one grid step of it (the decoder's log-levels
    averaged to the front end's frame rate), mean over the partials; frames whose long window runs past the
    crop are skipped."""
    c, k = codec.config, codec.bank.size
    ratio = c.feature_hop // c.control_hop
    log_amp = controls[:, :k].float()
    log_amp = log_amp.reshape(*log_amp.shape[:2], -1, ratio).mean(dim=-1)  # [B, K, T_f]
    b, _, t = log_amp.shape
    answer = torch.nn.functional.max_pool1d(log_amp.transpose(1, 2).reshape(b * t, 1, k), 3, 1, padding=1)
    answer = answer.reshape(b, t, k).transpose(1, 2)
    weight = torch.isfinite(targets).float()
    edge = _PEAK_FFT // (2 * c.feature_hop)  # frames whose long window runs past the crop
    weight[..., :edge] = 0.0
    weight[..., max(edge, t - edge):] = 0.0
    err = (answer - torch.nan_to_num(targets, nan=0.0)).abs()
    return (weight * err).sum() / weight.sum().clamp_min(1.0)


class SynthCodecModule(L.LightningModule):
    def __init__(self, codec_config: dict, train_config: dict):
        super().__init__()
        self.save_hyperparameters()
        self.cfg = config_from_dict(SynthCodecConfig, dict(codec_config))
        self.tcfg = SynthTrainConfig(**train_config)
        self.codec = SynthCodec(self.cfg)
        if self.tcfg.freeze_encoder:
            for name, p in self.codec.named_parameters():
                p.requires_grad_(name.startswith(DECODER_PREFIXES))
        self.ema = copy.deepcopy(self.codec).requires_grad_(False)
        self.held_out: torch.Tensor | None = None
        self.metrics_path: Path | None = None
        self.rows: list[dict] = []
        self._losses: list[float] = []
        self._t0 = time.time()

    def loss(self, codec: SynthCodec, x: torch.Tensor) -> torch.Tensor:
        t = self.tcfg
        with torch.set_grad_enabled(torch.is_grad_enabled() and not t.freeze_encoder):
            feats = codec.front(x[:, 0])
            latents = codec.encoder(feats)
        controls = codec.decode_controls(latents)
        if self.cfg.decoder == "stftmag":
            return stftmag_loss(codec, controls, x)
        y = codec.render(controls)[:, 0]
        ref = x[:, 0]
        with torch.autocast("cpu", enabled=False):
            y = y.float()
            loss = t.w_mrstft * mr_stft_loss(y, ref, complex_weight=0.0, resolutions=PITCH_RESOLUTIONS)
            if t.w_mel:
                loss = loss + t.w_mel * band_energy_loss(y, ref, self.cfg.sample_rate)
            if t.w_semitone:
                loss = loss + t.w_semitone * semitone_band_loss(y, ref, self.cfg.sample_rate)
            if t.w_bank_shape:
                loss = loss + t.w_bank_shape * bank_shape_loss(codec, controls, feats)
            if t.w_bank_level:
                loss = loss + t.w_bank_level * bank_level_loss(codec, controls, partial_targets(codec, ref))
        return loss

    def training_step(self, batch: torch.Tensor, batch_idx: int) -> torch.Tensor:
        x = batch.mean(dim=1, keepdim=True)
        loss = self.loss(self.codec, x)
        self._losses.append(float(loss.detach()))
        self.log("loss", loss.detach(), prog_bar=True)
        return loss

    def on_train_batch_end(self, outputs, batch, batch_idx) -> None:
        ema_update_(self.ema, self.codec, min(self.tcfg.ema_decay, (1 + self.global_step) / (10 + self.global_step)))
        step = int(self.global_step)
        if step % self.tcfg.eval_every == 0:
            self.evaluate(step)

    @torch.no_grad()
    def evaluate(self, step: int) -> dict:
        from ..eval.codec_eval import clip_metrics

        row = {"step": step, "seconds": round(time.time() - self._t0, 1),
               "train_loss": round(float(np.mean(self._losses)), 5) if self._losses else None}
        self._losses = []
        if self.held_out is not None:
            self.ema.eval()
            x = self.held_out
            y = self.ema.reconstruct(x, seed=0)
            scores = [clip_metrics(a.numpy(), b.numpy()) for a, b in zip(x, y)]
            for key in ("log_mel", "mr_stft", "pitch_class"):
                row[f"heldout_{key}"] = round(float(np.mean([s[key] for s in scores])), 4)
        self.rows.append(row)
        if self.metrics_path is not None:
            write_rows_csv(self.metrics_path, self.rows)
        print(json.dumps(row), flush=True)
        return row

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["synth_metrics_rows"] = self.rows

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self.rows = list(checkpoint.get("synth_metrics_rows", []))

    def configure_optimizers(self):
        t = self.tcfg
        return adamw_with_schedule(self.codec, t.lr, t.total_steps, t.warmup_steps, weight_decay=0.0,
                                   min_ratio=t.min_lr_ratio)

    def init_from(self, tensors: dict[str, torch.Tensor], path: str) -> None:
        """Load an exported codec's weights into the codec and its EMA (``--init``)."""
        for model in (self.codec, self.ema):
            load_state_into(model, {k: v.float() for k, v in tensors.items()}, path)

    @torch.no_grad()
    def export(self, path: Path, batches: list[torch.Tensor], fp16: bool) -> Path:
        """Measure the latent statistics of the EMA codec on ``batches`` and write it. With a frozen
        encoder the encoder side and the statistics are copied from the trained codec unchanged
        (an EMA of constants could round them), so the latents are those of ``--init``."""
        if self.tcfg.freeze_encoder:
            kept = {k: v for k, v in self.codec.state_dict().items() if not k.startswith(DECODER_PREFIXES)}
            self.ema.load_state_dict({**self.ema.state_dict(), **kept})
        else:
            z = torch.cat([self.ema.encode(b).flatten() for b in batches])
            self.ema.latent_mean.fill_(float(z.mean()))
            self.ema.latent_std.fill_(float(z.std()))
        self.ema.save(path, dtype=torch.float16 if fp16 else None,
                      extra={"train_steps": int(self.global_step), "train_config": asdict(self.tcfg)})
        return path


def _overrides(pairs: list[str]) -> dict:
    out = {}
    for item in pairs:
        if "=" not in item:
            raise ConfigError(f"expected KEY=VALUE, got '{item}'")
        k, v = item.split("=", 1)
        try:
            out[k] = json.loads(v)
        except json.JSONDecodeError:  # a bare word: a string value
            out[k] = v
    return out


def _codec_config(args: Namespace) -> tuple[SynthCodecConfig, dict[str, torch.Tensor] | None]:
    """The run's codec config and the weights to start from: ``--config`` / ``--set`` for a new codec;
    with ``--init`` the exported codec's config, where ``--set`` may change decoder-side fields only."""
    overrides = _overrides(args.set)
    if not args.init:
        base = json.loads(Path(args.config).read_text()) if args.config else {}
        return config_from_dict(SynthCodecConfig, {**base, **overrides}), None
    if args.config:
        raise ConfigError("--init takes the codec's config from the file: drop --config")
    bad = sorted(k for k in overrides if k not in DECODER_ONLY_FIELDS)
    if bad:
        raise ConfigError(f"--set with --init may change only decoder-side fields ({', '.join(DECODER_ONLY_FIELDS)}); "
                          f"got {', '.join(bad)}")
    ck = load_checkpoint(args.init, kind=KIND)
    cfg = config_from_dict(SynthCodecConfig, {**ck.config, **overrides})
    return cfg, dict(ck.tensors)


def run(args: Namespace) -> int:
    if args.threads:
        torch.set_num_threads(int(args.threads))
    torch.set_flush_denormal(True)
    run_dir = Path(args.out)
    run_dir.mkdir(parents=True, exist_ok=True)
    cfg, init = _codec_config(args)
    try:
        tcfg = SynthTrainConfig(**{**_overrides(args.train_set), "freeze_encoder": bool(args.freeze_encoder)})
    except TypeError as exc:
        raise ConfigError(f"--train-set: {exc}") from None
    if tcfg.freeze_encoder and init is None:
        raise ConfigError("--freeze-encoder needs --init CODEC.safetensors (a trained encoder to keep)")
    train, held = load_training_audio(args.data, args.real, 1, cfg.sample_rate, real_spans=tcfg.real_spans,
                                      real_span_seconds=tcfg.real_span_seconds, held_seconds=tcfg.eval_seconds + 1,
                                      seed=tcfg.seed)
    print(f"data: {len(train)} training clips, {sum(c.shape[1] for c in train) / cfg.sample_rate / 3600:.2f} h; "
          f"{len(held)} held-out clips", flush=True)
    module = SynthCodecModule(asdict(cfg), asdict(tcfg))
    if init is not None:  # a resumed run's checkpoint, when there is one, replaces these weights in fit
        module.init_from(init, args.init)
    module.held_out = held_out_batch(held, tcfg.eval_clips, tcfg.eval_seconds, cfg.latent_hop, cfg.sample_rate)
    module.metrics_path = run_dir / "metrics.csv"
    crop = max(1, int(tcfg.crop_seconds * cfg.sample_rate) // cfg.latent_hop) * cfg.latent_hop
    stream = CropStream(train, crop, tcfg.seed, tcfg.silence_dbfs, tcfg.keep_silent_prob)
    loader = torch.utils.data.DataLoader(stream, batch_size=tcfg.batch_size, num_workers=0)
    trainer = build_trainer(run_dir, max_steps=args.max_steps, max_minutes=args.max_minutes,
                            precision=args.precision, checkpoint_every=tcfg.ckpt_every, grad_clip=1.0)
    fit(trainer, module, loader, run_dir, args.resume)
    module.evaluate(int(module.global_step))
    rng = np.random.default_rng(1)
    stats = [torch.from_numpy(train[int(i)][:, : 8 * cfg.latent_hop].astype(np.float32))[None]
             for i in rng.choice(len(train), size=min(32, len(train)), replace=False)]
    out = module.export(Path(args.export) if args.export else run_dir / "synth_codec.safetensors", stats, args.fp16)
    print(f"exported {out}")
    return 0
