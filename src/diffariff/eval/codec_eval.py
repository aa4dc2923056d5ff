"""Codec reconstruction on held-out audio, side by side with Opus and silence.

Clips: ``n`` held-out windows of ``seconds`` (evaluation pairs of :mod:`diffariff.data.pairs`, whose
context is every other stem): each gives one **stem** clip (the target) and one **mix** clip
(context + target = the whole song over that window). Clips are converted to the codec's channel
count (mono codec: channel mean) and every system is scored on exactly those signals.

Systems:

* the codec, for each decode ``mode`` (``deterministic``; ``consistency`` with each ``steps``
  count; decode noise seeded by ``decode_seed``): encode, decode, crop to the clip length;
* ``decode twice``: for each consistency step count, the distance between two decodings of one
  latent with seeds ``decode_seed`` and ``decode_seed + 1`` (how much the stochastic decoder
  varies: the room a pseudo-stereo image built from two decodings has);
* Opus at each bitrate (ffmpeg/libopus round trip, time-aligned), skipped with a note when ffmpeg
  is missing;
* silence (all zeros): the lower bound. SI-SDR of silence is 0 dB by the metric's convention.

Metrics (:mod:`diffariff.eval.reconstruction`): multi-resolution STFT distance, log-mel L1 and
SI-SDR (dB), level and octave-band errors, plus the pitch-class correlation (do the notes survive?),
each as mean ± 95 % t-interval over the clips of a kind (``stems``, ``mixes``, ``all``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from ..audio import to_channels
from ..data.pairs import PairConfig, check_stem_draw, evaluation_pairs
from ..data.sources import open_dataset
from ..errors import ConfigError, InputError, MissingDependencyError
from .metrics import mean_and_ci
from .musical_fit import cqt_chroma_fit, key_fit
from .reconstruction import (
    band_level_errors,
    grid_energy_share,
    log_mel_distance,
    mr_stft_distance,
    opus_roundtrip,
    phase_error_share,
    si_sdr,
)

#: Sample rate of the codec and of every clip (Hz).
SAMPLE_RATE = 48_000
#: Clip kinds of the report, in order.
KINDS = ("stems", "mixes", "real", "all")
DECODE_MODES = ("consistency", "deterministic")


@dataclass
class CodecEvalConfig:
    """Settings of :func:`evaluate_codec`: ``n`` windows (2 clips each) of ``seconds``, drawn with
    ``seed`` from ``split``; decode ``modes`` x ``steps`` with ``decode_seed``; Opus at ``opus_kbps``."""

    n: int = 20
    seconds: float = 10.0
    seed: int = 0
    split: str | None = "test"
    modes: tuple[str, ...] = DECODE_MODES
    steps: tuple[int, ...] = (1, 2)
    opus_kbps: tuple[float, ...] = (12.0, 24.0)
    decode_seed: int = 0
    seam_seconds: float = 0.0
    seam_chunk_seconds: float = 5.0
    latent_probe: int = 0  # training-split windows of the latent pitch probe (0: off)
    stem_draw: str = "first"  # one of STEM_DRAWS; "first" (the default) keeps earlier reports reproducible

    def __post_init__(self) -> None:
        if int(self.n) < 1:
            raise ConfigError(f"--n must be at least 1, got {self.n}")
        if not self.seconds > 0:
            raise ConfigError(f"--seconds must be positive, got {self.seconds}")
        self.modes = tuple(str(m) for m in self.modes)
        bad = [m for m in self.modes if m not in DECODE_MODES]
        if bad or not self.modes:
            raise ConfigError(f"--mode must be among {', '.join(DECODE_MODES)}, got {', '.join(bad) or 'nothing'}")
        self.steps = tuple(int(s) for s in self.steps)
        if any(s < 1 for s in self.steps) or ("consistency" in self.modes and not self.steps):
            raise ConfigError(f"--steps must be integers >= 1, got {self.steps}")
        if self.seam_seconds < 0 or (self.seam_seconds > 0 and not 0 < self.seam_chunk_seconds < self.seam_seconds):
            raise ConfigError("--seam-seconds must be 0 (off) or longer than --seam-chunk-seconds (> 0)")
        check_stem_draw(self.stem_draw)
        if int(self.latent_probe) < 0:
            raise ConfigError(f"--latent-probe must be >= 0 windows, got {self.latent_probe}")
        self.opus_kbps = tuple(float(b) for b in self.opus_kbps)
        if any(not 1.0 <= b <= 512.0 for b in self.opus_kbps):
            raise ConfigError(f"--opus bitrates must be 1-512 kbps, got {self.opus_kbps}")


def held_out_clips(songs, config: CodecEvalConfig) -> list[dict]:
    """Clips ``{"kind": "stems"|"mixes", "audio": float32 [2, N], "song", "stem", "start"}``, two per
    evaluation pair (target stem, then context + target), N = round(seconds * 48000); the pairs'
    targets follow ``config.stem_draw``."""
    pair_cfg = PairConfig(window_seconds=float(config.seconds), sample_rate=SAMPLE_RATE, channels=2,
                          reference_seconds=min(1.0, float(config.seconds)))
    clips = []
    for item in evaluation_pairs(songs, pair_cfg, int(config.n), int(config.seed),
                                 stem_draw=config.stem_draw):
        target = item["target"].numpy()
        meta = {"song": item["song"], "stem": item["target_stem"], "start": int(item["start"])}
        clips.append({"kind": "stems", "audio": target, **meta})
        clips.append({"kind": "mixes", "audio": target + item["context"].numpy(), **{**meta, "stem": "mixture"}})
    return clips


def clip_metrics(reference: np.ndarray, estimate: np.ndarray) -> dict[str, float]:
    """MR-STFT distance, log-mel L1, SI-SDR (dB), level error and octave-band error (dB) of ``estimate``
    vs ``reference`` (``[C, N]``, 48 kHz), and ``pitch_class``: the correlation of their 12-bin
    pitch-class profiles (:mod:`diffariff.eval.musical_fit`; 1 = the same pitches, 0 for silence), which
    tells whether the codec keeps the notes (what a stem's key fit to its context can reach), and
    ``chroma_cqt``: the same question asked of librosa's constant-Q chroma (an independent check), and
    ``phase_share``: the part of the STFT-domain error that is phase, not magnitude
    (:func:`~diffariff.eval.reconstruction.phase_error_share`)."""
    return {"mr_stft": mr_stft_distance(reference, estimate), "log_mel": log_mel_distance(reference, estimate),
            "si_sdr": si_sdr(reference, estimate), **band_level_errors(reference, estimate),
            "phase_share": phase_error_share(reference, estimate),
            "pitch_class": key_fit(estimate, reference, 48_000),
            "chroma_cqt": cqt_chroma_fit(estimate, reference, 48_000),
            "grid_share": grid_energy_share(estimate, 48_000)}


def real_clips(root, split: str, config: CodecEvalConfig) -> list[dict]:
    """Clips ``{"kind": "real", "audio": float32 [2, N], "song", "stem", "start"}`` of recorded music: ``config.n``
    random spans of ``config.seconds`` (seeded by ``config.seed``) from the plain-mixture folder ``root``
    (:mod:`diffariff.data.mixtures`), files of ``split`` only (``test_ood``: sources never trained on)."""
    from ..data.mixtures import load_mixtures, random_spans

    recordings = load_mixtures(root, split=split)
    spans = random_spans(recordings, int(config.n), float(config.seconds), int(config.seed), SAMPLE_RATE, 2)
    return [{"kind": "real", "audio": a, "song": f"{split}-{i}", "stem": "mixture", "start": 0}
            for i, a in enumerate(spans)]


def summarise(kinds: Sequence[str], per_clip: Sequence[dict[str, float]]) -> dict:
    """``{kind: {metric: MeanCI dict}}`` over the clips of each kind and over all clips."""
    out = {}
    for kind in KINDS:
        chosen = [m for k, m in zip(kinds, per_clip) if kind == "all" or k == kind]
        if chosen:
            out[kind] = {key: _ci_or_none([m[key] for m in chosen]) for key in chosen[0]}
    return out


def _ci_or_none(values: list[float]) -> dict | None:
    """Mean and CI of the finite ``values``; None when there are none (e.g. the grid share of silence)."""
    finite = [v for v in values if np.isfinite(v)]
    return _ci(mean_and_ci(finite)) if finite else None


def _ci(ci) -> dict:
    d = ci.as_dict()
    return {k: (None if isinstance(v, float) and not np.isfinite(v) else v) for k, v in d.items()}


def _system(name: str, kind: str, kinds, per_clip, **extra) -> dict:
    return {"name": name, "kind": kind, **extra, "metrics": summarise(kinds, per_clip) if per_clip else {}}


def evaluate_codec(codec, clips: Sequence[dict], config: CodecEvalConfig, *, progress=None,
                   ffmpeg: str | None = None) -> dict:
    """Score every system of the module docstring on ``clips``; returns a JSON-able dict with
    ``systems`` (name, kind, metrics per clip kind, optional note), ``clips``, ``channels``, ``kinds``.

    ``codec``: anything with ``encode(audio [B, C, N]) -> [B, 64, T]``, ``decode(latents, steps=,
    seed=, mode=, length=) -> [B, C, N]`` and ``config.audio_channels``.
    """
    channels = int(getattr(codec.config, "audio_channels", 1))
    refs = [to_channels(c["audio"], channels) for c in clips]
    kinds = [c["kind"] for c in clips]
    decoders: list[tuple[str, str, int]] = []  # (name, mode, steps)
    for mode in getattr(codec, "decode_modes", config.modes):
        if mode == "deterministic":
            decoders.append(("codec deterministic", mode, 1))
        elif mode == "synth":
            decoders.append(("codec", mode, 1))
        else:
            decoders += [(f"codec consistency, {s} step{'s' if s > 1 else ''}", mode, s) for s in config.steps]
    scores: dict[str, list] = {name: [] for name, _, _ in decoders}
    twice: dict[str, list] = {name: [] for name, m, _ in decoders if m != "deterministic"}
    disable = None if progress is None else not progress
    for ref in tqdm(refs, desc="codec clips", unit="clip", disable=disable):
        x = torch.from_numpy(np.ascontiguousarray(ref))[None]
        latents = codec.encode(x)
        n = ref.shape[-1]
        for name, mode, steps in decoders:
            y = _decode(codec, latents, steps, config.decode_seed, mode, n)
            scores[name].append(clip_metrics(ref, y))
            if name in twice:
                y2 = _decode(codec, latents, steps, config.decode_seed + 1, mode, n)
                twice[name].append(clip_metrics(y, y2))
    systems = [_system(name, "codec", kinds, scores[name], mode=mode, steps=steps) for name, mode, steps in decoders]
    steps_of = {name: steps for name, _, steps in decoders}
    for name, values in twice.items():
        label = "decode twice" if name == "codec" else \
            f"decode twice, {steps_of[name]} step{'s' if steps_of[name] > 1 else ''}"
        systems.append(_system(
            label, "stochasticity", kinds, values,
            note=f"distance between two decodings of one latent (seeds {config.decode_seed}, "
                 f"{config.decode_seed + 1}), not a reconstruction score"))
    for kbps in config.opus_kbps:
        systems.append(_opus_system(refs, kinds, kbps, ffmpeg, disable))
    systems.append(_system("original", "bound", kinds, [clip_metrics(r, r) for r in refs],
                           note="the clips themselves: where grid share and level should be"))
    systems.append(_system("silence", "bound", kinds, [clip_metrics(r, np.zeros_like(r)) for r in refs],
                           note="lower bound; SI-SDR of silence is 0 dB by convention"))
    return {"systems": systems, "clips": len(clips), "channels": channels, "kinds": list(KINDS),
            "seconds": config.seconds, "split": config.split, "config": asdict(config),
            "clip_list": [{k: c[k] for k in ("kind", "song", "stem", "start")} for c in clips]}


def _decode(codec, latents, steps: int, seed: int, mode: str, length: int) -> np.ndarray:
    y = codec.decode(latents, steps=int(steps), seed=int(seed), mode=mode, length=int(length))
    out = y[0].detach().float().cpu().numpy()
    if out.shape[-1] < length:  # a codec that returns whole frames only
        out = np.pad(out, ((0, 0), (0, length - out.shape[-1])))
    return out


def _opus_system(refs, kinds, kbps: float, ffmpeg, disable) -> dict:
    name = f"Opus {kbps:g} kbps"
    per_clip = []
    try:
        for ref in tqdm(refs, desc=name, unit="clip", disable=disable):
            per_clip.append(clip_metrics(ref, opus_roundtrip(ref, SAMPLE_RATE, kbps, ffmpeg=ffmpeg)))
    except MissingDependencyError as exc:
        return _system(name, "opus", kinds, [], kbps=kbps, note=f"skipped: {exc}")
    return _system(name, "opus", kinds, per_clip, kbps=kbps)


def run_codec_eval(load_codec: Callable[[], object], data_root, config: CodecEvalConfig, *, progress=None,
                   ffmpeg: str | None = None, real_root=None, real_split: str = "test_ood") -> dict:
    """Open the data (split), draw the clips, load the codec and evaluate (data errors come first).
    ``data_root``: multitrack songs (stem and mix clips; None: none); ``real_root``: recorded mixtures
    (``real`` clips of ``real_split``; None: none)."""
    songs = open_dataset(data_root, split=config.split) if data_root is not None else []
    clips = held_out_clips(songs, config) if songs else []
    if real_root is not None:
        clips += real_clips(real_root, real_split, config)
    probe_songs = _probe_training_songs(data_root, songs, config) if config.latent_probe > 0 and songs else []
    seam_song = _seam_song(songs, config) if config.seam_seconds > 0 and songs else None
    codec = load_codec()
    results = evaluate_codec(codec, clips, config, progress=progress, ffmpeg=ffmpeg)
    if seam_song is not None:
        results["seams"] = chunk_seams(codec, seam_song, config)
        s = results["seams"]
        results.setdefault("notes", []).append(
            f"chunk seams ({s['song']} mixture, {s['seconds']:g} s, chunks of {s['chunk_seconds']:g} s, "
            f"{s['n_borders']} borders): whole vs chunked encode+decode differ by {s['border_error']:.2e} (RMS, "
            f"relative) within one latent frame of a border and {s['elsewhere_error']:.2e} elsewhere; "
            f"latents differ by {s['latent_error']:.2e}")
    if config.latent_probe > 0 and songs:
        from .latent_probe import latent_note_probe  # noqa: PLC0415

        p = results["latent_probe"] = latent_note_probe(
            codec, probe_songs, songs, n_train=config.latent_probe, n_test=config.n, seconds=config.seconds,
            seed=config.seed)
        results.setdefault("notes", []).append(
            f"latent pitch probe (ridge regression to per-frame pitch-class profiles, {p['train_frames']} training "
            f"frames of {p['n_train']} train-split windows, {p['test_frames']} held-out frames; drums and silence "
            f"left out): correlation {p['latents']:.3f} from the latents, {p['log_mel']:.3f} from 128 log-mel "
            f"bands of the input at the latent frame rate")
    return results


def _probe_training_songs(data_root, held_out, config: CodecEvalConfig) -> list:
    """Training-split songs that are not among the held-out ones (the latent probe is fitted on them)."""
    held = {s.name for s in held_out}
    train = [s for s in open_dataset(data_root, split="train") if s.name not in held]
    if not train:
        raise InputError("--latent-probe fits on training-split songs outside the held-out ones: there are none "
                         f"(held-out split '{config.split}')")
    return train


def _seam_song(songs, config: CodecEvalConfig):
    """The first held-out song at least ``seam_seconds`` long."""
    song = next((s for s in songs if s.duration_seconds() >= config.seam_seconds), None)
    if song is None:
        raise InputError(f"--seam-seconds {config.seam_seconds:g}: no held-out song is that long")
    return song


def chunk_seams(codec, song, config: CodecEvalConfig) -> dict:
    """:func:`~diffariff.codec.chunking.measure_chunk_seams` on the mixture of ``song`` (``seam_seconds``
    from its start), chunked every ``seam_chunk_seconds``."""
    from ..codec.chunking import measure_chunk_seams  # noqa: PLC0415

    mix = song.load_mix(list(song.stems), SAMPLE_RATE, 2, 0.0, config.seam_seconds)
    rep = measure_chunk_seams(codec, torch.from_numpy(mix)[None], config.seam_chunk_seconds, seed=config.decode_seed)
    return {"song": song.name, "seconds": config.seam_seconds, "chunk_seconds": config.seam_chunk_seconds,
            "border_error": rep.border_error, "elsewhere_error": rep.elsewhere_error,
            "latent_error": rep.latent_error, "n_borders": rep.n_borders}
