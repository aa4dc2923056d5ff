"""One generation request: every control of :meth:`diffariff.pipeline.Accompanist.generate`, under one name
from the command line to the sampler.

A :class:`GenerationRequest` holds what to condition on (text, reference, style, prior), how to sample
(sampler, steps, the two guidance strengths, seed, loop), how to cover long contexts and how to decode.
The same names are the ``diffariff generate`` options (``--cfg-context`` is ``cfg_context``), the keyword
arguments of ``Accompanist.generate`` / ``inpaint`` / ``vary`` / ``arrange`` and, for the sampling
controls, of :meth:`diffariff.diffusion.model.LatentDiffusion.sample` (:meth:`GenerationRequest.sampling`).
The context itself (audio, its sample rate, ``seconds`` of it) is not part of the request: it is the
input the request is applied to.

    req = GenerationRequest(text="warm fingered bass", cfg_context=1.5, seed=3)
    stems = acc.generate("mix.wav", req)                 # or acc.generate("mix.wav", text=..., seed=3)
    louder = acc.generate("mix.wav", req, cfg_clap=2.0)  # keywords override the request's fields
"""

from __future__ import annotations

import dataclasses
from typing import Any

from .audio import DEFAULT_MAX_SECONDS
from .errors import InputError

#: How a context longer than one window is generated (see :mod:`diffariff.pipeline`).
LONG_MODES = ("auto", "windowed", "direct")
#: Decoding modes of the codec (:meth:`diffariff.codec.model.LatentCodec.decode`).
DECODE_MODES = ("consistency", "deterministic")
#: Repetitions accepted by ``loop``.
LOOP_COUNTS = (1, 2, 3, 4, 6, 8)

AudioLike = Any  # a path, or an array / tensor [C, N] / [N] (diffariff.audio_input)


#: Inference precisions of a request and what they ask of :func:`diffariff.torchutil.inference_autocast`.
INFERENCE_PRECISIONS = {"auto": None, "bf16": True, "fp32": False}


