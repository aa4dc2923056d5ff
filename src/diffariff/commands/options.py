"""Argument checks and behaviour shared by the command-line front ends (``generate``, ``reconstruct``,
``eval generation``, ...); light imports only, so that ``--help`` stays fast."""

from __future__ import annotations

import argparse
import contextlib
import functools
import math
import sys
import warnings
from collections.abc import Callable, Iterator, Sequence

from ..errors import InputError


def guidance_interval(values: Sequence[float] | None) -> tuple[float, float] | None:
    """``--guidance-interval LO HI`` -> ``(lo, hi)`` (noise levels, latent units), or None when not given.

    InputError unless ``0 <= LO < HI`` and both are finite."""
    if values is None:
        return None
    lo, hi = (float(v) for v in values)
    if not (math.isfinite(lo) and math.isfinite(hi) and 0.0 <= lo < hi):
        raise InputError(f"--guidance-interval needs 0 <= LO < HI (noise levels), got {lo:g} {hi:g}")
    return lo, hi


def add_overwrite(parser: argparse.ArgumentParser, what: str = "an input file of the command") -> None:
    """``--overwrite``: the only way to let an output replace ``what`` (refused by default)."""
    parser.add_argument("--overwrite", action="store_true",
                        help=f"allow an output to replace {what} (refused by default)")


@contextlib.contextmanager
def one_line_warnings(enabled: bool = True) -> Iterator[None]:
    """Inside, every warning that is shown appears as one line ``diffariff: warning: <message>`` on
    stderr (each distinct message once), never as Python's ``file:line: UserWarning`` plus source
    line. The warning filters are left alone (an ignored warning stays silent, ``-W error`` still
    raises). ``enabled`` False (``--debug``): Python's own format."""
    if not enabled:
        yield
        return
    seen: set[str] = set()

    def show(message, category, filename, lineno, file=None, line=None) -> None:
        text = " ".join(str(message).split())
        if text not in seen:
            seen.add(text)
            print(f"diffariff: warning: {text}", file=sys.stderr)

    with warnings.catch_warnings():
        warnings.showwarning = show
        yield


def cli_warnings(handler: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """A command handler run inside :func:`one_line_warnings` (Python's format with ``--debug``)."""

    @functools.wraps(handler)
    def run(args: argparse.Namespace) -> int:
        with one_line_warnings(not getattr(args, "debug", False)):
            return handler(args)

    return run


def add_timing(parser: argparse.ArgumentParser, *, bars: bool = True, sidecar: bool = True) -> None:
    """The bar options: ``--bars A:B`` (when ``bars``), the analysis overrides ``--bpm`` / ``--meter`` /
    ``--downbeat`` and ``--no-sidecar`` (when ``sidecar``)."""
    g = parser.add_argument_group("bars and tempo (bars are numbered from 1, ranges inclusive, like a DAW)")
    if bars:
        g.add_argument("--bars", default=None, metavar="A:B", help="work on bars A to B only (e.g. 9:12)")
    g.add_argument("--bpm", type=float, default=None,
                   help="tempo in quarter notes per minute, instead of the detected one (20 < BPM < 400)")
    g.add_argument("--meter", default=None, help="meter instead of the detected one: 4/4, 3/4, 6/8, ...")
    g.add_argument("--downbeat", type=float, default=None, metavar="SECONDS",
                   help="time of the first downbeat (bar 1) instead of the detected one")
    if sidecar:
        g.add_argument("--no-sidecar", action="store_true",
                       help="do not write OUT.json (tempo, meter, first downbeat) beside each output, nor the "
                       "tempo chunk inside a WAV output (and skip the tempo analysis when no bar option needs it)")


def timing_overrides(args: argparse.Namespace) -> dict:
    """``bpm`` / ``meter`` / ``downbeat`` from the bar options, checked (InputError: one line); a
    ``--bars`` value is checked for form too (its end against the audio later)."""
    from ..timing.bars import check_bpm, parse_bars, parse_meter

    if getattr(args, "bars", None) is not None:
        parse_bars(args.bars)
    bpm = None if args.bpm is None else check_bpm(args.bpm)
    meter = None if args.meter is None else parse_meter(args.meter)
    if args.downbeat is not None and not (math.isfinite(args.downbeat) and args.downbeat >= 0):
        raise InputError(f"--downbeat must be a time >= 0 s, got {args.downbeat:g}")
    return {"bpm": bpm, "meter": meter, "downbeat": args.downbeat}
