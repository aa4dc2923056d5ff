"""Bar options and DAW-friendly outputs of ``generate | arrange | inpaint | vary``: the context's bar
grid before any model loads (:mod:`diffariff.timing`), outputs written at the context's sample rate and
length with a sidecar ``OUT.json`` each (:mod:`diffariff.timing.daw`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import InputError
from ..fsutil import check_output_paths


def check_sidecars(args: argparse.Namespace, outs: list[Path], inputs: list) -> None:
    """The sidecar ``OUT.json`` of each output must be writable and never one of the inputs."""
    if not getattr(args, "no_sidecar", False):
        from ..timing.daw import sidecar_path

        check_output_paths([sidecar_path(p) for p in outs], inputs, args.overwrite, suffixes=None)


def grid_for(args: argparse.Namespace, path: Path | None, *, seconds: float | None = None, required: bool):
    """The bar grid of the context at ``path`` (cropped to ``seconds``) under ``args.timing``, before any
    model loads. ``required`` (a bar option was given): errors are the command's; otherwise None when
    no sidecar is wanted or the audio has no tempo to find (e.g. silence)."""
    from ..timing.bars import BarGrid

    ov = args.timing
    if not required and getattr(args, "no_sidecar", False):
        return None
    if path is None:
        if all(v is not None for v in ov.values()):
            return BarGrid.regular(ov["bpm"], ov["meter"], ov["downbeat"], seconds)
        if required:
            raise InputError("without a context, give --bpm, --meter and --downbeat")
        return None
    from ..audio_input import read_audio_spooled
    from ..audio_spool import is_spooled
    from ..timing.tempo import analyze_audio

    # a long context is spooled to disk and analysed block by block: no whole-length copy in memory
    audio = read_audio_spooled(path, what="context", max_seconds=args.max_seconds, seconds=seconds)
    try:
        duration = audio.shape[1] / 48_000
        if ov["downbeat"] is not None and ov["downbeat"] >= duration:
            raise InputError(f"--downbeat {ov['downbeat']:g} is not inside the context (0-{duration:.2f} s)")
        try:
            return analyze_audio(audio, 48_000, bpm=ov["bpm"], meter=ov["meter"], downbeat_s=ov["downbeat"])
        except InputError:
            if required:
                raise
            return None
    finally:
        if is_spooled(audio):
            audio.close()


def format_for(path: Path | None, seconds: float | None):
    """Output rate and length: the context file's (cropped to ``seconds``), else 48 kHz."""
    from ..timing.daw import OutputFormat

    if path is None:
        return OutputFormat.internal(int(round(seconds * 48_000)))
    return OutputFormat.of_file(path, seconds)


def write_outputs_for(args: argparse.Namespace, items: list[tuple[Path, object]], fmt, grid, **sidecar_kw) -> None:
    """Write the 48 kHz outputs at ``fmt`` with their sidecars (unless ``--no-sidecar``) and, in WAV files,
    the tempo chunk of ``grid`` (written with the audio, one write per file)."""
    from ..timing.daw import sidecar, write_outputs

    context = getattr(args, "context", None)
    kinds = sidecar_kw.pop("kinds", None) or ["stem"] * len(items)
    metas = [None if args.no_sidecar else sidecar(p, fmt, grid, context=context, kind=k, **sidecar_kw)
             for (p, _), k in zip(items, kinds)]
    write_outputs([(p, a, m) for (p, a), m in zip(items, metas)], fmt, grid)


def timing_note(grid, bars) -> str:
    if grid is None:
        return ""
    where = f"bars {bars[0]}-{bars[1]} at " if bars is not None else ""
    return f"; {where}{grid.bpm:.1f} bpm {grid.meter_name}, first downbeat {grid.first_downbeat_s:.3f} s"


def stem_bars(args: argparse.Namespace):
    """inpaint / vary: the grid of the context and the checked ``--bars`` (None without it)."""
    from ..timing.bars import parse_bars

    grid = grid_for(args, args.context, required=args.bars is not None)
    bars = grid.check_bars(*parse_bars(args.bars)) if args.bars is not None else None
    return grid, bars
