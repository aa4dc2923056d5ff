"""``diffariff generate | arrange | inpaint | vary``: the Accompanist on the command line.

Every command loads a model bundle (``--bundle PATH``, default: the packaged one), reads its audio with
:mod:`diffariff.audio` (any rate / channel count; resampled to 48 kHz stereo inside), and writes stereo
wav / flac files atomically **at the context's sample rate and exact length** (44.1 kHz in, 44.1 kHz
out; 48 kHz without a context), only after all generation succeeded: on any error nothing is written
and a one-line message is printed (exit code 2 for bad input). Beside each output a sidecar
``OUT.json`` (:mod:`diffariff.timing.daw`) gives the tempo, meter and first downbeat (``--no-sidecar``:
none). With ``-n N`` > 1 the outputs are ``OUT_1.wav`` ... ``OUT_N.wav``. Progress bars appear on a
terminal only (``--quiet`` hides them).

Bars (:mod:`diffariff.timing`): ``generate --bars A:B`` writes a stem that plays in bars A to B only and
is silent elsewhere; ``inpaint --bars A:B`` regenerates bars A to B and keeps the rest of the stem;
``vary --bars A:B`` varies those bars only; ``generate --loop-bars N`` repeats an N-bar loop from bar 1
(or over ``--bars``) to the end. The grid comes from the context's analysis; ``--bpm`` / ``--meter`` /
``--downbeat`` override it.

Before any model loads, each command checks, in this order: its option values; every output path
(never one of the command's input files, by path, symlink or hard link, unless ``--overwrite``; never
a folder; its folder writable: :mod:`diffariff.fsutil`); every input file from its header
(:func:`~diffariff.audio_input.check_audio_input`: existence, format, rate, duration limits, equal
lengths of stem and context); the bundle (:func:`~diffariff.bundle.open_bundle`: manifest, files,
checkpoint kinds). So a bad request is refused in well under a second instead of after the models
have loaded. Warnings (e.g. an 8-channel file being downmixed) are printed as one
``diffariff: warning: ...`` line each.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
from pathlib import Path

from ..errors import InputError, OutputPathError
from ..fsutil import AUDIO_SUFFIXES, check_output_dir, check_output_paths
from .bar_options import check_sidecars, format_for, grid_for, stem_bars, timing_note, write_outputs_for
from .options import add_overwrite, add_timing, cli_warnings, guidance_interval, timing_overrides

_SUFFIXES = AUDIO_SUFFIXES

GENERATE_EXAMPLES = """examples:
  diffariff generate song.wav -o bass.wav --text "electric bass, fingered, warm"
  diffariff generate song.wav -o keys.wav --reference my_piano.wav --mix-out mix.wav
  diffariff generate song.flac -o drums.wav --text drums -n 3 --seed 7 --sampler consistency
  diffariff generate long_song.wav -o pad.wav --text "warm pad" --seconds 60
  diffariff generate song.wav -o fill.wav --text "drum fill" --bars 9:12
  diffariff generate song.wav -o bass.wav --text "bass" --loop-bars 4 --loop-out bass_loop.wav
  diffariff generate song.wav -o bass.wav --text "bass" --bars 5:8 --bpm 92 --meter 4/4 --downbeat 0.12

Any text is a valid prompt (it is embedded, not looked up); tag lists work best."""

ARRANGE_EXAMPLES = """examples:
  diffariff arrange --seconds 10 --part drums --part "warm bass" --part "electric piano" -o song/
  diffariff arrange sketch.wav --part "strings, legato" -o out/ --seed 3

