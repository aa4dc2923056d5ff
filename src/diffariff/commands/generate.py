"""``diffariff generate | arrange | inpaint | vary``: the Accompanist on the command line.

Every command loads a model bundle (``--bundle PATH``, default: the packaged one), reads its audio with
:mod:`diffariff.audio` (any rate / channel count; resampled to 48 kHz stereo), and writes 48 kHz
stereo wav / flac files atomically, only after all generation succeeded: on any error nothing is
written and a one-line message is printed (exit code 2 for bad input). With ``-n N`` > 1 the outputs
are ``OUT_1.wav`` ... ``OUT_N.wav``. Progress bars appear on a terminal only (``--quiet`` hides them).

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
import re
from pathlib import Path

from ..errors import InputError, OutputPathError
from ..fsutil import AUDIO_SUFFIXES, check_output_dir, check_output_paths
from .options import add_overwrite, cli_warnings, guidance_interval

_SUFFIXES = AUDIO_SUFFIXES

GENERATE_EXAMPLES = """examples:
  diffariff generate song.wav -o bass.wav --text "electric bass, fingered, warm"
  diffariff generate song.wav -o keys.wav --reference my_piano.wav --mix-out mix.wav
  diffariff generate song.flac -o drums.wav --text drums -n 3 --seed 7 --sampler consistency
  diffariff generate long_song.wav -o pad.wav --text "warm pad" --seconds 60

Any text is a valid prompt (it is embedded, not looked up); tag lists work best."""

ARRANGE_EXAMPLES = """examples:
  diffariff arrange --seconds 10 --part drums --part "warm bass" --part "electric piano" -o song/
  diffariff arrange sketch.wav --part "strings, legato" -o out/ --seed 3

