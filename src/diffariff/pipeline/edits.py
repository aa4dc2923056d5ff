"""The editing entry points of the :class:`~diffariff.pipeline.Accompanist` (mixed into it): inpaint a
span of a stem, vary a stem, and build an arrangement stem by stem.

Each takes a :class:`~diffariff.request.GenerationRequest` (and/or its fields as keywords) like
``generate``; audio is float32 ``[n, 2, N]`` at 48 kHz, sample-aligned with the stem and its context.
The host provides ``prepare_context``, ``encode``, ``decode``, ``condition``, ``sample_latents``,
``generate``, ``mix``, ``samples_per_frame``, ``stem_target_lufs``, ``_resolve_seed`` and ``_finish``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from ..audio import PEAK_CEILING, SILENCE_LUFS, loudness, peak_limit
from ..audio_input import (
    MIN_CONTEXT_SECONDS,
    SAMPLE_RATE,
    AudioLike,
    crossfade_paste,
    file_inputs,
    read_audio,
)
from ..errors import InputError
from ..request import INFERENCE_PRECISIONS, GenerationRequest


@dataclasses.dataclass
class Arrangement:
    """Result of :meth:`Accompanist.arrange`: one ``float32 [2, N]`` stem per part, in order, and the
    final ``mix`` [2, N] (context + all stems, peak-limited)."""

    stems: list[np.ndarray]
    mix: np.ndarray
    texts: list[str | None]


class StemEdits:
    """Mixin: :meth:`inpaint`, :meth:`vary`, :meth:`arrange` (module doc)."""

    def _stem_and_context(self, stem: AudioLike, context: AudioLike | None, sample_rate: int | None,
                          max_seconds: float | None, chroma: bool = False) -> tuple[np.ndarray, Any]:
        """(the stem float32 [2, N], the prepared context (the host's ``Context``)) of equal length;
        ``chroma``: with the context's chroma (harmony guidance)."""
        st = read_audio(stem, sample_rate, what="stem", max_seconds=max_seconds, min_seconds=MIN_CONTEXT_SECONDS)
        if context is None:
            ctx = self.prepare_context(None, seconds=st.shape[1] / SAMPLE_RATE, max_seconds=max_seconds)
        else:
            ctx = self.prepare_context(context, sample_rate, max_seconds=max_seconds, chroma=chroma)
        if ctx.length != st.shape[1]:
            raise InputError(f"stem and context lengths differ ({st.shape[1]} vs {ctx.length} samples at 48 kHz)")
        return st, ctx

    def inpaint(self, stem: AudioLike, context: AudioLike | None, start_s: float, end_s: float,
                request: GenerationRequest | None = None, *, sample_rate: int | None = None,
                crossfade_s: float = 0.05, **options) -> np.ndarray:
        """Regenerate seconds [start_s, end_s) of ``stem`` against ``context`` (same length), keeping the
        rest: latent frames touching the region are inpainted, the others kept exactly; in audio the
        original stem is kept outside the region and the new audio pasted in with ``crossfade_s``
        raised-cosine crossfades centred on both borders. ``request`` / ``options``: as in :meth:`generate`
        (text / reference condition the new region; no context prior). -> float32 [n, 2, N]."""
        req = GenerationRequest.build(request, **options)
        self.last_inputs = file_inputs(stem, context, req.reference)
        st, ctx = self._stem_and_context(stem, context, sample_rate, req.max_seconds,
                                         chroma=self.harmony_strength(req) > 0)
        dur = st.shape[1] / SAMPLE_RATE
        if not 0 <= start_s < end_s <= dur + 1e-9:
            raise InputError(f"inpaint region must satisfy 0 <= start < end <= {dur:.2f} s, got {start_s}-{end_s}")
        a, b = int(round(start_s * SAMPLE_RATE)), int(round(end_s * SAMPLE_RATE))
        z_stem = self.encode(st)
        frames = z_stem.shape[-1]
        seed = self._resolve_seed(req.seed)
        spf = self.samples_per_frame
        f_idx = torch.arange(frames)
        keep = ~((f_idx * spf < b) & ((f_idx + 1) * spf > a))
        clap = self.condition(req.text, req.reference, use_bridge=req.use_bridge, seed=seed)
        z = self.sample_latents(ctx.latents, clap, frames, req, seed=seed, known=z_stem, keep=keep,
                                ctx_chroma=ctx.chroma)
        new = self.decode(z, st.shape[1], width=req.width, seed=self.last_seed or 0, steps=req.decode_steps,
                          mode=req.decode_mode, bf16=INFERENCE_PRECISIONS[req.precision])
        fade = int(round(crossfade_s * SAMPLE_RATE))
        out = np.stack([crossfade_paste(st, y, a, b, fade) for y in new])
        return np.stack([peak_limit(o, PEAK_CEILING) for o in out])

    def vary(self, stem: AudioLike, context: AudioLike | None, strength: float = 0.5,
             request: GenerationRequest | None = None, *, sample_rate: int | None = None, **options) -> np.ndarray:
        """Variations of ``stem`` (against ``context``, or none): encode, re-noise to ``strength``
        (s_var in (0, 1]; 0.2 subtle, 0.5 clear, 0.8 loose), denoise, decode; each variation at the
        stem's loudness, peak-limited. ``request`` / ``options``: as in :meth:`generate` (text / reference
        condition the variation; a ``loop`` ties its repetitions). -> float32 [n, 2, N]."""
        req = GenerationRequest.build(request, **options)
        self.last_inputs = file_inputs(stem, context, req.reference)
        st, ctx = self._stem_and_context(stem, context, sample_rate, req.max_seconds,
                                         chroma=self.harmony_strength(req) > 0)
        if not 0.0 < float(strength) <= 1.0:
            raise InputError(f"variation strength must be in (0, 1], got {strength}")
        z_stem = self.encode(st)
        seed = self._resolve_seed(req.seed)
        clap = self.condition(req.text, req.reference, use_bridge=req.use_bridge, seed=seed)
        z = self.sample_latents(ctx.latents, clap, z_stem.shape[-1], req, seed=seed, init=z_stem,
                                strength=float(strength), ctx_chroma=ctx.chroma)
        new = self.decode(z, st.shape[1], width=req.width, seed=self.last_seed or 0, steps=req.decode_steps,
                          mode=req.decode_mode, bf16=INFERENCE_PRECISIONS[req.precision])
        target = loudness(st, SAMPLE_RATE)
        return self._finish(new, target) if target > SILENCE_LUFS else np.stack([peak_limit(y) for y in new])

    def arrange(self, context: AudioLike | None, parts: Sequence[dict | str], request: GenerationRequest | None = None,
                *, seconds: float | None = None, sample_rate: int | None = None, **options) -> Arrangement:
        """Multitrack build-up: for each part (a dict of request fields, e.g. ``{"text": "drums"}``, or just
        a prompt string) generate one stem against the context so far, then add it to the context.
        ``request`` / ``options``: the fields every part shares. ``context`` None starts from ``seconds`` of
        silence. Part i uses seed ``seed + i`` unless it gives its own."""
        if not parts:
            raise InputError("arrange needs at least one part")
        common = GenerationRequest.build(request, **options)
        ctx = self.prepare_context(context, sample_rate, seconds=seconds, max_seconds=common.max_seconds)
        base = self._resolve_seed(common.seed)
        running = ctx.audio.copy()
        stems, texts, inputs = [], [], file_inputs(context)
        for i, part in enumerate(parts):
            opts = {"text": part} if isinstance(part, str) else part
            if not isinstance(opts, dict):
                raise InputError(f"part {i} must be a prompt or a dict of options")
            bad = sorted({"context", "sample_rate", "seconds", "n"} & set(opts))
            if bad:
                raise InputError(f"part {i}: option(s) {', '.join(bad)} cannot be set per part")
            part_req = GenerationRequest.build(common, **{"seed": base + i, **opts, "n": 1})
            stem = self.generate(running, part_req)[0]
            inputs += self.last_inputs
            stems.append(stem)
            texts.append(part_req.text)
            running = running + stem
        self.last_inputs = inputs
        return Arrangement(stems=stems, mix=self.mix(ctx.audio, *stems), texts=texts)