Each part is generated against the context plus all stems before it; OUT_DIR gets one stem per part
(stem_01_<prompt>.wav, ...) and mix.wav."""

INPAINT_EXAMPLES = """examples:
  diffariff inpaint bass.wav song.wav --start 5 --end 8 -o bass_fixed.wav
  diffariff inpaint drums.wav song.wav --start 2.5 --end 4 --text "drum fill" -o drums_fill.wav
  diffariff inpaint bass.wav song.wav --bars 9:12 -o bass_fixed.wav        (bars 9 to 12, inclusive)"""

VARY_EXAMPLES = """examples:
  diffariff vary bass.wav song.wav --strength 0.2 -o bass_var.wav       (subtle)
  diffariff vary bass.wav song.wav --strength 0.8 -n 4 -o bass_var.wav  (loose, 4 candidates)
  diffariff vary bass.wav song.wav --bars 5:8 -o bass_var.wav            (only bars 5 to 8 change)"""


def _key_lock(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--no-key-lock", dest="key_lock", action="store_false", default=None,
                        help="keep the stem's own key (default: with a bundle whose codec can transpose, e.g. the "
                        "default, each stem is transposed by the semitones (-5..+6) that best fit its pitch "
                        "classes to the context's; drums and stems already in key are left as they are)")


def _common(parser: argparse.ArgumentParser, *, conditions: bool = True) -> None:
    g = parser.add_argument_group("model and sampling")
    g.add_argument("--bundle", default="default", help="model bundle folder (default: the packaged bundle)")
    g.add_argument("--sampler", choices=("heun", "dpmpp_2m", "euler", "consistency"), default=None,
                   help="sampler (default: the bundle's EDM model with the sampler its config names, dpmpp_2m for the "
                        "default bundle; else consistency)")
    g.add_argument("--steps", type=int, default=None, help="sampling steps (default: the model's own: 25 for the default bundle's EDM, 5 consistency)")
    g.add_argument("--cfg-context", type=float, default=None,
                   help="context guidance strength (default: the model's own; higher locks the stem more tightly "
                        "to the context's onsets)")
    g.add_argument("--cfg-clap", type=float, default=None, help="CLAP guidance strength (default: the model's own)")
    g.add_argument("--rescale-phi", type=float, default=0.0, help="rescaled CFG blend in [0, 1] (default 0)")
    g.add_argument("--guidance-interval", type=float, nargs=2, metavar=("LO", "HI"), default=None,
                   help="apply guidance only at noise levels LO < sigma <= HI (default: all levels)")
    g.add_argument("--harmony", type=float, default=None, metavar="S",
                   help="harmony guidance strength: at five noise levels the sampler's estimate is nudged toward the "
                   "context's chords through the pitch classes of the codec (or of the bundle's pitch critic) (default 0.2 with a synth-codec bundle such as "
                   "the default; 0: off)")
    g.add_argument("--precision", choices=("auto", "bf16", "fp32"), default="auto",
                   help="the networks' arithmetic: auto (bf16 where the CPU/GPU computes it natively, else fp32), "
                        "bf16 or fp32")
    g.add_argument("--width", type=float, default=0.4, help="stereo width 0-1 (default 0.4)")
    g.add_argument("--seed", type=int, default=None, help="random seed (same seed, same output)")
    g.add_argument("-n", type=int, default=1, help="number of candidates (default 1)")
    g.add_argument("--decode-steps", type=int, default=1, help="codec decoding steps (default 1)")
    g.add_argument("--long-mode", choices=("auto", "windowed", "direct"), default="auto",
                   help="long contexts: overlapping windows beyond one window (auto), always, never")
    g.add_argument("--window-seconds", type=float, default=None,
                   help="window length of windowed generation (default: 2 x the model's training window, "
                   "10.9 s for the default model)")
    g.add_argument("--max-seconds", type=float, default=600.0, help="refuse inputs longer than this (default 600)")
    g.add_argument("--keep-gaps", dest="fill_gaps", action="store_false",
                   help="keep spans (>= 1.5 s) where the stem falls silent while the context plays (default: "
                        "sample them again)")
    g.add_argument("--quiet", action="store_true", help="no progress bars")
    add_overwrite(parser)
    if conditions:
        c = parser.add_argument_group("conditioning")
        c.add_argument("--text", default=None, help="text prompt, e.g. 'electric bass, warm'")
        c.add_argument("--reference", type=Path, default=None, help="audio whose style to follow (>= 1 s)")
        c.add_argument("--no-bridge", action="store_true", help="use the raw text embedding (skip the bridge)")


def _output(parser: argparse.ArgumentParser, help_text: str) -> None:
    parser.add_argument("-o", "--out", type=Path, required=True, help=help_text)


def register(subparsers: argparse._SubParsersAction) -> None:
    fmt = argparse.RawDescriptionHelpFormatter
    p = subparsers.add_parser("generate", help="generate a stem that fits a context mix", epilog=GENERATE_EXAMPLES,
                              formatter_class=fmt, description="Generate a new instrument stem for CONTEXT.")
    p.add_argument("context", type=Path, help="context mix (wav / flac / ogg / mp3)")
    _output(p, "output stem (.wav or .flac)")
    p.add_argument("--mix-out", type=Path, default=None, help="also write context + stem here")
    p.add_argument("--seconds", type=float, default=None, help="use only the first S seconds of the context")
    p.add_argument("--style-reference", type=Path, default=None, help="ground the timbre on this stem (>= 1 s)")
    p.add_argument("--style-strength", type=float, default=0.5, help="style grounding strength 0-1 (default 0.5)")
    p.add_argument("--loop", type=int, choices=(2, 4), default=None, help="make the stem repeat 2 or 4 times")
    p.add_argument("--loop-strength", type=float, default=0.5, help="fraction of steps tied to the loop")
    p.add_argument("--loop-bars", type=int, default=None, metavar="N",
                   help="an N-bar loop (from bar 1, or from the first of --bars) repeated to the end (or over --bars)")
    p.add_argument("--loop-out", type=Path, default=None, help="with --loop-bars: also write the bare N-bar loop here")
    add_timing(p)
    _common(p)
    _key_lock(p)
    p.add_argument("--no-prior", action="store_true",
                   help="with no --text / --reference: do not let the bundle's context prior choose the "
                   "instrument (generate with an empty CLAP condition)")
    p.add_argument("--prior-guidance", type=float,
                   help="guidance of the context prior on the context (1: plain conditional; default: the "
                   "prior's own, 1 for a diffusion prior)")
    p.set_defaults(func=run_generate)

    a = subparsers.add_parser("arrange", help="build a multitrack arrangement part by part", epilog=ARRANGE_EXAMPLES,
                              formatter_class=fmt, description="Generate one stem per --part, each added to the context.")
    a.add_argument("context", type=Path, nargs="?", default=None, help="starting context (default: silence)")
    a.add_argument("--part", action="append", required=True, metavar="PROMPT", help="a part's text prompt (repeat)")
    _output(a, "output folder")
    a.add_argument("--seconds", type=float, default=None, help="length (required without a context; crops one)")
    add_timing(a, bars=False)
    _common(a, conditions=False)
    _key_lock(a)
    a.set_defaults(func=run_arrange)

    i = subparsers.add_parser("inpaint", help="regenerate a time span of a stem", epilog=INPAINT_EXAMPLES,
                              formatter_class=fmt, description="Regenerate seconds START-END of STEM, keep the rest.")
    i.add_argument("stem", type=Path, help="the stem to edit")
    i.add_argument("context", type=Path, help="its context mix (same length)")
    i.add_argument("--start", type=float, default=None, help="start of the span (seconds; or give --bars)")
    i.add_argument("--end", type=float, default=None, help="end of the span (seconds; or give --bars)")
    i.add_argument("--crossfade", type=float, default=0.05, help="crossfade at the borders (seconds, default 0.05)")
    _output(i, "output stem (.wav or .flac)")
    add_timing(i)
    _common(i)
    i.set_defaults(func=run_inpaint)

    v = subparsers.add_parser("vary", help="make variations of a stem", epilog=VARY_EXAMPLES, formatter_class=fmt,
                              description="Re-noise STEM to --strength and denoise it again against CONTEXT.")
    v.add_argument("stem", type=Path, help="the stem to vary")
    v.add_argument("context", type=Path, help="its context mix (same length)")
    v.add_argument("--strength", type=float, default=0.5, help="variation strength in (0, 1] (default 0.5)")
    _output(v, "output stem (.wav or .flac)")
    add_timing(v)
    _common(v)
    v.set_defaults(func=run_vary)


# ------------------------------------------------------------------------------------------ helpers
def _outputs(path: Path, n: int) -> list[Path]:
    """``OUT.wav`` for one candidate, ``OUT_1.wav`` ... ``OUT_n.wav`` for several."""
    if n == 1:
        return [path]
    return [path.with_name(f"{path.stem}_{k}{path.suffix}") for k in range(1, n + 1)]


def _check_common(args: argparse.Namespace) -> None:
    if args.n < 1:
        raise InputError(f"-n must be >= 1, got {args.n}")
    if args.steps is not None and args.steps < 1:
        raise InputError(f"--steps must be >= 1, got {args.steps}")
    if not 0.0 <= args.width <= 1.0:
        raise InputError(f"--width must be between 0 and 1, got {args.width}")
    if args.max_seconds <= 0:
        raise InputError(f"--max-seconds must be > 0, got {args.max_seconds}")
    if args.window_seconds is not None and args.window_seconds <= 0:
        raise InputError(f"--window-seconds must be > 0, got {args.window_seconds}")


def _check_inputs(args: argparse.Namespace, *, context_seconds: float | None = None):
    """Header checks of the context (when a file) and of the conditioning inputs, before any model;
    the context's :class:`~diffariff.audio_input.InputFile` (None without one)."""
    from ..audio_input import MIN_CONTEXT_SECONDS, MIN_REFERENCE_SECONDS, check_audio_input

    ctx = check_audio_input(args.context, "context", min_seconds=MIN_CONTEXT_SECONDS, max_seconds=args.max_seconds,
                            seconds=context_seconds)
    text = getattr(args, "text", None)
    if text is not None and not text.strip():
        raise InputError("the text prompt is empty")
    check_audio_input(getattr(args, "reference", None), "reference", min_seconds=MIN_REFERENCE_SECONDS)
    check_audio_input(getattr(args, "style_reference", None), "style reference", min_seconds=MIN_REFERENCE_SECONDS)
    return ctx


