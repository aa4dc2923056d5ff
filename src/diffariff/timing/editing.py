"""Bar-aware entry points of the :class:`~diffariff.pipeline.Accompanist` (mixed into it): everything a
producer asks for in bars, on top of the sample-based :meth:`generate` / :meth:`inpaint` / :meth:`vary`.

Each method takes the context's bar grid from ``grid`` (a :class:`~diffariff.timing.bars.BarGrid`),
or analyses the context (:func:`~diffariff.timing.tempo.analyze_audio`); ``bpm`` / ``meter`` /
``downbeat`` override what the analysis would find. Bars are 1-based and inclusive (``(9, 12)`` is four
bars). All audio is float32 ``[n, 2, N]`` at 48 kHz, N = the context's length, sample-aligned with it.

* :meth:`generate_bars`: a stem only in bars A..B, **silent elsewhere** (10 ms fades at the region's
  edges). The model hears the bars plus ``margin_bars`` (default 1) of context on each side, as
  windowed generation would; the stem's loudness follows that stretch of the context.
* :meth:`generate_loop`: an N-bar loop generated against bars ``start_bar``.. of the context and
  repeated at exact bar positions from the first downbeat (or over ``bars``) to the end; silent
  before. The generation runs past the loop's end over a repeat of the context's loop start, and the
  loop's first ``loop_crossfade_s`` crossfade from that continuation into its own start
  (:func:`~diffariff.timing.loops.make_loop`). :attr:`last_loop` holds the bare loops ``[n, 2, L]``
  (L = N bars, rounded to the sample), :attr:`last_loop_seams` their seam measurements.
* :meth:`inpaint_bars`: :meth:`inpaint` over bars A..B (the rest of the stem untouched).
* :meth:`vary_bars`: a variation of the stem pasted over bars A..B only (crossfaded borders).
* :meth:`inpaint_bars_to_files` / :meth:`vary_bars_to_files`: the same written to files with memory
  bounded independent of length (:mod:`diffariff.pipeline.edits`); ``generate_bars_to_files``
  (:mod:`diffariff.longform.stream`) for :meth:`generate_bars`.
"""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np

from ..audio import DEFAULT_MAX_SECONDS
from ..audio_input import (
    MIN_CONTEXT_SECONDS,
    SAMPLE_RATE,
    AudioLike,
    check_audio_input,
    file_inputs,
    read_audio,
)
from ..errors import InputError
from ..request import GenerationRequest
from .bars import BarGrid, parse_bars
from .loops import check_loop_bars, loop_seam_report, make_loop, place_region, tile


