"""The Accompanist: everything a producer does goes through this one object.

    acc = Accompanist.from_pretrained("default")            # or a bundle folder
    stems = acc.generate("mix.wav", text="warm fingered bass", n=2, seed=1)   # float32 [2, 2, N]
    song = acc.arrange(None, seconds=10, parts=[{"text": "drums"}, {"text": "warm bass"}])
    acc.save("bass.wav", stems[0])     # atomic; never over a file the last call read (overwrite=True)

Audio in: a file path (wav / flac / ogg / mp3) or an array ``[C, N]`` / ``[N]`` with ``sample_rate``
(default 48 kHz); any rate is resampled (soxr), mono is duplicated, more than two channels are
averaged (with a warning), all via :mod:`diffariff.audio`. Audio out: ``float32 [n, 2, N]`` at 48 kHz,
aligned sample-exactly with the context (same start, same N samples).

Behaviour worth knowing:

* **Silent context** (RMS below -60 dBFS): the context condition is dropped, i.e. the model generates
  from the CLAP condition alone (the model is trained on empty contexts too). Context shorter than
  ``MIN_CONTEXT_SECONDS`` (0.5 s): InputError. Longer than ``max_seconds``: AudioTooLongError.
* **Context chroma**: for a latent model trained with ``context_chroma`` the context's chroma
  (:func:`~diffariff.data.context_chroma.context_chroma`, 12 pitch classes per latent frame) is computed
  once per context and sliced per window beside its latents (:attr:`Context.chroma`).
* **Text**: any non-empty string is a valid prompt (unknown words are embedded by the frozen sentence
  model like any other text); an empty prompt is an InputError. With a CLAP bridge in the bundle and
  ``use_bridge=True`` the text embedding is mapped to an audio-space embedding first.
* **Context only** (no text, reference, ``clap_mix`` or style reference): with a context prior in the
  bundle (:mod:`diffariff.priors.context_prior`) and ``use_prior=True``, the CLAP condition is an
  embedding the prior samples from the context (seeded by the seed; one per call, shared by the
  ``n`` candidates), i.e. the stem's instrument is chosen to fit the context; :attr:`last_condition`
  says which source conditioned the last generation. ``use_prior=False`` (or no prior) leaves the
  CLAP condition empty (Table 1's raw "ctx" setting).
* **Text and reference together**: the normalised sum of the two audio-space embeddings (for unit
  vectors exactly the slerp midpoint). ``clap_mix=(a, b, ratio)`` slerps two conditions instead.
  A reference must be at least ``MIN_REFERENCE_SECONDS`` (1 s) long.
* **Loudness**: each generated stem is set to (context loudness - 3 LU), BS.1770 integrated, or to
  -23 LUFS when the context is silent, then peak-limited to 0.99 (a typical stem sits a few LU under
  the mix it joins). :meth:`mix` returns context + stem, peak-limited.
* **Any length**: with ``long_mode="auto"`` contexts longer than one window are generated in
  overlapping windows (each window inpainted against the frames already generated, a quarter window
  of overlap, :func:`~diffariff.diffusion.edits.generate_windowed`): memory is bounded by one window,
  time is linear in length (:mod:`diffariff.pipeline.sampling`). The window is
  :data:`~diffariff.pipeline.sampling.WINDOW_TRAIN_RATIO` = 2 x the model's ``train_frames``
  (10.9 s for the default model), a measured choice: on 60-s held-out songs, APA per 10-s slice was
  0.62 with 10.9-s windows, 0.56 with 5.5-s and 16.4-s windows, and 0.52 for one direct pass
  (docs/experiments.md). ``"direct"`` runs the net over the whole length at once (networks with a dynamic
  positional bias generalise), ``"windowed"`` forces windows; ``window_seconds`` sets the length.
* **Stereo**: a mono codec decodes twice and mixes the two decodings with ``width`` (pseudo-stereo;
  0 gives identical channels); a stereo (mid/side) codec decodes true stereo and ignores ``width``.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from ..audio import (
    DEFAULT_MAX_SECONDS,
    PEAK_CEILING,
    SILENCE_LUFS,
    is_silent,
    normalize_loudness,
    peak_limit,
    save_audio,
    to_channels,
)
from ..audio_input import (
    MIN_CONTEXT_SECONDS,
    MIN_REFERENCE_SECONDS,
    SAMPLE_RATE,
    SPOOL_SECONDS,
    AudioLike,
    crossfade_paste,
    file_inputs,
    read_audio,
    read_audio_spooled,
    to_numpy,
)
from ..audio_spool import SpooledAudio, is_spooled
from ..bundle import open_bundle
from ..data.context_chroma import context_chroma
from ..errors import (
    AudioTooLongError,
    CheckpointError,
    ConfigError,
    InputError,
)
from ..fsutil import check_output_path
from ..longform.encode import encode_long
from ..longform.loudness import measure
from ..longform.stream import StreamedOutput
from ..request import INFERENCE_PRECISIONS, LONG_MODES, GenerationRequest
from ..timing.editing import BarEditing
from ..torchutil import inference_autocast, setup_cpu
from .conditions import Conditions
from .edits import Arrangement, StemEdits
from .gaps import GapFilling, audio_frame_levels_db
from .key_lock import choose_transpositions
from .sampling import LatentSampling

if TYPE_CHECKING:  # the parts' types; the modules themselves load lazily (start-up time)
    from ..clap.builtin import BuiltinClap
    from ..codec.model import LatentCodec
    from ..codec.pitch_critic import PitchCritic
    from ..diffusion.model import LatentDiffusion
    from ..priors.bridge import ClapBridge
    from ..priors.neighbour_prior import NeighbourPrior

#: Generated stem loudness relative to the context (LU) and for a silent context (LUFS).
STEM_RELATIVE_LU = -3.0
SILENT_CONTEXT_STEM_LUFS = -23.0
SILENCE_DB = -60.0

@dataclasses.dataclass
class Context:
    """A prepared context: ``audio`` float32 [2, N] at 48 kHz, its codec ``latents`` [1, 64, T] (None
    when silent: the condition is dropped), loudness ``lufs``, ``silent``, and its ``chroma`` [1, 12, T]
    (:func:`~diffariff.data.context_chroma.context_chroma` of the audio on the codec's channels, as in
    the latent cache) when a latent model of the Accompanist takes it and there are latents (else None).
    A long context read for the streamed path holds its ``audio`` on disk
    (:class:`~diffariff.audio_spool.SpooledAudio`, same interface for spans): :meth:`close` releases it."""

    audio: np.ndarray | SpooledAudio
    latents: torch.Tensor | None
    lufs: float
    silent: bool
    chroma: torch.Tensor | None = None

    @property
    def length(self) -> int:
        return int(self.audio.shape[1])

    def close(self) -> None:
        """Release a spooled context's temporary file (nothing to do for an in-memory one)."""
        if is_spooled(self.audio):
            self.audio.close()


