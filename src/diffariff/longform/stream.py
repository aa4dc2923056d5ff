"""Streamed generation to files: the memory of a long stem stays bounded by one decode chunk.

:class:`StreamedOutput` is a mixin of :class:`diffariff.pipeline.Accompanist` (it uses the host's
``_generate_latents``, ``codec``, ``last_seed`` and ``stem_target_lufs``, and for the bar modes the
``_bars_regions`` / ``_loop_parts`` of :class:`~diffariff.timing.editing.BarEditing`). :meth:`generate_to_files`
gives the same files as ``generate`` followed by :func:`diffariff.timing.daw.write_outputs` (same
samples: the decode is bit-identical, loudness and limiter equal to float rounding), but the stems are
decoded chunk by chunk into a temporary spool (:class:`~.writer.StemSpool`) and written block by block
(:func:`~.writer.write_blocks`), so no whole-length copy of a stem is ever held in memory; a long
context file is itself kept in a temporary file beside the outputs
(:func:`diffariff.audio_input.read_audio_spooled`) and read a span at a time.

:func:`decode_to_spool` (latents -> a filled :class:`~.writer.StemSpool`), :func:`spool_folder` and
:func:`output_format` are the parts the streamed editing commands share (:mod:`diffariff.pipeline.edits`).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from ..audio import PEAK_CEILING, READ_BLOCK
from ..audio_input import MIN_CONTEXT_SECONDS, file_inputs, read_audio_spooled
from ..audio_spool import is_spooled
from ..request import INFERENCE_PRECISIONS, GenerationRequest
from ..timing.loops import check_loop_bars, tiled_blocks
from ..torchutil import inference_autocast
from .decode import decode_blocks
from .writer import SAMPLE_RATE, StemSpool, limited, mixed_blocks, write_blocks


def decode_to_spool(codec, latents: torch.Tensor, length: int, request: GenerationRequest, *, seed: int,
                    semitones: list[int] | None = None, folder: str | os.PathLike | None = None) -> StemSpool:
    """Codec latents ``[n, 64, T]`` decoded chunk by chunk (:func:`~.decode.decode_blocks`: ``length``
    samples at 48 kHz, the request's width, decode steps / mode and precision, decoding seed ``seed``,
    key-lock ``semitones``) into a new :class:`~.writer.StemSpool` in ``folder`` (measured, not yet
    normalised). The caller closes it (it is closed here on error)."""
    spool = StemSpool(int(latents.shape[0]), int(length), folder=folder)
    try:
        with inference_autocast(INFERENCE_PRECISIONS[request.precision]):
            for block in decode_blocks(codec, latents, int(length), width=request.width, seed=int(seed),
                                       steps=request.decode_steps, mode=request.decode_mode, semitones=semitones):
                spool.feed(block)
    except BaseException:
        spool.close()
        raise
    return spool


def spool_folder(out: str | os.PathLike) -> Path:
    """Where the temporary spools of an output file go: its folder, or while that does not exist yet
    (it is created by the first write) its nearest existing ancestor (same file system, mostly)."""
    folder = Path(out).absolute().parent
    while not folder.is_dir() and folder != folder.parent:
        folder = folder.parent
    return folder


def output_format(length: int, sample_rate_out: int | None, length_out: int | None) -> tuple[int, int]:
    """(rate Hz, samples) of the files of a ``length``-sample 48 kHz result: 48 kHz and ``length`` unless
    given."""
    return (SAMPLE_RATE if sample_rate_out is None else int(sample_rate_out),
            int(length) if length_out is None else int(length_out))


def placed_blocks(region: np.ndarray, start: int, length: int, block: int = READ_BLOCK):
    """Silence of ``length`` samples with ``region`` ``[2, R]`` at ``start``, as ``[2, <= block]`` float32
    blocks (what :func:`diffariff.timing.loops.place_region` gives whole, without fades)."""
    end = start + region.shape[-1]
    for k in range(0, int(length), block):
        out = np.zeros((2, min(block, int(length) - k)), dtype=np.float32)
        a, b = max(k, start), min(k + out.shape[1], end)
        if a < b:
            out[:, a - k:b - k] = region[:, a - start:b - start]
        yield out


class StreamedOutput:
    """Mixin: :meth:`generate_to_files` and :meth:`generate_bars_to_files` (module doc)."""

    def generate_to_files(self, context, outs: Sequence[str | os.PathLike], request: GenerationRequest | None = None, *,
                          sample_rate: int | None = None, seconds: float | None = None,
                          sample_rate_out: int | None = None, length_out: int | None = None,
                          mix_outs: Sequence[str | os.PathLike] = (), extra_chunk: bytes | None = None,
                          **options) -> int:
        """Generate ``n`` = len(``outs``) stems for ``context`` (``request`` / ``options`` / ``sample_rate`` /
        ``seconds`` as in :meth:`generate`; the request's ``n`` must be len(``outs``)) and write them, and
        optionally context + stem mixes to ``mix_outs``, as 24-bit files at ``sample_rate_out`` Hz with
        ``length_out`` samples (default 48 kHz, the context's length). ``extra_chunk``: one RIFF chunk's
        bytes (e.g. the tempo's) that every WAV output carries, written with the audio
        (:func:`~.writer.write_blocks`). Returns the context's length in samples at 48 kHz."""
        req = GenerationRequest.build(request, **options)
        if len(outs) != int(req.n) or (mix_outs and len(mix_outs) != int(req.n)):
            raise ValueError("give one output path (and one mix path) per candidate")
        folder = spool_folder(outs[0])
        ctx, z = self._generate_latents(context, req, sample_rate=sample_rate, seconds=seconds, spool_folder=folder)
        rate, length = output_format(ctx.length, sample_rate_out, length_out)
        target = self.stem_target_lufs(ctx)
        with contextlib.closing(ctx), decode_to_spool(self.codec, z, ctx.length, req, seed=self.last_seed or 0,
                                                      semitones=self.last_transpositions, folder=folder) as spool:
            del z
            for i, out in enumerate(outs):
                write_blocks(out, spool.finished_blocks(i, target, PEAK_CEILING), rate, length, extra_chunk=extra_chunk)
            for i, out in enumerate(mix_outs):
                def mix(i: int = i):
                    return mixed_blocks(ctx.audio, spool.finished_blocks(i, target, PEAK_CEILING))
                write_blocks(out, limited(mix, PEAK_CEILING), rate, length, extra_chunk=extra_chunk)
        return ctx.length

    def generate_bars_to_files(self, context, bars, outs: Sequence[str | os.PathLike], *,
                               mix_outs: Sequence[str | os.PathLike] = (), seconds: float | None = None,
                               grid=None, bpm: float | None = None, meter=None, downbeat: float | None = None,
                               margin_bars: float = 1.0, fade_s: float = 0.01, request: GenerationRequest | None = None,
                               sample_rate_out: int | None = None, length_out: int | None = None,
                               extra_chunk: bytes | None = None, **options) -> int:
        """:meth:`~diffariff.timing.editing.BarEditing.generate_bars` of the context file ``context``
        written to ``outs`` (and context + stem, peak-limited, to ``mix_outs``) as
        :meth:`generate_to_files` writes: a context longer than a minute is spooled and only the bars and
        their margins are read; the silence around them is written a block at a time, so memory is
        bounded by the bars' length, not the context's. Returns the context's length (48 kHz samples)."""
        req = GenerationRequest.build(request, **options)

        def stems(audio):
            regions, s0 = self._bars_regions(audio, bars, req, grid=grid, bpm=bpm, meter=meter, downbeat=downbeat,
                                             margin_bars=margin_bars, fade_s=fade_s)
            return [lambda r=r: placed_blocks(r, s0, audio.shape[1]) for r in regions]

        return self._write_bar_files(context, req, stems, outs, mix_outs, seconds=seconds,
                                     sample_rate_out=sample_rate_out, length_out=length_out, extra_chunk=extra_chunk)

    def generate_loop_to_files(self, context, loop_bars: int, outs: Sequence[str | os.PathLike], *,
                               mix_outs: Sequence[str | os.PathLike] = (), start_bar: int = 1, bars=None,
                               seconds: float | None = None, grid=None, bpm: float | None = None, meter=None,
                               downbeat: float | None = None, loop_crossfade_s: float = 0.05,
                               request: GenerationRequest | None = None, sample_rate_out: int | None = None,
                               length_out: int | None = None, extra_chunk: bytes | None = None, **options) -> int:
        """:meth:`~diffariff.timing.editing.BarEditing.generate_loop` of the context file ``context``
        written as :meth:`generate_bars_to_files` writes (only the loop's bars are read from the spooled
        context; the repetitions are written a block at a time). The bare loops stay in :attr:`last_loop`.
        Returns the context's length (48 kHz samples)."""
        req = GenerationRequest.build(request, **options)
        loop_bars = check_loop_bars(loop_bars)

        def stems(audio):
            span, period = self._loop_parts(audio, loop_bars, req, start_bar=start_bar, bars=bars, grid=grid,
                                            bpm=bpm, meter=meter, downbeat=downbeat, loop_crossfade_s=loop_crossfade_s)
            n = audio.shape[1]
            return [lambda lp=lp: tiled_blocks(lp, n, span[0], span[1], period, READ_BLOCK) for lp in self.last_loop]

        return self._write_bar_files(context, req, stems, outs, mix_outs, seconds=seconds,
                                     sample_rate_out=sample_rate_out, length_out=length_out, extra_chunk=extra_chunk)

    def _write_bar_files(self, context, req: GenerationRequest, stems, outs, mix_outs, *, seconds: float | None,
                         sample_rate_out: int | None, length_out: int | None, extra_chunk: bytes | None) -> int:
        """The shared part of the bar modes: checks the paths, reads the context (spooled beside the first
        output when long), ``stems(audio)`` generates and gives one block-generator factory per candidate,
        each written to ``outs`` and, added to the context and peak-limited, to ``mix_outs``; the spool is
        released. Returns the context's length (48 kHz samples)."""
        if len(outs) != int(req.n) or (mix_outs and len(mix_outs) != int(req.n)):
            raise ValueError("give one output path (and one mix path) per candidate")
        audio = read_audio_spooled(context, what="context", max_seconds=req.max_seconds,
                                   min_seconds=MIN_CONTEXT_SECONDS, seconds=seconds, folder=spool_folder(outs[0]))
        try:
            blocks = stems(audio)
            self.last_inputs = file_inputs(context) + self.last_inputs
            n = audio.shape[1]
            rate, length = output_format(n, sample_rate_out, length_out)
            for make, out in zip(blocks, outs):
                write_blocks(out, make(), rate, length, extra_chunk=extra_chunk)
            for make, out in zip(blocks, mix_outs):
                write_blocks(out, limited(lambda make=make: mixed_blocks(audio, make()), PEAK_CEILING), rate, length,
                             extra_chunk=extra_chunk)
            return n
        finally:
            if is_spooled(audio):
                audio.close()