def _check_stem_and_context(args: argparse.Namespace):
    """inpaint / vary: the stem and its context, checked from their headers, must have the same length;
    the stem's :class:`~diffariff.audio_input.InputFile`."""
    from ..audio_input import MIN_CONTEXT_SECONDS, check_audio_input

    stem = check_audio_input(args.stem, "stem", min_seconds=MIN_CONTEXT_SECONDS, max_seconds=args.max_seconds)
    ctx = _check_inputs(args)
    if stem.samples != ctx.samples:
        raise InputError(f"stem and context lengths differ ({stem.samples} vs {ctx.samples} samples at 48 kHz)")
    return stem


def _check_bundle(args: argparse.Namespace) -> None:
    """The bundle's manifest, files and checkpoint headers (no weights are loaded)."""
    from ..bundle import open_bundle

    open_bundle(args.bundle)


def _request(args: argparse.Namespace, **fields):
    """The :class:`~diffariff.request.GenerationRequest` of a command: every request field that the
    command has an option of (same name: ``--cfg-context`` is ``cfg_context``), ``--no-bridge`` /
    ``--no-prior`` / ``--quiet`` as their fields, then ``fields``. Built (and so validated) before any
    model loads."""
    from ..request import GenerationRequest

    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(GenerationRequest) if hasattr(args, f.name)}
    values.update(guidance_interval=guidance_interval(getattr(args, "guidance_interval", None)),
                  use_bridge=not getattr(args, "no_bridge", False), use_prior=not getattr(args, "no_prior", False),
                  progress=_progress(args), **fields)
    return GenerationRequest(**values)


