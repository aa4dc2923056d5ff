"""The editing entry points of the :class:`~diffariff.pipeline.Accompanist` (mixed into it): inpaint a
span of a stem, vary a stem, and build an arrangement stem by stem.

Each takes a :class:`~diffariff.request.GenerationRequest` (and/or its fields as keywords) like
``generate``; audio is float32 ``[n, 2, N]`` at 48 kHz, sample-aligned with the stem and its context.
The host provides ``prepare_context``, ``decode``, ``condition``, ``sample_latents``, ``generate``,
``_generate_latents``, ``mix``, ``codec``, ``samples_per_frame``, ``stem_target_lufs``, ``_resolve_seed``
and ``_finish``.

Each has a ``*_to_files`` twin (what the commands run) that writes the files the method's arrays would
give through :func:`diffariff.timing.daw.write_outputs` (24-bit, at ``sample_rate_out`` Hz with
``length_out`` samples), with peak memory that does not grow with the length: a stem or context file
longer than a minute is spooled to a temporary file beside the outputs
(:func:`~diffariff.audio_input.read_audio_spooled`), it is encoded chunk by chunk
(:func:`~diffariff.longform.encode.encode_long`), its latents (4096 x fewer numbers than the audio)
are sampled in windows as always, the new audio is decoded chunk by chunk into a spool
(:func:`~diffariff.longform.stream.decode_to_spool`), and every output is pasted, normalised, limited,
resampled and written a block at a time (:mod:`diffariff.longform.writer`). Same samples as the arrays
up to float rounding where a loudness is measured block-wise (``vary``, ``arrange``), bit-equal
elsewhere; for ``arrange`` that rounding also reaches the next part's context.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from ..audio import PEAK_CEILING, READ_BLOCK, SILENCE_LUFS, loudness, peak_limit
from ..audio_input import (
    MIN_CONTEXT_SECONDS,
    SAMPLE_RATE,
    AudioLike,
    crossfade_paste,
    crossfade_paste_blocks,
    file_inputs,
    read_audio,
    read_audio_spooled,
)
from ..audio_spool import SpooledAudio, is_spooled
from ..errors import InputError
from ..longform.encode import encode_long
from ..longform.loudness import measure
from ..longform.stream import decode_to_spool, output_format, spool_folder
from ..longform.writer import limited, mixed_blocks, write_blocks
from ..request import INFERENCE_PRECISIONS, GenerationRequest


@dataclasses.dataclass
class Arrangement:
    """Result of :meth:`Accompanist.arrange`: one ``float32 [2, N]`` stem per part, in order, and the
    final ``mix`` [2, N] (context + all stems, peak-limited)."""

    stems: list[np.ndarray]
    mix: np.ndarray
    texts: list[str | None]


def _close(audio) -> None:
    """Release a spooled signal's temporary file (an array: nothing to do)."""
    if is_spooled(audio):
        audio.close()


def _check_outs(outs: Sequence, n: int) -> None:
    """ValueError unless there is one output path per candidate."""
    if len(outs) != int(n):
        raise ValueError(f"give one output path per candidate ({int(n)}), got {len(outs)}")