@dataclasses.dataclass(frozen=True)
class GenerationRequest:
    """Every control of a generation (module doc). Units: seconds, dB-free strengths, 48 kHz audio.

    Conditions:
        text: prompt (non-empty), embedded by CLAP, through the bundle's bridge when ``use_bridge``.
        reference: audio whose CLAP embedding conditions the stem (>= 1 s), at ``reference_sample_rate``
            (arrays; None: 48 kHz).
        clap_mix: ``(a, b, ratio)``: slerp of two conditions (texts, audio or embeddings) instead.
        use_bridge: map text embeddings through the bundle's CLAP bridge.
        use_prior: with no other condition, the bundle's context prior picks the instrument, with
            ``prior_guidance`` (None: the prior's own).
        style_reference: audio whose latent statistics ground the timbre, with ``style_strength`` in [0, 1].
    Sampling (the names of ``LatentDiffusion.sample``):
        sampler: "heun" | "dpmpp_2m" | "euler" (the EDM model) or "consistency"; None: the bundle's preferred.
        steps: sampling steps (None: the model's own: 25 for the default bundle's EDM, 5 consistency).
        cfg_context / cfg_clap: guidance strengths of the context and of the CLAP condition (1 = none;
            None: the latent model's own, its config's ``w_ctx`` / ``w_clap``).
        rescale_phi: rescaled classifier-free guidance (0 = off).
        guidance_interval: ``(lo, hi)``: guide only at noise levels lo < sigma <= hi (None: all).
        seed: same seed, same output (None: a fresh one, kept in ``Accompanist.last_seed``).
        n: candidates generated together.
        loop: repetitions (2 or 4) of one phrase, tied for the first ``loop_strength`` of the steps.
        harmony: harmony guidance strength: the sampler's estimate is nudged toward the context's chroma
            through the codec's pitch classes at five noise levels (:mod:`diffariff.pipeline.harmony`).
            None: 0.2 when the bundle's codec has an oscillator bank (the synth codec), else off; 0: off.
    Long contexts:
        long_mode: "auto" (windows past one window), "windowed" or "direct".
        window_seconds / overlap_seconds: window length and overlap (None: 2 training windows, a quarter).
        fill_gaps: sample again the spans (>= 1.5 s) where a stem falls silent while the context plays
            (:mod:`diffariff.pipeline.gaps`); not for loops.
    Decoding and output:
        key_lock: transpose each stem by the whole number of semitones (-5 .. +6) that best fits its pitch
            classes to the context's (:mod:`diffariff.pipeline.key_lock`; a stem already in key, drums, a
            silent or unpitched context: no change). None: on when the bundle's codec can transpose (the
            synth codec), True: required, False: off.
        width: pseudo-stereo width of a mono codec (0 = identical channels).
        decode_steps / decode_mode: the codec's decoding (1 step, "consistency").
        max_seconds: longest context accepted (None: no limit).
        precision: "auto" (bf16 for the latent model's and the decoder's networks where the hardware
            computes bf16 natively, else fp32), "bf16" or "fp32".
        progress: progress bars (None: only on a terminal).
    """

    text: str | None = None
    reference: AudioLike | None = None
    reference_sample_rate: int | None = None
    clap_mix: tuple | None = None
    use_bridge: bool = True
    use_prior: bool = True
    prior_guidance: float | None = None
    style_reference: AudioLike | None = None
    style_strength: float = 0.5
    sampler: str | None = None
    steps: int | None = None
    cfg_context: float | None = None
    cfg_clap: float | None = None
    rescale_phi: float = 0.0
    guidance_interval: tuple[float, float] | None = None
    seed: int | None = None
    n: int = 1
    loop: int | None = None
    loop_strength: float = 0.5
    harmony: float | None = None
    long_mode: str = "auto"
    window_seconds: float | None = None
    overlap_seconds: float | None = None
    fill_gaps: bool = True
    key_lock: bool | None = None
    width: float = 0.4
    decode_steps: int = 1
    decode_mode: str = "consistency"
    max_seconds: float | None = DEFAULT_MAX_SECONDS
    progress: bool | None = False
    precision: str = "auto"

    def __post_init__(self) -> None:
        if self.text is not None and not str(self.text).strip():
            raise InputError("the text prompt is empty")
        if self.long_mode not in LONG_MODES:
            raise InputError(f"long_mode must be one of {', '.join(LONG_MODES)}, got '{self.long_mode}'")
        if int(self.n) < 1:
            raise InputError(f"n (candidates) must be >= 1, got {self.n}")
        if self.steps is not None and int(self.steps) < 1:
            raise InputError(f"steps must be >= 1, got {self.steps}")
        if self.loop is not None and int(self.loop) not in LOOP_COUNTS:
            raise InputError(f"loop must be 2 or 4 repetitions (1-8 accepted), got {self.loop}")
        if self.precision not in INFERENCE_PRECISIONS:
            raise InputError(f"precision must be one of {', '.join(INFERENCE_PRECISIONS)}, got '{self.precision}'")
        for name in ("cfg_context", "cfg_clap"):
            value = getattr(self, name)
            if value is not None and not 0.0 <= float(value) <= 20.0:
                raise InputError(f"{name} must be in [0, 20], got {value}")
        if self.harmony is not None and not 0.0 <= float(self.harmony) <= 10.0:
            raise InputError(f"harmony strength must be in [0, 10], got {self.harmony}")
        if not 0.0 <= float(self.style_strength) <= 1.0:
            raise InputError(f"style strength must be in [0, 1], got {self.style_strength}")
        for name in ("window_seconds", "overlap_seconds", "max_seconds"):
            value = getattr(self, name)
            if value is not None and not float(value) > 0:
                raise InputError(f"{name} must be > 0, got {value}")
        if self.guidance_interval is not None:
            lo, hi = self.guidance_interval
            if not 0 <= float(lo) < float(hi):
                raise InputError(f"guidance interval must satisfy 0 <= lo < hi, got {lo}, {hi}")

    @classmethod
    def build(cls, request: GenerationRequest | None = None, **options) -> GenerationRequest:
        """``request`` (default: every field's default) with ``options`` (field names) replacing its
        fields; an unknown name is an InputError that lists the known ones."""
        unknown = sorted(set(options) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise InputError(f"unknown generation option(s) {', '.join(unknown)} (known: "
                             f"{', '.join(f.name for f in dataclasses.fields(cls))})")
        base = cls() if request is None else request
        if not isinstance(base, cls):
            raise InputError(f"request must be a GenerationRequest, got {type(base).__name__}")
        return dataclasses.replace(base, **options) if options else base

    def sampling(self) -> dict:
        """The sampler's controls, as keyword arguments of ``LatentDiffusion.sample``."""
        return {"sampler": self.sampler, "steps": self.steps, "cfg_context": self.cfg_context,
                "cfg_clap": self.cfg_clap, "rescale_phi": self.rescale_phi,
                "guidance_interval": self.guidance_interval, "loop": self.loop, "loop_strength": self.loop_strength,
                "style_strength": self.style_strength}

    def without_conditions(self) -> GenerationRequest:
        """This request with no CLAP condition and no style (e.g. for an edit that brings its own)."""
        return dataclasses.replace(self, text=None, reference=None, clap_mix=None, style_reference=None)


__all__ = ["GenerationRequest", "LONG_MODES", "DECODE_MODES", "LOOP_COUNTS"]