class Accompanist(LatentSampling, Conditions, StemEdits, GapFilling, BarEditing, StreamedOutput):
    """Context in, new stem out. Build with :meth:`from_pretrained` (a bundle folder) or directly from
    loaded models: ``codec`` (:class:`~diffariff.codec.model.LatentCodec`: either codec), ``clap``
    (:class:`~diffariff.clap.builtin.BuiltinClap`), ``models`` {"edm" | "consistency":
    :class:`~diffariff.diffusion.model.LatentDiffusion`} and an optional ``bridge``. With no
    models only the codec's paths work (:meth:`encode`, :meth:`decode`, :meth:`reconstruct`), e.g. to
    measure a new codec's ceiling before latent models exist for it; generating then raises ConfigError."""

    def __init__(self, codec: LatentCodec, clap: BuiltinClap, models: dict[str, LatentDiffusion],
                 bridge: ClapBridge | None = None, *, prior: ClapBridge | NeighbourPrior | None = None,
                 pitch_critic: PitchCritic | None = None, name: str = ""):
        for mode, m in models.items():
            if m.config.mode != mode:
                raise CheckpointError(f"the '{mode}' diffusion model is a {m.config.mode} model")
            if m.config.latent_channels != codec.config.latent_dim:
                raise CheckpointError(f"the {mode} model expects {m.config.latent_channels}-channel latents, "
                                      f"the codec makes {codec.config.latent_dim}")
            if m.config.clap_dim != clap.dim:
                raise CheckpointError(f"the {mode} model expects {m.config.clap_dim}-d CLAP embeddings, "
                                      f"the CLAP makes {clap.dim}")
        if pitch_critic is not None and pitch_critic.config.latent_dim != codec.config.latent_dim:
            raise CheckpointError(f"the pitch critic reads {pitch_critic.config.latent_dim}-channel latents, "
                                  f"the codec makes {codec.config.latent_dim}")
        self.codec, self.clap, self.models, self.bridge, self.name = codec.eval(), clap.eval(), dict(models), bridge, name
        self.prior = prior
        self.pitch_critic = None if pitch_critic is None else pitch_critic.eval()
        self.last_condition: str | None = None
        self.last_windows: list[tuple[int, int]] = []
        self.last_seed: int | None = None
        self.last_transpositions: list[int] | None = None  # key lock's semitones per stem (None: off / n/a)
        self.last_inputs: list[Path] = []  # the files read by the last call; :meth:`save` never replaces them
        self.last_grid = None  # bar grid, bars, loops and loop seams of the last bar-aware call (timing.editing)
        self.last_bars: tuple[int, int] | None = None
        self.last_loop: np.ndarray | None = None
        self.last_loop_seams: list[dict] = []

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike = "default", *, load_bridge: bool = True,
                        load_prior: bool = True, for_sampler: str | None = "all") -> Accompanist:
        """Load a model bundle (a folder, or ``"default"`` for the packaged one) offline. ``load_bridge``
        / ``load_prior``: also use its text bridge / context prior when it has one (each is read from
        disk the first time a generation needs it). ``for_sampler``: ``"all"`` loads every latent model
        of the bundle; a sampler name (or None: the bundle's preferred one, as :meth:`model_for`) loads
        only the model that sampler runs, when the bundle has it, so a one-off command does not pay for
        the other."""
        from ..clap.builtin import BuiltinClap
        from ..codec import load_codec
        from ..codec.pitch_critic import load_pitch_critic
        from ..diffusion.model import LatentDiffusion

        setup_cpu()
        b = open_bundle(path)
        wanted = set(b.diffusion)
        if for_sampler != "all":
            mode = ("edm" if "edm" in b.diffusion else "consistency") if for_sampler is None else \
                ("consistency" if for_sampler == "consistency" else "edm")
            wanted = {mode} if mode in b.diffusion else wanted  # a missing one: model_for names it
        models = {mode: LatentDiffusion.load(p) for mode, p in b.diffusion.items() if mode in wanted}
        critic = load_pitch_critic(b.pitch_critic) if b.pitch_critic is not None else None
        acc = cls(load_codec(b.codec), BuiltinClap.load(b.clap), models, pitch_critic=critic, name=str(b.root))
        acc._bridge_file = b.bridge if load_bridge else None
        acc._prior_file = b.prior if load_prior else None
        return acc

    # ------------------------------------------------------------------------------ sizes / helpers
    @property
    def sample_rate(self) -> int:
        return SAMPLE_RATE

    @property
    def samples_per_frame(self) -> int:
        return int(self.codec.config.samples_per_frame)

    @property
    def train_frames(self) -> int:
        if not self.models:
            raise ConfigError("this Accompanist has no diffusion model (codec only)")
        return min(m.config.train_frames for m in self.models.values())

    @property
    def needs_context_chroma(self) -> bool:
        """Whether a latent model of this Accompanist takes the context chroma (``config.context_chroma``)."""
        return any(m.config.context_chroma for m in self.models.values())

    def frames_for(self, samples: int) -> int:
        """Latent frames covering ``samples`` (ceil(N / 4096))."""
        return -(-int(samples) // self.samples_per_frame)

    def model_for(self, sampler: str | None) -> tuple[LatentDiffusion, str]:
        """(diffusion model, sampler name) for ``sampler`` (None: the bundle's preferred mode)."""
        if not self.models:
            raise ConfigError("this Accompanist has no diffusion model (codec only): it cannot generate")
        if sampler is None:
            mode = "edm" if "edm" in self.models else "consistency"
            return self.models[mode], self.models[mode].config.default_sampling()[0]
        mode = "consistency" if sampler == "consistency" else "edm"
        if mode not in self.models:
            have = ", ".join(sorted(self.models))
            raise ConfigError(f"sampler '{sampler}' needs the {mode} diffusion model, but this bundle has only: {have}")
        return self.models[mode], sampler

    def prepare_context(self, context: AudioLike | None, sample_rate: int | None = None, *,
                        seconds: float | None = None, max_seconds: float | None = DEFAULT_MAX_SECONDS,
                        encode: bool = True, spool_folder: str | os.PathLike | None = None,
                        chroma: bool = False) -> Context:
        """Load / convert / encode a context (None -> ``seconds`` of silence). See the module doc.
        ``encode=False`` skips the codec (``latents`` None) when only the loudness is needed; ``chroma``:
        compute the context chroma even when no latent model takes it (harmony guidance needs it).
        ``spool_folder``: a long context file (or silence) is kept in a temporary file there
        (:func:`~diffariff.audio_input.read_audio_spooled`: ``Context.audio`` is then a
        :class:`~diffariff.audio_spool.SpooledAudio`, read by spans; the caller closes it). A
        ``SpooledAudio`` context (48 kHz stereo, not cropped) is used as it is: closing the Context closes it."""
        if context is None:
            if seconds is None or seconds <= 0:
                raise InputError("without a context, give the length to generate (seconds > 0)")
            if max_seconds is not None and seconds > max_seconds:
                raise AudioTooLongError(f"{seconds:.1f} s is longer than the limit of {max_seconds:.1f} s")
            n = int(round(seconds * SAMPLE_RATE))
            audio = SpooledAudio.silence(2, n, spool_folder) if spool_folder is not None and \
                n > SPOOL_SECONDS * SAMPLE_RATE else np.zeros((2, n), dtype=np.float32)
        elif is_spooled(context):
            if sample_rate not in (None, SAMPLE_RATE) or context.channels != 2 or seconds is not None:
                raise InputError("a spooled context must be 48 kHz stereo and cannot be cropped")
            if max_seconds is not None and context.length > max_seconds * SAMPLE_RATE:
                raise AudioTooLongError(f"{context.length / SAMPLE_RATE:.1f} s is longer than the limit of "
                                        f"{max_seconds:.1f} s")
            audio = context
        elif spool_folder is not None:
            audio = read_audio_spooled(context, sample_rate, what="context", max_seconds=max_seconds,
                                       min_seconds=MIN_CONTEXT_SECONDS, seconds=seconds, folder=spool_folder)
        else:
            audio = read_audio(context, sample_rate, what="context", max_seconds=max_seconds,
                               min_seconds=MIN_CONTEXT_SECONDS, seconds=seconds)
        if audio.shape[1] < MIN_CONTEXT_SECONDS * SAMPLE_RATE:
            raise InputError(f"the context must be at least {MIN_CONTEXT_SECONDS:g} s long")
        silent = is_silent(audio, SILENCE_DB)  # blockwise: no float64 copy of a long context
        latents = None if silent or not encode else encode_long(self.codec, audio)
        context_chroma_t = None
        if latents is not None and (self.needs_context_chroma or chroma):
            # as the latent cache computes it: on the channels the codec encodes (a mono codec: their mean)
            channels = 1 if getattr(self.codec.config, "stereo", "mono") == "mono" else 2
            context_chroma_t = context_chroma(audio, self.samples_per_frame, SAMPLE_RATE, channels=channels)
            if context_chroma_t.shape[-1] != latents.shape[-1]:
                raise ConfigError(f"the context chroma has {context_chroma_t.shape[-1]} frames, its latents "
                                  f"{latents.shape[-1]}")
        return Context(audio, latents, measure(audio, SAMPLE_RATE).value(), silent, context_chroma_t)

    def encode(self, audio: np.ndarray) -> torch.Tensor:
        """Audio float32 [C, N] (or [B, C, N]) at 48 kHz -> codec latents [B, 64, ceil(N / 4096)]."""
        x = torch.as_tensor(np.asarray(audio, dtype=np.float32))
        return self.codec.encode(x if x.ndim == 3 else x.unsqueeze(0))

    def decode(self, latents: torch.Tensor, length: int, *, width: float = 0.4, seed: int = 0,
               steps: int = 1, mode: str = "consistency", semitones: list[int] | None = None,
               bf16: bool | None = None) -> np.ndarray:
        """Codec latents [B, 64, T] -> float32 audio [B, 2, length] (pseudo-stereo with ``width`` from a
        mono codec, true stereo from a stereo codec). ``mode="deterministic"`` uses the codec's fast
        deterministic head: no decoding noise, so a mono codec gives identical channels. ``semitones``
        (one per stem; a synth codec only): transpose (key lock). ``bf16``: the decoder's networks in bf16
        (None: where the hardware computes it natively; :func:`~diffariff.torchutil.inference_autocast`)."""
        if not 0.0 <= float(width) <= 1.0:
            raise InputError(f"stereo width must be between 0 and 1, got {width}")
        shift = {} if semitones is None else {"semitones": semitones}
        if mode not in ("consistency", "deterministic"):
            raise InputError(f"decode mode must be 'consistency' or 'deterministic', got '{mode}'")
        with inference_autocast(bf16, latents.device):
            if mode == "deterministic":
                y = self.codec.decode(latents, mode="deterministic", length=length, **shift)
            else:
                y = self.codec.decode_pseudo_stereo(latents, width=float(width), steps=steps, seed=int(seed),
                                                    length=length, **shift)
        if y.shape[1] == 1:
            y = y.repeat(1, 2, 1)
        return y.detach().float().numpy()

    def _finish(self, audio: np.ndarray, target_lufs: float) -> np.ndarray:
        """[n, 2, N] -> each candidate at ``target_lufs`` and peak-limited (silent ones unchanged)."""
        return np.stack([normalize_loudness(a, SAMPLE_RATE, target_lufs, ceiling=PEAK_CEILING) for a in audio])

    def _style_latents(self, style_reference: AudioLike | None, sample_rate: int | None) -> torch.Tensor | None:
        if style_reference is None:
            return None
        audio = read_audio(style_reference, sample_rate, what="style reference", min_seconds=MIN_REFERENCE_SECONDS)
        return self.encode(audio)

    # --------------------------------------------------------------------------------- entry points
    def generate(self, context: AudioLike | None = None, request: GenerationRequest | None = None, *,
                 sample_rate: int | None = None, seconds: float | None = None, **options) -> np.ndarray:
        """Generate ``n`` stems for ``context`` -> float32 [n, 2, N] at 48 kHz, N = the context's length
        (after ``seconds`` cropping; without a context, ``seconds`` of silence is the context).

        ``request``: every control (:class:`~diffariff.request.GenerationRequest`: conditions, sampler,
        guidance strengths, seed, loop, long-context windows, decoding), with ``options`` (its field names,
        e.g. ``text=``, ``cfg_context=``, ``seed=``) replacing fields; without a request, ``options`` alone.
        The context is read at ``sample_rate`` (arrays; None: 48 kHz). Same seed, same output.
        """
        req = GenerationRequest.build(request, **options)
        ctx, z = self._generate_latents(context, req, sample_rate=sample_rate, seconds=seconds)
        audio = self.decode(z, ctx.length, width=req.width, seed=self.last_seed or 0, steps=req.decode_steps,
                            mode=req.decode_mode, semitones=self.last_transpositions,
                            bf16=INFERENCE_PRECISIONS[req.precision])
        return self._finish(audio, self.stem_target_lufs(ctx))

    def _generate_latents(self, context: AudioLike | None, request: GenerationRequest, *,
                          sample_rate: int | None = None, seconds: float | None = None,
                          spool_folder: str | os.PathLike | None = None) -> tuple[Context, torch.Tensor]:
        """:meth:`generate` up to the latents: (the prepared context, latents [n, 64, frames]);
        ``spool_folder`` as in :meth:`prepare_context`."""
        req = request
        can_transpose = getattr(self.codec, "can_transpose", False)
        if req.key_lock and not can_transpose:
            raise InputError("key lock needs a bundle whose codec can transpose (the oscillator-bank synth codec)")
        self.last_inputs = file_inputs(context, req.reference, req.style_reference,
                                       *(c for c in (req.clap_mix or ())[:2] if isinstance(c, os.PathLike)))
        ctx = self.prepare_context(context, sample_rate, seconds=seconds, max_seconds=req.max_seconds,
                                   spool_folder=spool_folder, chroma=self.harmony_strength(req) > 0)
        try:
            return ctx, self._latents_for(ctx, req)
        except BaseException:
            ctx.close()
            raise

    def _latents_for(self, ctx: Context, req: GenerationRequest) -> torch.Tensor:
        """The conditions, the sampling and the key lock of :meth:`_generate_latents`: latents [n, 64, frames]."""
        can_transpose = getattr(self.codec, "can_transpose", False)
        seed = self._resolve_seed(req.seed)
        clap = self.condition(req.text, req.reference, reference_sample_rate=req.reference_sample_rate,
                              clap_mix=req.clap_mix, use_bridge=req.use_bridge, seed=seed)
        self.last_condition = None if clap is None else "clap_mix" if req.clap_mix is not None else \
            "+".join(k for k, v in (("text", req.text), ("reference", req.reference)) if v is not None)
        if clap is None and req.style_reference is None and req.use_prior and self.prior is not None and not ctx.silent:
            clap = self.context_condition(ctx.audio, seed=seed, guidance=req.prior_guidance)
            self.last_condition = "prior"
        style = self._style_latents(req.style_reference, req.reference_sample_rate)
        z = self.sample_latents(ctx.latents, clap, self.frames_for(ctx.length), req, seed=seed, style=style,
                                ctx_chroma=ctx.chroma)
        self.last_gaps = []
        if req.fill_gaps and req.loop is None and ctx.latents is not None and not ctx.silent:
            z = self._fill_gaps(z, ctx.latents, clap, req, seed=seed, style=style, ctx_chroma=ctx.chroma,
                                context_db=audio_frame_levels_db(ctx.audio, self.samples_per_frame, z.shape[-1]))
        self.last_transpositions = None
        if can_transpose and req.key_lock is not False:
            self.last_transpositions = choose_transpositions(
                self.codec, z, None if ctx.silent else ctx.audio, ctx.chroma,
                profile=None if self.pitch_critic is None else self.pitch_critic.profile)
        return z

    def reconstruct(self, stem: AudioLike, context: AudioLike | None = None, *, sample_rate: int | None = None,
                    width: float = 0.4, seed: int = 0, decode_steps: int = 1) -> np.ndarray:
        """``stem`` through the codec (encode, pseudo-stereo decode) at the loudness a generated stem for
        ``context`` would get: float32 [2, N]. The ceiling of any generation on these latents."""
        st = read_audio(stem, sample_rate, what="stem", min_seconds=MIN_CONTEXT_SECONDS)
        ctx = self.prepare_context(context, sample_rate, seconds=st.shape[1] / SAMPLE_RATE, encode=False)
        audio = self.decode(self.encode(st), st.shape[1], width=width, seed=seed, steps=decode_steps)
        return self._finish(audio, self.stem_target_lufs(ctx))[0]

    @staticmethod
    def stem_target_lufs(ctx: Context) -> float:
        """Loudness for a stem generated against ``ctx`` (module doc)."""
        return SILENT_CONTEXT_STEM_LUFS if ctx.silent or ctx.lufs <= SILENCE_LUFS else ctx.lufs + STEM_RELATIVE_LU

    @staticmethod
    def mix(context: np.ndarray, *stems: np.ndarray) -> np.ndarray:
        """``context`` [C, N] + the stems ([2, N] each), as float32 [2, N], peak-limited to 0.99."""
        total = to_channels(to_numpy(context, "context"), 2).astype(np.float64)
        for s in stems:
            s = to_channels(to_numpy(s, "stem"), 2)
            if s.shape[1] != total.shape[1]:
                raise InputError(f"stem length {s.shape[1]} differs from the context's {total.shape[1]}")
            total = total + s
        return peak_limit(total.astype(np.float32), PEAK_CEILING)

    def save(self, path: str | os.PathLike, audio: np.ndarray, *, overwrite: bool = False,
             subtype: str = "24", sample_rate: int | None = None, length: int | None = None) -> Path:
        """Write one stem or mix ``audio`` [2, N] (48 kHz) to a .wav / .flac file, atomically (no partial
        or temporary file on failure). ``sample_rate`` / ``length``: write it at that rate (soxr) with
        exactly that many samples, e.g. a 44.1 kHz context's (:mod:`diffariff.timing.daw`). Refuses, with
        an OutputPathError, to write over a file the last :meth:`generate` / :meth:`inpaint` /
        :meth:`vary` / :meth:`arrange` call read (same path, a symlink or a hard link) unless
        ``overwrite=True``, and an output folder it cannot write (:func:`diffariff.fsutil.check_output_path`)."""
        check_output_path(path, self.last_inputs, overwrite, flag="overwrite=True")
        sr = SAMPLE_RATE if sample_rate is None else int(sample_rate)
        if sr == SAMPLE_RATE and length is None:
            return save_audio(path, audio, SAMPLE_RATE, subtype=subtype)
        from ..timing.daw import OutputFormat, to_output_rate

        n = int(length) if length is not None else int(round(np.asarray(audio).shape[-1] * sr / SAMPLE_RATE))
        return save_audio(path, to_output_rate(audio, OutputFormat(sr, n)), sr, subtype=subtype)


__all__ = ["Accompanist", "Arrangement", "Context", "GenerationRequest", "crossfade_paste", "read_audio", "LONG_MODES",
           "SAMPLE_RATE"]
