"""Streamed generation to files: the memory of a long stem stays bounded by one decode chunk.

:class:`StreamedOutput` is a mixin of :class:`diffariff.pipeline.Accompanist` (it uses the host's
``_generate_latents``, ``codec``, ``last_seed`` and ``stem_target_lufs``). :meth:`generate_to_files`
gives the same files as ``generate`` followed by :func:`diffariff.timing.daw.write_outputs` (same
samples: the decode is bit-identical, loudness and limiter equal to float rounding), but the stems are
decoded chunk by chunk into a temporary spool (:class:`~.writer.StemSpool`) and written block by block
(:func:`~.writer.write_blocks`), so no whole-length copy of a stem is ever held in memory; a long
context file is itself kept in a temporary file beside the outputs
(:func:`diffariff.audio_input.read_audio_spooled`) and read a span at a time.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from pathlib import Path

from ..audio import PEAK_CEILING
from ..request import INFERENCE_PRECISIONS, GenerationRequest
from ..torchutil import inference_autocast
from .decode import decode_blocks
from .writer import SAMPLE_RATE, StemSpool, limited, mixed_blocks, write_blocks


class StreamedOutput:
    """Mixin: :meth:`generate_to_files` (module doc)."""

    def generate_to_files(self, context, outs: Sequence[str | os.PathLike], request: GenerationRequest | None = None, *,
                          sample_rate: int | None = None, seconds: float | None = None,
                          sample_rate_out: int | None = None, length_out: int | None = None,
                          mix_outs: Sequence[str | os.PathLike] = (), **options) -> int:
        """Generate ``n`` = len(``outs``) stems for ``context`` (``request`` / ``options`` / ``sample_rate`` /
        ``seconds`` as in :meth:`generate`; the request's ``n`` must be len(``outs``)) and write them, and
        optionally context + stem mixes to ``mix_outs``, as 24-bit files at ``sample_rate_out`` Hz with
        ``length_out`` samples (default 48 kHz, the context's length). Returns the context's length in
        samples at 48 kHz."""
        req = GenerationRequest.build(request, **options)
        if len(outs) != int(req.n) or (mix_outs and len(mix_outs) != int(req.n)):
            raise ValueError("give one output path (and one mix path) per candidate")
        folder = Path(outs[0]).parent
        ctx, z = self._generate_latents(context, req, sample_rate=sample_rate, seconds=seconds, spool_folder=folder)
        n, width, decode_steps, decode_mode = int(req.n), req.width, req.decode_steps, req.decode_mode
        rate = SAMPLE_RATE if sample_rate_out is None else int(sample_rate_out)
        length = ctx.length if length_out is None else int(length_out)
        target = self.stem_target_lufs(ctx)
        with contextlib.closing(ctx), StemSpool(int(n), ctx.length, folder=folder) as spool:
            with inference_autocast(INFERENCE_PRECISIONS[req.precision]):
                for block in decode_blocks(self.codec, z, ctx.length, width=width, seed=self.last_seed or 0,
                                           steps=decode_steps, mode=decode_mode, semitones=self.last_transpositions):
                    spool.feed(block)
            del z
            for i, out in enumerate(outs):
                write_blocks(out, spool.finished_blocks(i, target, PEAK_CEILING), rate, length)
            for i, out in enumerate(mix_outs):
                def mix(i: int = i):
                    return mixed_blocks(ctx.audio, spool.finished_blocks(i, target, PEAK_CEILING))
                write_blocks(out, limited(mix, PEAK_CEILING), rate, length)
        return ctx.length