def gaps_note(acc) -> str:
    """The gaps of the last generation that were sampled again (:mod:`diffariff.pipeline.gaps`), for the
    command's summary line ("" when none)."""
    filled = [g for g in getattr(acc, "last_gaps", []) if g.filled]
    if not filled:
        return ""
    spans = ", ".join(f"{g.start_s:.1f}-{g.end_s:.1f} s" for g in filled)
    return f"; silent gap{'s' if len(filled) > 1 else ''} at {spans} generated again"


def _progress(args: argparse.Namespace) -> bool | None:
    return False if args.quiet else None  # None: a bar on a terminal only


def _load(args: argparse.Namespace, sampler: str | None = None):
    """The bundle, checked first (one line for a bad one), then its models loaded: of the latent models
    only the one ``sampler`` runs (:meth:`~diffariff.pipeline.Accompanist.from_pretrained`)."""
    _check_bundle(args)
    from ..pipeline import Accompanist

    return Accompanist.from_pretrained(args.bundle, for_sampler=sampler)


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")[:40] or "part"


# ------------------------------------------------------------------------------------------ commands
@cli_warnings
def run_generate(args: argparse.Namespace) -> int:
    _check_common(args)
    args.timing = timing_overrides(args)
    if args.loop_bars is not None and args.loop_bars < 1:
        raise InputError(f"--loop-bars must be >= 1, got {args.loop_bars}")
    if args.loop_out is not None and args.loop_bars is None:
        raise InputError("--loop-out needs --loop-bars")
    if args.loop_bars is not None and args.loop is not None:
        raise InputError("--loop and --loop-bars cannot be combined; --loop-bars N makes an N-bar loop")
    outs = _outputs(args.out, args.n)
    mixes = _outputs(args.mix_out, args.n) if args.mix_out is not None else []
    loops = _outputs(args.loop_out, args.n) if args.loop_out is not None else []
    inputs = [args.context, args.reference, args.style_reference]
    check_output_paths(outs + mixes + loops, inputs, args.overwrite)
    check_sidecars(args, outs + mixes + loops, inputs)
    _check_inputs(args, context_seconds=args.seconds)
    bar_mode = args.bars is not None or args.loop_bars is not None
    grid = grid_for(args, args.context, seconds=args.seconds, required=bar_mode)
    bars = None
    if args.bars is not None:
        from ..timing.bars import parse_bars

        bars = grid.check_bars(*parse_bars(args.bars))
    first = bars[0] if bars is not None else 1
    if args.loop_bars is not None:
        grid.check_bars(first, first + args.loop_bars - 1, whole=True, what=f"--loop-bars {args.loop_bars}: bars")
    fmt = format_for(args.context, args.seconds)
    req = _request(args)
    acc = _load(args, sampler=args.sampler)
    if bar_mode:  # only the bars are generated; the silence or the repetitions around them are streamed
        return _generate_bars_streamed(args, acc, req, outs, mixes, loops, fmt, grid, bars, first)
    if args.loop is None:  # plain generation: streamed, memory bounded by one decode chunk
        return _generate_streamed(args, acc, req, outs, mixes, fmt, grid)
    stems = acc.generate(args.context, req, seconds=args.seconds)  # --loop: within one window
    items = list(zip(outs, stems))
    if args.mix_out is not None:
        from ..pipeline import read_audio

        ctx = read_audio(args.context, what="context", max_seconds=args.max_seconds, seconds=args.seconds)
        items += [(p, acc.mix(ctx, s)) for p, s in zip(mixes, stems)]
    write_outputs_for(args, items, fmt, grid, kinds=["stem"] * len(outs) + ["mix"] * len(mixes))
    chosen = "; instrument chosen by the context prior" if acc.last_condition == "prior" else ""
    print(f"wrote {', '.join(str(p) for p, _ in items)} ({stems.shape[-1] / acc.sample_rate:.2f} s at "
          f"{fmt.sample_rate} Hz, seed {acc.last_seed}{chosen}{gaps_note(acc)}{timing_note(grid, None)})")
    return 0