class StemEdits:
    """Mixin: :meth:`inpaint`, :meth:`vary`, :meth:`arrange` and their ``*_to_files`` twins (module doc)."""

    # ------------------------------------------------------------------------------ shared steps
    def _stem_and_context(self, stem: AudioLike, context: AudioLike | None, sample_rate: int | None,
                          max_seconds: float | None, chroma: bool = False,
                          folder: str | os.PathLike | None = None) -> tuple[np.ndarray | SpooledAudio, Any]:
        """(the stem float32 [2, N], the prepared context (the host's ``Context``)) of equal length;
        ``chroma``: with the context's chroma (harmony guidance). ``folder``: long files are spooled there
        (:class:`~diffariff.audio_spool.SpooledAudio`; the caller closes the stem and the context)."""
        if folder is None:
            st = read_audio(stem, sample_rate, what="stem", max_seconds=max_seconds, min_seconds=MIN_CONTEXT_SECONDS)
        else:
            st = read_audio_spooled(stem, sample_rate, what="stem", max_seconds=max_seconds,
                                    min_seconds=MIN_CONTEXT_SECONDS, folder=folder)
        with contextlib.ExitStack() as undo:
            undo.callback(_close, st)
            if context is None:
                ctx = self.prepare_context(None, seconds=st.shape[1] / SAMPLE_RATE, max_seconds=max_seconds,
                                           spool_folder=folder)
            else:
                ctx = self.prepare_context(context, sample_rate, max_seconds=max_seconds, chroma=chroma,
                                           spool_folder=folder)
            undo.callback(ctx.close)
            if ctx.length != st.shape[1]:
                raise InputError(f"stem and context lengths differ ({st.shape[1]} vs {ctx.length} samples at 48 kHz)")
            undo.pop_all()
        return st, ctx

    def _inpaint_latents(self, st, ctx, start_s: float, end_s: float, req: GenerationRequest) -> tuple[torch.Tensor, int, int]:
        """:meth:`inpaint` up to the latents: (latents [n, 64, frames] with the frames outside the region
        kept exactly, the region's first and end sample at 48 kHz)."""
        dur = st.shape[1] / SAMPLE_RATE
        if not 0 <= start_s < end_s <= dur + 1e-9:
            raise InputError(f"inpaint region must satisfy 0 <= start < end <= {dur:.2f} s, got {start_s}-{end_s}")
        a, b = int(round(start_s * SAMPLE_RATE)), int(round(end_s * SAMPLE_RATE))
        z_stem = encode_long(self.codec, st)
        frames = z_stem.shape[-1]
        seed = self._resolve_seed(req.seed)
        spf = self.samples_per_frame
        f_idx = torch.arange(frames)
        keep = ~((f_idx * spf < b) & ((f_idx + 1) * spf > a))
        clap = self.condition(req.text, req.reference, use_bridge=req.use_bridge, seed=seed)
        z = self.sample_latents(ctx.latents, clap, frames, req, seed=seed, known=z_stem, keep=keep,
                                ctx_chroma=ctx.chroma)
        return z, a, b

    def _vary_latents(self, st, ctx, strength: float, req: GenerationRequest) -> torch.Tensor:
        """:meth:`vary` up to the latents [n, 64, frames]."""
        if not 0.0 < float(strength) <= 1.0:
            raise InputError(f"variation strength must be in (0, 1], got {strength}")
        z_stem = encode_long(self.codec, st)
        seed = self._resolve_seed(req.seed)
        clap = self.condition(req.text, req.reference, use_bridge=req.use_bridge, seed=seed)
        return self.sample_latents(ctx.latents, clap, z_stem.shape[-1], req, seed=seed, init=z_stem,
                                   strength=float(strength), ctx_chroma=ctx.chroma)

    @staticmethod
    def _region_samples(region: tuple[float, float] | None, n: int) -> tuple[int, int] | None:
        """``region`` (start, end) seconds -> its first and end sample at 48 kHz (end clipped to ``n``)."""
        if region is None:
            return None
        a, b = int(round(region[0] * SAMPLE_RATE)), min(n, int(round(region[1] * SAMPLE_RATE)))
        if not 0 <= a < b:
            raise InputError(f"variation region must satisfy 0 <= start < end <= {n / SAMPLE_RATE:.2f} s, "
                             f"got {region[0]}-{region[1]}")
        return a, b

    def _decode_request(self, req: GenerationRequest) -> dict:
        """The keywords of the host's ``decode`` for ``req`` (decoding seed: the last sampling seed)."""
        return dict(width=req.width, seed=self.last_seed or 0, steps=req.decode_steps, mode=req.decode_mode,
                    bf16=INFERENCE_PRECISIONS[req.precision])

    # ------------------------------------------------------------------------------ arrays
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
        z, a, b = self._inpaint_latents(st, ctx, start_s, end_s, req)
        new = self.decode(z, st.shape[1], **self._decode_request(req))
        fade = int(round(crossfade_s * SAMPLE_RATE))
        return np.stack([peak_limit(crossfade_paste(st, y, a, b, fade), PEAK_CEILING) for y in new])

    def vary(self, stem: AudioLike, context: AudioLike | None, strength: float = 0.5,
             request: GenerationRequest | None = None, *, sample_rate: int | None = None,
             region: tuple[float, float] | None = None, crossfade_s: float = 0.05, **options) -> np.ndarray:
        """Variations of ``stem`` (against ``context``, or none): encode, re-noise to ``strength``
        (s_var in (0, 1]; 0.2 subtle, 0.5 clear, 0.8 loose), denoise, decode; each variation at the
        stem's loudness, peak-limited. ``region`` (start, end) seconds: keep the variation there only,
        pasted into the original stem with ``crossfade_s`` raised-cosine crossfades, peak-limited again.
        ``request`` / ``options``: as in :meth:`generate` (text / reference condition the variation; a
        ``loop`` ties its repetitions). -> float32 [n, 2, N]."""
        req = GenerationRequest.build(request, **options)
        self.last_inputs = file_inputs(stem, context, req.reference)
        st, ctx = self._stem_and_context(stem, context, sample_rate, req.max_seconds,
                                         chroma=self.harmony_strength(req) > 0)
        span = self._region_samples(region, st.shape[1])
        z = self._vary_latents(st, ctx, strength, req)
        new = self.decode(z, st.shape[1], **self._decode_request(req))
        target = loudness(st, SAMPLE_RATE)
        out = self._finish(new, target) if target > SILENCE_LUFS else np.stack([peak_limit(y) for y in new])
        if span is None:
            return out
        fade = int(round(crossfade_s * SAMPLE_RATE))
        return np.stack([peak_limit(crossfade_paste(st, v, *span, fade), PEAK_CEILING) for v in out])

    def arrange(self, context: AudioLike | None, parts: Sequence[dict | str], request: GenerationRequest | None = None,
                *, seconds: float | None = None, sample_rate: int | None = None, **options) -> Arrangement:
        """Multitrack build-up: for each part (a dict of request fields, e.g. ``{"text": "drums"}``, or just
        a prompt string) generate one stem against the context so far, then add it to the context.
        ``request`` / ``options``: the fields every part shares. ``context`` None starts from ``seconds`` of
        silence. Part i uses seed ``seed + i`` unless it gives its own."""
        part_reqs = self._part_requests(parts, request, options)
        common = GenerationRequest.build(request, **options)
        ctx = self.prepare_context(context, sample_rate, seconds=seconds, max_seconds=common.max_seconds, encode=False)
        running = ctx.audio.copy()
        stems, inputs = [], file_inputs(context)
        for part_req in part_reqs:
            stem = self.generate(running, part_req)[0]
            inputs += self.last_inputs
            stems.append(stem)
            running = running + stem
        self.last_inputs = inputs
        return Arrangement(stems=stems, mix=self.mix(ctx.audio, *stems), texts=[r.text for r in part_reqs])

    def _part_requests(self, parts: Sequence[dict | str], request: GenerationRequest | None,
                       options: dict) -> list[GenerationRequest]:
        """The request of each part of :meth:`arrange` (seed ``seed + i`` unless the part gives one)."""
        if not parts:
            raise InputError("arrange needs at least one part")
        common = GenerationRequest.build(request, **options)
        base = self._resolve_seed(common.seed)
        reqs = []
        for i, part in enumerate(parts):
            opts = {"text": part} if isinstance(part, str) else part
            if not isinstance(opts, dict):
                raise InputError(f"part {i} must be a prompt or a dict of options")
            bad = sorted({"context", "sample_rate", "seconds", "n"} & set(opts))
            if bad:
                raise InputError(f"part {i}: option(s) {', '.join(bad)} cannot be set per part")
            reqs.append(GenerationRequest.build(common, **{"seed": base + i, **opts, "n": 1}))
        return reqs

    # ------------------------------------------------------------------------------ files
    @contextlib.contextmanager
    def _file_edit(self, stem: AudioLike, context: AudioLike | None, outs: Sequence[str | os.PathLike],
                   req: GenerationRequest, sample_rate: int | None):
        """The shared set-up of :meth:`inpaint_to_files` and :meth:`vary_to_files`: checks ``outs``, reads
        the stem and the context (spooled beside the first output when long) and yields ``(stem,
        context, decoded)``, where ``decoded(z)`` decodes latents ``[n, D, T]`` into a
        :class:`~diffariff.longform.stream.StemSpool` of the stem's length. Every temporary file is
        released on exit."""
        _check_outs(outs, req.n)
        folder = spool_folder(outs[0])
        self.last_inputs = file_inputs(stem, context, req.reference)
        st, ctx = self._stem_and_context(stem, context, sample_rate, req.max_seconds,
                                         chroma=self.harmony_strength(req) > 0, folder=folder)
        with contextlib.closing(ctx), contextlib.ExitStack() as stack:
            stack.callback(_close, st)

            def decoded(z: torch.Tensor):
                return stack.enter_context(decode_to_spool(self.codec, z, st.shape[1], req,
                                                           seed=self.last_seed or 0, folder=folder))
            yield st, ctx, decoded

    def inpaint_to_files(self, stem: AudioLike, context: AudioLike | None, start_s: float, end_s: float,
                         outs: Sequence[str | os.PathLike], request: GenerationRequest | None = None, *,
                         sample_rate: int | None = None, crossfade_s: float = 0.05,
                         sample_rate_out: int | None = None, length_out: int | None = None,
                         extra_chunk: bytes | None = None, **options) -> int:
        """:meth:`inpaint` written to ``outs`` (one per candidate: the request's ``n``) as 24-bit files at
        ``sample_rate_out`` Hz with ``length_out`` samples (default 48 kHz, the stem's length), memory
        bounded (module doc). ``extra_chunk``: a RIFF chunk every WAV output carries
        (:func:`~diffariff.longform.writer.write_blocks`). Returns the stem's length in samples at 48 kHz."""
        req = GenerationRequest.build(request, **options)
        with self._file_edit(stem, context, outs, req, sample_rate) as (st, ctx, decoded):
            z, a, b = self._inpaint_latents(st, ctx, start_s, end_s, req)
            spool = decoded(z)
            fade = int(round(crossfade_s * SAMPLE_RATE))
            rate, length = output_format(st.shape[1], sample_rate_out, length_out)
            for i, out in enumerate(outs):
                def pasted(i: int = i):
                    return crossfade_paste_blocks(st, spool.raw_blocks(i), a, b, fade)
                write_blocks(out, limited(pasted, PEAK_CEILING), rate, length, extra_chunk=extra_chunk)
            return int(st.shape[1])

    def vary_to_files(self, stem: AudioLike, context: AudioLike | None, strength: float,
                      outs: Sequence[str | os.PathLike], request: GenerationRequest | None = None, *,
                      sample_rate: int | None = None, region: tuple[float, float] | None = None,
                      crossfade_s: float = 0.05, sample_rate_out: int | None = None, length_out: int | None = None,
                      extra_chunk: bytes | None = None, **options) -> int:
        """:meth:`vary` written to ``outs`` as :meth:`inpaint_to_files` writes (memory bounded, module
        doc). Returns the stem's length in samples at 48 kHz."""
        req = GenerationRequest.build(request, **options)
        with self._file_edit(stem, context, outs, req, sample_rate) as (st, ctx, decoded):
            span = self._region_samples(region, st.shape[1])
            spool = decoded(self._vary_latents(st, ctx, strength, req))
            target = measure(st, SAMPLE_RATE).value()
            fade = int(round(crossfade_s * SAMPLE_RATE))
            rate, length = output_format(st.shape[1], sample_rate_out, length_out)

            def varied(i: int):  # vary's array, a block at a time
                if target > SILENCE_LUFS:
                    return spool.finished_blocks(i, target, PEAK_CEILING)
                return limited(lambda: spool.raw_blocks(i), PEAK_CEILING)

            for i, out in enumerate(outs):
                blocks = varied(i) if span is None else \
                    limited(lambda i=i: crossfade_paste_blocks(st, varied(i), *span, fade), PEAK_CEILING)
                write_blocks(out, blocks, rate, length, extra_chunk=extra_chunk)
            return int(st.shape[1])

    def arrange_to_files(self, context: AudioLike | None, parts: Sequence[dict | str],
                         outs: Sequence[str | os.PathLike], mix_out: str | os.PathLike | None = None,
                         request: GenerationRequest | None = None, *, seconds: float | None = None,
                         sample_rate: int | None = None, sample_rate_out: int | None = None,
                         length_out: int | None = None, extra_chunk: bytes | None = None, **options) -> list[str | None]:
        """:meth:`arrange` written to ``outs`` (one stem file per part) and ``mix_out`` (context + all
        stems, peak-limited), as :meth:`inpaint_to_files` writes (memory bounded, module doc): the
        context so far and each finished stem stay in temporary files. No file is written unless every
        part was generated. Returns the parts' texts."""
        part_reqs = self._part_requests(parts, request, options)
        if len(outs) != len(part_reqs):
            raise ValueError(f"give one output path per part ({len(part_reqs)}), got {len(outs)}")
        folder = spool_folder(outs[0])
        common = GenerationRequest.build(request, **options)
        ctx = self.prepare_context(context, sample_rate, seconds=seconds, max_seconds=common.max_seconds,
                                   encode=False, spool_folder=folder)
        n, inputs = ctx.length, file_inputs(context)
        with contextlib.closing(ctx), contextlib.ExitStack() as stack:
            running, stems = ctx.audio, []
            for part_req in part_reqs:
                part_ctx, z = self._generate_latents(running, part_req)
                inputs += self.last_inputs
                target = self.stem_target_lufs(part_ctx)
                stem = stack.enter_context(SpooledAudio(2, folder=folder))
                with decode_to_spool(self.codec, z, n, part_req, seed=self.last_seed or 0,
                                     semitones=self.last_transpositions, folder=folder) as spool:
                    for block in spool.finished_blocks(0, target, PEAK_CEILING):
                        stem.append(block)
                stems.append(stem)
                following = stack.enter_context(SpooledAudio(2, folder=folder))
                for k in range(0, n, READ_BLOCK):  # as arrange's float32 running sum
                    following.append(running[:, k:k + READ_BLOCK] + stem[:, k:k + READ_BLOCK])
                if running is not ctx.audio:
                    running.close()
                running = following
            self.last_inputs = inputs
            rate, length = output_format(n, sample_rate_out, length_out)
            for stem, out in zip(stems, outs):
                write_blocks(out, stem.blocks(), rate, length, extra_chunk=extra_chunk)
            if mix_out is not None:
                def summed():  # float32 samples add exactly in float64 (unless 2^29 apart), so context +
                    for k in range(0, n, READ_BLOCK):  # this sum rounds as :meth:`mix`'s one-by-one additions
                        yield sum(s[:, k:k + READ_BLOCK].astype(np.float64) for s in stems)
                write_blocks(mix_out, limited(lambda: mixed_blocks(ctx.audio, summed()), PEAK_CEILING), rate,
                             length, extra_chunk=extra_chunk)
        return [r.text for r in part_reqs]


__all__ = ["Arrangement", "StemEdits"]
