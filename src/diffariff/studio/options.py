"""Form fields of the page -> validated keywords of the Accompanist.

The page posts its settings as form fields (strings; an empty field means "the default"). Each
value is checked here, before a job is queued, with the ranges the command line uses, so that a bad
value is one line in the page at once instead of an error after the model ran.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from .uploads import Limits, StudioError

SAMPLERS = ("heun", "dpmpp_2m", "euler", "consistency")
LOOP_REPEATS = (2, 3, 4, 6, 8)
EDIT_OPS = ("inpaint", "vary", "loop", "interpolate")


def _field(form: Mapping[str, Any], name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


def number(form: Mapping[str, Any], name: str, default: float | None, lo: float, hi: float,
           label: str) -> float | None:
    """A float field in [lo, hi] (``default`` when empty)."""
    text = _field(form, name)
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        raise StudioError(f"{label} must be a number, got '{text[:20]}'") from None
    if not math.isfinite(value) or not lo <= value <= hi:
        raise StudioError(f"{label} must be between {lo:g} and {hi:g}, got {text[:20]}")
    return value


def integer(form: Mapping[str, Any], name: str, default: int | None, lo: int, hi: int, label: str) -> int | None:
    """An int field in [lo, hi] (``default`` when empty)."""
    text = _field(form, name)
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        raise StudioError(f"{label} must be a whole number, got '{text[:20]}'") from None
    if not lo <= value <= hi:
        raise StudioError(f"{label} must be between {lo} and {hi}, got {value}")
    return value


def flag(form: Mapping[str, Any], name: str, default: bool) -> bool:
    text = _field(form, name).lower()
    return default if not text else text in ("1", "true", "on", "yes")


def text(form: Mapping[str, Any], name: str) -> str | None:
    """A prompt field: None when empty; at most 500 characters."""
    value = _field(form, name)
    return " ".join(value.split())[:500] or None


def sampling(form: Mapping[str, Any], limits: Limits) -> dict[str, Any]:
    """The sampling keywords every job shares: sampler, steps, cfg_context, cfg_clap, harmony (None: the
    model's / pipeline's default), width, seed, n."""
    sampler = _field(form, "sampler") or None
    if sampler is not None and sampler not in SAMPLERS:
        raise StudioError(f"unknown sampler '{sampler[:20]}' (one of {', '.join(SAMPLERS)})")
    return dict(
        sampler=sampler,
        steps=integer(form, "steps", None, 1, limits.max_steps, "steps"),
        cfg_context=number(form, "cfg_context", None, 0.0, 20.0, "context guidance"),
        cfg_clap=number(form, "cfg_clap", None, 0.0, 20.0, "CLAP guidance"),
        harmony=number(form, "harmony", None, 0.0, 10.0, "harmony guidance"),
        width=number(form, "width", 0.4, 0.0, 1.0, "stereo width"),
        seed=integer(form, "seed", None, 0, 2**31 - 1, "seed"),
        n=integer(form, "n", 1, 1, limits.max_candidates, "number of candidates"),
    )


def generate(form: Mapping[str, Any], limits: Limits) -> dict[str, Any]:
    """Keywords of a new stem (:meth:`~diffariff.pipeline.Accompanist.generate`), without the audio
    uploads: text, text_b + blend (a CLAP interpolation between two prompts), loop, loop_strength,
    style_strength, use_prior, plus :func:`sampling`."""
    kw = sampling(form, limits)
    kw.update(
        text=text(form, "text"),
        text_b=text(form, "text_b"),
        blend=number(form, "blend", 0.5, 0.0, 1.0, "blend between the prompts"),
        loop=integer(form, "loop", None, 2, 8, "loop repeats"),
        loop_strength=number(form, "loop_strength", 0.5, 0.0, 1.0, "loop strength"),
        style_strength=number(form, "style_strength", 0.5, 0.0, 1.0, "style strength"),
        use_prior=flag(form, "use_prior", True),
    )
    if kw["loop"] is not None and kw["loop"] not in LOOP_REPEATS:
        raise StudioError(f"loop repeats must be one of {', '.join(map(str, LOOP_REPEATS))}")
    if kw["text_b"] is not None and kw["text"] is None:
        raise StudioError("a second prompt needs a first one to blend with")
    return kw


def edit(form: Mapping[str, Any], limits: Limits, seconds: float) -> dict[str, Any]:
    """Keywords of a lane edit: ``op`` (inpaint | vary | loop | interpolate), ``lane``, the op's own
    values (start / end seconds, strength, repeats, text_a / text_b / ratio, text) and
    :func:`sampling`."""
    op = _field(form, "op")
    if op not in EDIT_OPS:
        raise StudioError(f"unknown edit '{op[:20]}' (one of {', '.join(EDIT_OPS)})")
    lane = _field(form, "lane")
    if not lane:
        raise StudioError("select a lane to edit first")
    kw = sampling(form, limits)
    kw.update(op=op, lane=lane, text=text(form, "edit_text"))
    if op == "inpaint":
        start = number(form, "start", None, 0.0, seconds, "region start")
        end = number(form, "end", None, 0.0, seconds, "region end")
        if start is None or end is None or end - start < 0.05:
            raise StudioError("select a region of the lane to inpaint (drag across its waveform)")
        kw.update(start=start, end=end)
    else:
        kw["strength"] = number(form, "strength", 0.5, 0.01, 1.0, "variation strength")
    if op == "loop":
        kw["repeats"] = integer(form, "repeats", 2, 2, 8, "loop repeats")
        if kw["repeats"] not in LOOP_REPEATS:
            raise StudioError(f"loop repeats must be one of {', '.join(map(str, LOOP_REPEATS))}")
        kw["loop_strength"] = number(form, "loop_strength", 0.5, 0.0, 1.0, "loop strength")
    if op == "interpolate":
        kw.update(text_a=text(form, "interp_a"), text_b=text(form, "interp_b"),
                  ratio=number(form, "ratio", 0.5, 0.0, 1.0, "interpolation ratio"))
        if kw["text_a"] is None or kw["text_b"] is None:
            raise StudioError("give both prompts to interpolate between")
    return kw