class BarEditing:
    """Mixin of bar-aware methods (module doc); needs the host's generate / inpaint / vary."""

    last_grid: BarGrid | None = None
    last_bars: tuple[int, int] | None = None
    last_loop: np.ndarray | None = None
    last_loop_seams: list[dict] = []

    def analyze(self, context: AudioLike, sample_rate: int | None = None, *, bpm: float | None = None,
                meter: str | tuple[int, int] | None = None, downbeat: float | None = None,
                seconds: float | None = None, max_seconds: float | None = DEFAULT_MAX_SECONDS) -> BarGrid:
        """The bar grid of ``context`` (a file or an array ``[C, N]`` at ``sample_rate``)."""
        audio = read_audio(context, sample_rate, what="context", max_seconds=max_seconds,
                           min_seconds=MIN_CONTEXT_SECONDS, seconds=seconds)
        return self._grid_for(audio, None, bpm, meter, downbeat)

    def _grid_for(self, audio: np.ndarray | None, grid: BarGrid | None, bpm, meter, downbeat, *,
                  samples: int | None = None) -> BarGrid:
        """``grid`` (with the overrides applied and the audio's length: ``samples`` at 48 kHz when no
        ``audio`` is given), or the analysis of ``audio``."""
        from .tempo import analyze_audio

        duration = (audio.shape[-1] if audio is not None else int(samples)) / SAMPLE_RATE
        if grid is None:
            grid = analyze_audio(audio, SAMPLE_RATE, bpm=bpm, meter=meter, downbeat_s=downbeat)
        else:
            grid = dataclasses.replace(grid, duration_s=duration)
            if bpm is not None or meter is not None or downbeat is not None:
                grid = grid.with_overrides(bpm, meter, downbeat)
        self.last_grid = grid
        return grid

    def _bar_span(self, grid: BarGrid, bars, n: int, *, whole: bool = False) -> tuple[tuple[int, int], int, int]:
        a, b = grid.check_bars(*parse_bars(bars), n / SAMPLE_RATE, whole=whole)
        s0, s1 = grid.bars_to_samples(a, b, SAMPLE_RATE)
        self.last_bars = (a, b)
        return (a, b), s0, min(s1, n)

    def generate_bars(self, context: AudioLike, bars, *, sample_rate: int | None = None, seconds: float | None = None,
                      grid: BarGrid | None = None, bpm: float | None = None, meter=None, downbeat: float | None = None,
                      margin_bars: float = 1.0, fade_s: float = 0.01, request: GenerationRequest | None = None,
                      **options) -> np.ndarray:
        """A stem in bars ``bars`` = (A, B) only, silent elsewhere (module doc) -> float32 [n, 2, N].
        ``request`` / ``options``: as in :meth:`generate`."""
        req = GenerationRequest.build(request, **options)
        audio = read_audio(context, sample_rate, what="context", max_seconds=req.max_seconds,
                           min_seconds=MIN_CONTEXT_SECONDS, seconds=seconds)
        regions, s0 = self._bars_regions(audio, bars, req, grid=grid, bpm=bpm, meter=meter, downbeat=downbeat,
                                         margin_bars=margin_bars, fade_s=fade_s)
        self.last_inputs = file_inputs(context) + self.last_inputs
        return np.stack([place_region(r, audio.shape[1], s0, 0) for r in regions])

    def _bars_regions(self, audio, bars, req: GenerationRequest, *, grid: BarGrid | None, bpm, meter, downbeat,
                      margin_bars: float, fade_s: float) -> tuple[np.ndarray, int]:
        """The generation of :meth:`generate_bars` on 48 kHz context ``audio`` ``[C, N]`` (an array or a
        spooled signal: only the bars and their margins are read): the stems' bars, faded in and out,
        ``[n, 2, S]`` float32, and their first sample ``s0`` in the context."""
        grid = self._grid_for(audio, grid, bpm, meter, downbeat)
        n = audio.shape[1]
        _, s0, s1 = self._bar_span(grid, bars, n)
        margin = int(round(max(0.0, margin_bars) * grid.bar_seconds * SAMPLE_RATE))
        c0, c1 = max(0, s0 - margin), min(n, s1 + margin)
        if c1 - c0 < MIN_CONTEXT_SECONDS * SAMPLE_RATE:
            raise InputError(f"bars {bars} are {(s1 - s0) / SAMPLE_RATE:.2f} s long; at least "
                             f"{MIN_CONTEXT_SECONDS:g} s is needed")
        stems = self.generate(audio[:, c0:c1], req, sample_rate=SAMPLE_RATE, max_seconds=None)
        fade = int(round(fade_s * SAMPLE_RATE))
        return np.stack([place_region(s[:, s0 - c0:s1 - c0], s1 - s0, 0, fade) for s in stems]), s0

    def generate_loop(self, context: AudioLike, loop_bars: int, *, start_bar: int = 1, bars=None,
                      sample_rate: int | None = None, seconds: float | None = None, grid: BarGrid | None = None,
                      bpm: float | None = None, meter=None, downbeat: float | None = None,
                      loop_crossfade_s: float = 0.05, request: GenerationRequest | None = None,
                      **options) -> np.ndarray:
        """A ``loop_bars``-bar loop repeated over the context (module doc) -> float32 [n, 2, N].
        ``request`` / ``options``: as in :meth:`generate`."""
        req = GenerationRequest.build(request, **options)
        loop_bars = check_loop_bars(loop_bars)
        audio = read_audio(context, sample_rate, what="context", max_seconds=req.max_seconds,
                           min_seconds=MIN_CONTEXT_SECONDS, seconds=seconds)
        span, period = self._loop_parts(audio, loop_bars, req, start_bar=start_bar, bars=bars, grid=grid, bpm=bpm,
                                        meter=meter, downbeat=downbeat, loop_crossfade_s=loop_crossfade_s)
        self.last_inputs = file_inputs(context) + self.last_inputs
        return np.stack([tile(lp, audio.shape[1], span[0], span[1], period) for lp in self.last_loop])

    def _loop_parts(self, audio, loop_bars: int, req: GenerationRequest, *, start_bar: int, bars, grid, bpm, meter,
                    downbeat, loop_crossfade_s: float) -> tuple[tuple[int, int], float]:
        """The generation of :meth:`generate_loop` on 48 kHz context ``audio`` ``[C, N]`` (an array or a
        spooled signal: only the loop's bars are read): the loops go to :attr:`last_loop` (and their seams
        to :attr:`last_loop_seams`); returns the span ``(start, end)`` (samples) they repeat over and
        their exact period (fractional samples)."""
        grid = self._grid_for(audio, grid, bpm, meter, downbeat)
        n = audio.shape[1]
        first = int(start_bar)
        grid.check_bars(first, first + loop_bars - 1, n / SAMPLE_RATE, whole=True, what="the loop's bars")
        src0 = int(round(grid.bar_start_s(first) * SAMPLE_RATE))
        period = loop_bars * grid.bar_seconds * SAMPLE_RATE  # exact, fractional samples
        length = int(round(period))
        tail = min(length, int(round(grid.bar_seconds * SAMPLE_RATE)))
        fade = min(int(round(loop_crossfade_s * SAMPLE_RATE)), tail)
        ctx_loop = np.asarray(audio[:, src0:src0 + length])
        crop = np.concatenate([ctx_loop, ctx_loop[:, :tail]], axis=1)  # the context looped once more
        segs = self.generate(crop, req, sample_rate=SAMPLE_RATE, max_seconds=None)
        loops = np.stack([make_loop(s, length, fade) for s in segs])
        if bars is None:
            span = (int(round(grid.first_downbeat_s * SAMPLE_RATE)), n)
            self.last_bars = (1, max(1, grid.bar_count(n / SAMPLE_RATE)))
        else:
            _, s0, s1 = self._bar_span(grid, bars, n)
            span = (s0, s1)
        inner = [k * grid.bar_seconds for k in range(1, loop_bars + 1)]
        self.last_loop = loops
        self.last_loop_seams = [loop_seam_report(lp, s, inner, SAMPLE_RATE) for lp, s in zip(loops, segs)]
        return span, period

    def _bar_region(self, stem: AudioLike, context: AudioLike | None, bars, *, sample_rate: int | None,
                    grid: BarGrid | None, bpm, meter, downbeat, max_seconds: float | None) -> tuple[float, float]:
        """(start, end) seconds of bars ``bars`` = (A, B) on the context's grid (the stem's without a
        context), the last bar clipped to the end of the audio; :attr:`last_bars` is set. With a ``grid``
        and a file, only the file's header is read (its length at 48 kHz); otherwise the audio is read
        whole (and analysed when there is no grid)."""
        source, what = (stem, "stem") if context is None else (context, "context")
        info = None
        if grid is not None:
            with warnings.catch_warnings():  # reading the file later gives any downmix warning
                warnings.simplefilter("ignore", UserWarning)
                info = check_audio_input(source, what, max_seconds=max_seconds, min_seconds=MIN_CONTEXT_SECONDS)
        if info is not None:
            n = info.samples
            grid = self._grid_for(None, grid, bpm, meter, downbeat, samples=n)
        else:
            audio = read_audio(source, sample_rate, what=what, max_seconds=max_seconds, min_seconds=MIN_CONTEXT_SECONDS)
            n = audio.shape[1]
            grid = self._grid_for(audio, grid, bpm, meter, downbeat)
            del audio
        _, s0, s1 = self._bar_span(grid, bars, n)
        return s0 / SAMPLE_RATE, s1 / SAMPLE_RATE

    def _in_bars(self, stem: AudioLike, context: AudioLike | None, bars, req: GenerationRequest, edit, *,
                 sample_rate: int | None, grid: BarGrid | None, bpm, meter, downbeat):
        """``edit((start_s, end_s))`` over the seconds of bars ``bars`` (:meth:`_bar_region`); :attr:`last_bars`
        keeps the bars across the edit."""
        region = self._bar_region(stem, context, bars, sample_rate=sample_rate, grid=grid, bpm=bpm, meter=meter,
                                  downbeat=downbeat, max_seconds=req.max_seconds)
        span = self.last_bars
        out = edit(region)
        self.last_bars = span
        return out

    def inpaint_bars(self, stem: AudioLike, context: AudioLike | None, bars, *, sample_rate: int | None = None,
                     grid: BarGrid | None = None, bpm: float | None = None, meter=None, downbeat: float | None = None,
                     crossfade_s: float = 0.05, request: GenerationRequest | None = None,
                     **options) -> np.ndarray:
        """:meth:`inpaint` over bars ``bars`` = (A, B) of the context's grid (the stem's grid without a
        context) -> float32 [n, 2, N]; the last bar is clipped to the end of the audio. ``request`` /
        ``options``: as in :meth:`generate`."""
        req = GenerationRequest.build(request, **options)
        return self._in_bars(stem, context, bars, req, lambda r: self.inpaint(
            stem, context, *r, req, sample_rate=sample_rate, crossfade_s=crossfade_s),
            sample_rate=sample_rate, grid=grid, bpm=bpm, meter=meter, downbeat=downbeat)

    def inpaint_bars_to_files(self, stem: AudioLike, context: AudioLike | None, bars, outs, *,
                              sample_rate: int | None = None, grid: BarGrid | None = None, bpm: float | None = None,
                              meter=None, downbeat: float | None = None, crossfade_s: float = 0.05,
                              request: GenerationRequest | None = None, sample_rate_out: int | None = None,
                              length_out: int | None = None, extra_chunk: bytes | None = None, **options) -> int:
        """:meth:`inpaint_bars` written to ``outs`` by :meth:`inpaint_to_files` (memory bounded; the file
        keywords as there). Returns the stem's length in samples at 48 kHz."""
        req = GenerationRequest.build(request, **options)
        return self._in_bars(stem, context, bars, req, lambda r: self.inpaint_to_files(
            stem, context, *r, outs, req, sample_rate=sample_rate, crossfade_s=crossfade_s,
            sample_rate_out=sample_rate_out, length_out=length_out, extra_chunk=extra_chunk),
            sample_rate=sample_rate, grid=grid, bpm=bpm, meter=meter, downbeat=downbeat)

    def vary_bars(self, stem: AudioLike, context: AudioLike | None, bars, strength: float = 0.5, *,
                  sample_rate: int | None = None, grid: BarGrid | None = None, bpm: float | None = None, meter=None,
                  downbeat: float | None = None, crossfade_s: float = 0.05, request: GenerationRequest | None = None,
                  **options) -> np.ndarray:
        """:meth:`vary` of the stem, kept only in bars ``bars`` = (A, B) (``crossfade_s`` raised-cosine
        crossfades at both borders), the original stem elsewhere -> float32 [n, 2, N]. ``request`` /
        ``options``: as in :meth:`generate`."""
        req = GenerationRequest.build(request, **options)
        return self._in_bars(stem, context, bars, req, lambda r: self.vary(
            stem, context, strength, req, sample_rate=sample_rate, region=r, crossfade_s=crossfade_s),
            sample_rate=sample_rate, grid=grid, bpm=bpm, meter=meter, downbeat=downbeat)

    def vary_bars_to_files(self, stem: AudioLike, context: AudioLike | None, bars, strength: float, outs, *,
                           sample_rate: int | None = None, grid: BarGrid | None = None, bpm: float | None = None,
                           meter=None, downbeat: float | None = None, crossfade_s: float = 0.05,
                           request: GenerationRequest | None = None, sample_rate_out: int | None = None,
                           length_out: int | None = None, extra_chunk: bytes | None = None, **options) -> int:
        """:meth:`vary_bars` written to ``outs`` by :meth:`vary_to_files` (memory bounded; the file
        keywords as there). Returns the stem's length in samples at 48 kHz."""
        req = GenerationRequest.build(request, **options)
        return self._in_bars(stem, context, bars, req, lambda r: self.vary_to_files(
            stem, context, strength, outs, req, sample_rate=sample_rate, region=r, crossfade_s=crossfade_s,
            sample_rate_out=sample_rate_out, length_out=length_out, extra_chunk=extra_chunk),
            sample_rate=sample_rate, grid=grid, bpm=bpm, meter=meter, downbeat=downbeat)