def _generate_bars_streamed(args: argparse.Namespace, acc, req, outs: list[Path], mixes: list[Path],
                            loops: list[Path], fmt, grid, bars, first: int) -> int:
    """``generate --bars`` / ``--loop-bars``: the bars (or the loop) generated, the files written block by
    block (:meth:`~diffariff.pipeline.Accompanist.generate_bars_to_files` /
    ``generate_loop_to_files``), then the bare loops (``--loop-out``) and the sidecars."""
    files = _file_options(fmt, grid)
    if args.loop_bars is not None:
        samples = acc.generate_loop_to_files(args.context, args.loop_bars, outs, mix_outs=mixes, start_bar=first,
                                             bars=bars, grid=grid, seconds=args.seconds, request=req, **files)
    else:
        samples = acc.generate_bars_to_files(args.context, bars, outs, mix_outs=mixes, grid=grid,
                                             seconds=args.seconds, request=req, **files)
    _sidecars(args, [(p, "stem") for p in outs] + [(p, "mix") for p in mixes], fmt, grid, bars=acc.last_bars,
              loop_bars=args.loop_bars)
    if loops:
        from ..timing.bars import BarGrid
        from ..timing.daw import OutputFormat

        loop_fmt = OutputFormat(fmt.sample_rate, int(round(args.loop_bars * grid.bar_seconds * fmt.sample_rate)))
        loop_grid = BarGrid.regular(grid.bpm, grid.meter, 0.0, loop_fmt.length / loop_fmt.sample_rate)
        write_outputs_for(args, list(zip(loops, acc.last_loop)), loop_fmt, loop_grid, bars=(1, args.loop_bars),
                          loop_bars=args.loop_bars, kinds=["loop"] * len(loops))
    chosen = "; instrument chosen by the context prior" if acc.last_condition == "prior" else ""
    print(f"wrote {', '.join(str(p) for p in outs + mixes + loops)} ({samples / acc.sample_rate:.2f} s at "
          f"{fmt.sample_rate} Hz, seed {acc.last_seed}{chosen}{gaps_note(acc)}{timing_note(grid, acc.last_bars)})")
    for k, seam in enumerate(acc.last_loop_seams if args.loop_bars is not None else []):
        ref = seam["downbeat_flux_ratio"]
        print(f"loop {k + 1}: {args.loop_bars} bars = {args.loop_bars * grid.bar_seconds:.3f} s; spectral flux at the "
              f"loop point {seam['seam_flux_ratio']:.2f} x the median"
              + (f" (bar lines inside the loop: {ref:.2f} x)" if ref is not None else ""))
    return 0