Each part is generated against the context plus all stems before it; OUT_DIR gets one stem per part
(stem_01_<prompt>.wav, ...) and mix.wav."""

INPAINT_EXAMPLES = """examples:
  diffariff inpaint bass.wav song.wav --start 5 --end 8 -o bass_fixed.wav
  diffariff inpaint drums.wav song.wav --start 2.5 --end 4 --text "drum fill" -o drums_fill.wav"""

VARY_EXAMPLES = """examples:
  diffariff vary bass.wav song.wav --strength 0.2 -o bass_var.wav       (subtle)
  diffariff vary bass.wav song.wav --strength 0.8 -n 4 -o bass_var.wav  (loose, 4 candidates)"""


def _common(parser: argparse.ArgumentParser, *, conditions: bool = True) -> None:
    g = parser.add_argument_group("model and sampling")
    g.add_argument("--bundle", default="default", help="model bundle folder (default: the packaged bundle)")
    g.add_argument("--sampler", choices=("heun", "dpmpp_2m", "euler", "consistency"), default=None,
                   help="sampler (default: heun with an EDM model, else consistency)")
    g.add_argument("--steps", type=int, default=None, help="sampling steps (default: 30 EDM / 5 consistency)")
    g.add_argument("--cfg-context", type=float, default=1.25,
                   help="context guidance strength (default 1.25; 3 locks the stem more tightly to the "
                        "context's onsets, MODEL_CARD session 18)")
    g.add_argument("--cfg-clap", type=float, default=1.25, help="CLAP guidance strength (default 1.25)")
    g.add_argument("--rescale-phi", type=float, default=0.0, help="rescaled CFG blend in [0, 1] (default 0)")
    g.add_argument("--guidance-interval", type=float, nargs=2, metavar=("LO", "HI"), default=None,
                   help="apply guidance only at noise levels LO < sigma <= HI (default: all levels)")
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
    _common(p)
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
    _common(a, conditions=False)
    a.set_defaults(func=run_arrange)

    i = subparsers.add_parser("inpaint", help="regenerate a time span of a stem", epilog=INPAINT_EXAMPLES,
                              formatter_class=fmt, description="Regenerate seconds START-END of STEM, keep the rest.")
    i.add_argument("stem", type=Path, help="the stem to edit")
    i.add_argument("context", type=Path, help="its context mix (same length)")
    i.add_argument("--start", type=float, required=True, help="start of the span (seconds)")
    i.add_argument("--end", type=float, required=True, help="end of the span (seconds)")
    i.add_argument("--crossfade", type=float, default=0.05, help="crossfade at the borders (seconds, default 0.05)")
    _output(i, "output stem (.wav or .flac)")
    _common(i)
    i.set_defaults(func=run_inpaint)

    v = subparsers.add_parser("vary", help="make variations of a stem", epilog=VARY_EXAMPLES, formatter_class=fmt,
                              description="Re-noise STEM to --strength and denoise it again against CONTEXT.")
    v.add_argument("stem", type=Path, help="the stem to vary")
    v.add_argument("context", type=Path, help="its context mix (same length)")
    v.add_argument("--strength", type=float, default=0.5, help="variation strength in (0, 1] (default 0.5)")
    _output(v, "output stem (.wav or .flac)")
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


def _sampling(args: argparse.Namespace) -> dict:
    return dict(sampler=args.sampler, steps=args.steps, cfg_context=args.cfg_context, cfg_clap=args.cfg_clap,
                rescale_phi=args.rescale_phi, guidance_interval=guidance_interval(args.guidance_interval),
                long_mode=args.long_mode, window_seconds=args.window_seconds)


def _conditions(args: argparse.Namespace) -> dict:
    return dict(text=args.text, reference=args.reference, use_bridge=not args.no_bridge)


def _progress(args: argparse.Namespace) -> bool | None:
    return False if args.quiet else None  # None: a bar on a terminal only


def _load(args: argparse.Namespace):
    """The bundle, checked first (one line for a bad one), then its models loaded."""
    _check_bundle(args)
    from ..pipeline import Accompanist

    return Accompanist.from_pretrained(args.bundle)


def _save_all(items: list[tuple[Path, object]]) -> None:
    from ..audio import save_audio
    from ..pipeline import SAMPLE_RATE

    for path, audio in items:
        save_audio(path, audio, SAMPLE_RATE)


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")[:40] or "part"


# ------------------------------------------------------------------------------------------ commands
@cli_warnings
def run_generate(args: argparse.Namespace) -> int:
    _check_common(args)
    mixes = _outputs(args.mix_out, args.n) if args.mix_out is not None else []
    check_output_paths(_outputs(args.out, args.n) + mixes, [args.context, args.reference, args.style_reference],
                       args.overwrite)
    _check_inputs(args, context_seconds=args.seconds)
    acc = _load(args)
    stems = acc.generate(
        args.context, seconds=args.seconds, width=args.width, seed=args.seed, n=args.n,
        decode_steps=args.decode_steps, max_seconds=args.max_seconds, progress=_progress(args),
        style_reference=args.style_reference, style_strength=args.style_strength, loop=args.loop,
        loop_strength=args.loop_strength, use_prior=not args.no_prior,
        prior_guidance=args.prior_guidance, **_sampling(args), **_conditions(args))
    outs = _outputs(args.out, args.n)
    items = list(zip(outs, stems))
    if args.mix_out is not None:
        from ..pipeline import read_audio

        ctx = read_audio(args.context, what="context", max_seconds=args.max_seconds, seconds=args.seconds)
        items += [(p, acc.mix(ctx, s)) for p, s in zip(_outputs(args.mix_out, args.n), stems)]
    _save_all(items)
    secs = stems.shape[-1] / acc.sample_rate
    chosen = "; instrument chosen by the context prior" if acc.last_condition == "prior" else ""
    print(f"wrote {', '.join(str(p) for p, _ in items)} ({secs:.2f} s, seed {acc.last_seed}{chosen})")
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
    _check_inputs(args, context_seconds=args.seconds)
    acc = _load(args)
    result = acc.arrange(args.context, [{"text": p} for p in args.part], seconds=args.seconds, seed=args.seed,
                         progress=_progress(args), width=args.width, decode_steps=args.decode_steps,
                         max_seconds=args.max_seconds, **_sampling(args))
    _save_all(list(zip(paths, [*result.stems, result.mix])))
    print(f"wrote {len(result.stems)} stems and mix.wav to {args.out}")
    return 0


@cli_warnings
def run_inpaint(args: argparse.Namespace) -> int:
    _check_common(args)
    check_output_paths(_outputs(args.out, args.n), [args.stem, args.context, args.reference], args.overwrite)
    dur = _check_stem_and_context(args).seconds
    if not 0 <= args.start < args.end <= dur + 1e-9:
        raise InputError(f"inpaint region must satisfy 0 <= start < end <= {dur:.2f} s, got {args.start}-{args.end}")
    acc = _load(args)
    stems = acc.inpaint(args.stem, args.context, args.start, args.end, crossfade_s=args.crossfade, width=args.width,
                        seed=args.seed, n=args.n, decode_steps=args.decode_steps, max_seconds=args.max_seconds,
                        progress=_progress(args), **_sampling(args), **_conditions(args))
    outs = _outputs(args.out, args.n)
    _save_all(list(zip(outs, stems)))
    print(f"wrote {', '.join(map(str, outs))} (seconds {args.start:g}-{args.end:g} regenerated, seed {acc.last_seed})")
    return 0


@cli_warnings
def run_vary(args: argparse.Namespace) -> int:
    _check_common(args)
    if not 0.0 < args.strength <= 1.0:
        raise InputError(f"variation strength must be in (0, 1], got {args.strength}")
    check_output_paths(_outputs(args.out, args.n), [args.stem, args.context, args.reference], args.overwrite)
    _check_stem_and_context(args)
    acc = _load(args)
    stems = acc.vary(args.stem, args.context, args.strength, width=args.width, seed=args.seed, n=args.n,
                     decode_steps=args.decode_steps, max_seconds=args.max_seconds, progress=_progress(args),
                     **_sampling(args), **_conditions(args))
    outs = _outputs(args.out, args.n)
    _save_all(list(zip(outs, stems)))
    print(f"wrote {', '.join(map(str, outs))} (strength {args.strength:g}, seed {acc.last_seed})")
    return 0
