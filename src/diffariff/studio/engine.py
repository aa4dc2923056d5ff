"""A job's work: the context and the request in, candidates out, through the Accompanist API.

The context (the mix of the audible lanes, float32 ``[2, N]`` at 48 kHz) and any uploaded audio
are read when the job is queued, so a job uses the track as it was when its button was pressed.
Each function here returns the ``work(acc, job)`` callable that :class:`~.jobs.JobQueue` runs in
its worker thread; the stems it makes (float32 ``[n, 2, N]``) become candidates of the browser
session (:meth:`~.workspace.Workspace.add_candidates`).

| page            | Accompanist call                                                          |
|-----------------|---------------------------------------------------------------------------|
| generate        | ``generate(context, text / reference / clap_mix, style_reference, loop)``  |
| inpaint         | ``inpaint(lane, context_without_lane, start, end)``                        |
| variation       | ``vary(lane, context_without_lane, strength)``                             |
| loop            | ``vary(lane, ..., strength, loop=N)``: the lane re-made as N repeats       |
| interpolate     | ``vary(lane, ..., reference=interpolate(prompt_a, prompt_b, ratio))``      |
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any

import numpy as np

from ..audio_input import SAMPLE_RATE
from ..diffusion.edits import plan_windows
from .jobs import Job
from .workspace import Workspace

SAMPLING_KEYS = ("sampler", "steps", "cfg_context", "cfg_clap", "harmony")


def planned_steps(acc: Any, sampler: str | None, steps: int | None, samples: int,
                  strength: float | None = None) -> int:
    """Sampler steps a call will run for a track of ``samples`` samples: steps per window (fewer for
    a variation of ``strength``) x windows, as :meth:`~diffariff.pipeline.Accompanist.sample_latents`
    plans them with its defaults."""
    model, _ = acc.model_for(sampler)
    steps = int(steps if steps is not None else model.config.default_sampling()[1])
    frames = acc.frames_for(samples)
    window = acc.default_window_frames(model)
    windows = 1 if frames <= window else len(plan_windows(frames, window, max(1, window // 4)))
    per = steps if strength is None else max(1, round(steps * float(strength)))
    return windows * per


def resolve_seed(seed: int | None) -> int:
    return int(seed) if seed is not None else secrets.randbelow(2**31 - 1)


def _sampling(kw: dict[str, Any]) -> dict[str, Any]:
    return {k: kw[k] for k in SAMPLING_KEYS}


def _meta(acc: Any, kw: dict[str, Any], k: int, **extra: Any) -> dict[str, Any]:
    keep = ("text", "text_b", "blend", "sampler", "steps", "cfg_context", "cfg_clap", "harmony", "width", "loop")
    meta = {key: kw[key] for key in keep if kw.get(key) is not None}
    meta.update(seed=acc.last_seed, candidate=k + 1, condition=acc.last_condition, **extra)
    return meta


def _finish(ws: Workspace, job: Job, stems: np.ndarray, names: list[str], metas: list[dict],
            target: str | None) -> dict[str, Any]:
    cands = ws.add_candidates(np.asarray(stems, dtype=np.float32), names, job.id, target, metas)
    return {"candidates": [c.id for c in cands]}


def generate_work(ws: Workspace, context: np.ndarray, kw: dict[str, Any], reference: np.ndarray | None,
                  style: np.ndarray | None) -> Callable[[Any, Job], dict]:
    """A new stem for ``context`` [2, N]: ``kw`` from :func:`~.options.generate`; ``reference`` /
    ``style`` float32 [2, M] at 48 kHz or None."""

    def work(acc: Any, job: Job) -> dict[str, Any]:
        job.total = planned_steps(acc, kw["sampler"], kw["steps"], context.shape[1])
        job.phase = "conditioning"
        seed = resolve_seed(kw["seed"])
        clap_mix = (kw["text"], kw["text_b"], kw["blend"]) if kw["text_b"] else None
        stems = acc.generate(
            context, sample_rate=SAMPLE_RATE, text=None if clap_mix else kw["text"], reference=reference,
            reference_sample_rate=SAMPLE_RATE, clap_mix=clap_mix, style_reference=style,
            style_strength=kw["style_strength"], loop=kw["loop"], loop_strength=kw["loop_strength"],
            width=kw["width"], seed=seed, n=kw["n"], use_prior=kw["use_prior"], **_sampling(kw))
        base = kw["text"] or ("reference" if reference is not None else None)
        if base is None:
            base = "prior's pick" if acc.last_condition == "prior" else "free stem"
        if kw["text_b"]:
            base = f"{kw['text']} / {kw['text_b']} {kw['blend']:.2f}"
        names = [base if len(stems) == 1 else f"{base} #{k + 1}" for k in range(len(stems))]
        metas = [_meta(acc, kw, k, op="generate", reference=reference is not None, style=style is not None)
                 for k in range(len(stems))]
        return _finish(ws, job, stems, names, metas, None)

    return work


def edit_work(ws: Workspace, lane_id: str, lane_name: str, stem: np.ndarray, context: np.ndarray,
              kw: dict[str, Any]) -> Callable[[Any, Job], dict]:
    """An edit of lane ``lane_id`` (audio ``stem`` [2, N]) against ``context`` [2, N] (the other
    audible lanes): ``kw`` from :func:`~.options.edit`."""
    op = kw["op"]

    def work(acc: Any, job: Job) -> dict[str, Any]:
        strength = None if op == "inpaint" else kw["strength"]
        job.total = planned_steps(acc, kw["sampler"], kw["steps"], stem.shape[1], strength)
        job.phase = "conditioning"
        seed = resolve_seed(kw["seed"])
        common = dict(sample_rate=SAMPLE_RATE, width=kw["width"], seed=seed, n=kw["n"], **_sampling(kw))
        extra: dict[str, Any] = {}
        if op == "inpaint":
            stems = acc.inpaint(stem, context, kw["start"], kw["end"], text=kw["text"], **common)
            extra = {"start": kw["start"], "end": kw["end"]}
            label = f"inpaint {kw['start']:.2f}-{kw['end']:.2f} s"
        elif op == "vary":
            stems = acc.vary(stem, context, kw["strength"], text=kw["text"], **common)
            label = f"variation {kw['strength']:.2f}"
        elif op == "loop":
            stems = acc.vary(stem, context, kw["strength"], text=kw["text"], loop=kw["repeats"],
                             loop_strength=kw["loop_strength"], **common)
            extra = {"repeats": kw["repeats"]}
            label = f"loop x{kw['repeats']}"
        else:  # interpolate
            emb = acc.interpolate(kw["text_a"], kw["text_b"], kw["ratio"], seed=seed)
            stems = acc.vary(stem, context, kw["strength"], reference=emb, **common)
            extra = {"text_a": kw["text_a"], "text_b": kw["text_b"], "ratio": kw["ratio"]}
            label = f"{kw['text_a']} / {kw['text_b']} {kw['ratio']:.2f}"
        names = [f"{lane_name} ({label})" + ("" if len(stems) == 1 else f" #{k + 1}") for k in range(len(stems))]
        metas = [_meta(acc, kw, k, op=op, strength=strength, edited=lane_name, **extra) for k in range(len(stems))]
        return _finish(ws, job, stems, names, metas, lane_id)

    return work