def _file_options(fmt, grid) -> dict:
    """The ``*_to_files`` keywords of outputs at ``fmt`` whose WAV files carry ``grid``'s tempo chunk."""
    from ..timing.daw import tempo_chunk

    return dict(sample_rate_out=fmt.sample_rate, length_out=fmt.length, extra_chunk=tempo_chunk(grid, fmt))


def _sidecars(args: argparse.Namespace, items: list[tuple[Path, str]], fmt, grid, **sidecar_kw) -> None:
    """The sidecar of each streamed output ``(path, kind)`` (unless ``--no-sidecar``), after all audio."""
    if args.no_sidecar:
        return
    from ..fsutil import write_json_atomic
    from ..timing.daw import sidecar, sidecar_path

    for p, kind in items:
        write_json_atomic(sidecar_path(p), sidecar(p, fmt, grid, context=args.context, kind=kind, **sidecar_kw))


def _generate_streamed(args: argparse.Namespace, acc, req, outs: list[Path], mixes: list[Path], fmt, grid) -> int:
    """``generate`` without bars or loops: stems (and mixes) decoded and written block by block
    (:mod:`diffariff.longform`), WAV files with their tempo chunk in the same write, then the sidecars."""
    samples = acc.generate_to_files(args.context, outs, req, seconds=args.seconds, mix_outs=mixes,
                                    **_file_options(fmt, grid))
    _sidecars(args, [(p, "stem") for p in outs] + [(p, "mix") for p in mixes], fmt, grid)
    chosen = "; instrument chosen by the context prior" if acc.last_condition == "prior" else ""
    print(f"wrote {', '.join(str(p) for p in outs + mixes)} ({samples / acc.sample_rate:.2f} s at {fmt.sample_rate} Hz, "
          f"seed {acc.last_seed}{chosen}{gaps_note(acc)}{timing_note(grid, None)})")
    return 0


@cli_warnings
def run_arrange(args: argparse.Namespace) -> int:
    _check_common(args)
    if args.n != 1:
        raise InputError("arrange makes one stem per part; -n must be 1")
    if args.out.suffix.lower() in _SUFFIXES or (args.out.exists() and not args.out.is_dir()):
        raise OutputPathError(f"{args.out}: arrange writes into a folder; give a folder name")
    if args.context is None and args.seconds is None:
        raise InputError("without a context, give the length with --seconds")
    if args.seconds is not None and args.seconds <= 0:
        raise InputError(f"--seconds must be > 0, got {args.seconds:g}")
    if args.context is None and args.seconds > args.max_seconds:
        raise InputError(f"--seconds {args.seconds:g} is longer than the limit of --max-seconds {args.max_seconds:g}")
    if any(not p.strip() for p in args.part):
        raise InputError("every --part needs a non-empty prompt")
    paths = [args.out / f"stem_{k:02d}_{_slug(p)}.wav" for k, p in enumerate(args.part, 1)] + [args.out / "mix.wav"]
    check_output_dir(args.out)
    check_output_paths(paths, [args.context], args.overwrite)
    args.timing = timing_overrides(args)
    check_sidecars(args, paths, [args.context])
    _check_inputs(args, context_seconds=args.seconds)
    grid = grid_for(args, args.context, seconds=args.seconds, required=False)
    fmt = format_for(args.context, args.seconds)
    req = _request(args)
    acc = _load(args, sampler=args.sampler)
    acc.arrange_to_files(args.context, [{"text": p} for p in args.part], paths[:-1], paths[-1], req,
                         seconds=args.seconds, **_file_options(fmt, grid))
    _sidecars(args, [(p, "stem") for p in paths[:-1]] + [(paths[-1], "mix")], fmt, grid)
    print(f"wrote {len(args.part)} stems and mix.wav to {args.out} at {fmt.sample_rate} Hz{timing_note(grid, None)}")
    return 0


@cli_warnings
def run_inpaint(args: argparse.Namespace) -> int:
    _check_common(args)
    args.timing = timing_overrides(args)
    if args.bars is not None and (args.start is not None or args.end is not None):
        raise InputError("give the span either as --bars A:B or as --start/--end seconds, not both")
    if args.bars is None and (args.start is None or args.end is None):
        raise InputError("give the span to regenerate: --start and --end (seconds), or --bars A:B")
    outs = _outputs(args.out, args.n)
    inputs = [args.stem, args.context, args.reference]
    check_output_paths(outs, inputs, args.overwrite)
    check_sidecars(args, outs, inputs)
    dur = _check_stem_and_context(args).seconds
    if args.bars is None and not 0 <= args.start < args.end <= dur + 1e-9:
        raise InputError(f"inpaint region must satisfy 0 <= start < end <= {dur:.2f} s, got {args.start}-{args.end}")
    grid, bars = stem_bars(args)
    fmt = format_for(args.context, None)
    req = _request(args)
    acc = _load(args, sampler=args.sampler)
    files = _file_options(fmt, grid)  # streamed: memory bounded at any length (pipeline.edits)
    if bars is not None:
        acc.inpaint_bars_to_files(args.stem, args.context, bars, outs, grid=grid, crossfade_s=args.crossfade,
                                  request=req, **files)
        what = f"bars {bars[0]}-{bars[1]}"
    else:
        acc.inpaint_to_files(args.stem, args.context, args.start, args.end, outs, req, crossfade_s=args.crossfade,
                             **files)
        what = f"seconds {args.start:g}-{args.end:g}"
    _sidecars(args, [(p, "stem") for p in outs], fmt, grid, bars=bars)
    print(f"wrote {', '.join(map(str, outs))} ({what} regenerated, seed {acc.last_seed}{timing_note(grid, None)})")
    return 0


@cli_warnings
def run_vary(args: argparse.Namespace) -> int:
    _check_common(args)
    args.timing = timing_overrides(args)
    if not 0.0 < args.strength <= 1.0:
        raise InputError(f"variation strength must be in (0, 1], got {args.strength}")
    outs = _outputs(args.out, args.n)
    inputs = [args.stem, args.context, args.reference]
    check_output_paths(outs, inputs, args.overwrite)
    check_sidecars(args, outs, inputs)
    _check_stem_and_context(args)
    grid, bars = stem_bars(args)
    fmt = format_for(args.context, None)
    req = _request(args)
    acc = _load(args, sampler=args.sampler)
    files = _file_options(fmt, grid)  # streamed: memory bounded at any length (pipeline.edits)
    if bars is not None:
        acc.vary_bars_to_files(args.stem, args.context, bars, args.strength, outs, grid=grid, request=req, **files)
    else:
        acc.vary_to_files(args.stem, args.context, args.strength, outs, req, **files)
    _sidecars(args, [(p, "stem") for p in outs], fmt, grid, bars=bars)
    where = f", bars {bars[0]}-{bars[1]}" if bars is not None else ""
    print(f"wrote {', '.join(map(str, outs))} (strength {args.strength:g}{where}, seed {acc.last_seed})")
    return 0
