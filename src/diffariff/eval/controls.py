"""Measurements of the Accompanist's controls on held-out pairs: style grounding, length
generalisation and window seams (``diffariff eval controls``).

* **Style grounding** (bass-accompaniment paper): for ``n`` held-out pairs, a stem is generated from
  the context and the target's tag prompt (raw text, no bridge) without grounding and with the pair's
  reference clip (another segment of the real target stem) as ``style_reference`` at each strength.
  Score: CLAP cosine between the generated stem and the reference clip (does the timbre move toward
  the reference?), and to the real target window.
* **Length generalisation**: for ``m`` long held-out contexts (``long_seconds``, several times the
  model's training window), the stem is generated ``direct`` (the whole length in one pass of the
  network), ``windowed`` (overlapping inpainted windows) and ``sliced`` (each ``slice_seconds`` piece
  of the context on its own: the short-context baseline, "APA at 10 s" on the very same music). Each
  is cut into ``segment_seconds`` segments; per segment: CLAP cosine to the real target's segment and
  the level (dBFS RMS). APA is computed per slice position (slice j of every long pair, 5-s windows,
  one R / R' reference per slice shared by the three modes) and pooled over the whole length. A model
  that does not generalise in length degrades in the slices beyond its training window, relative to
  ``sliced`` at the same position.
* **Seams** of the windowed stems at the window borders (:func:`~diffariff.eval.seams.measure_seams`),
  with the real target stem measured at the same times as the baseline of ordinary musical change.

All audio is 48 kHz stereo float32 ``[2, N]``; embeddings are L2-normalised ``[D]``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from tqdm.auto import tqdm

from ..data.pairs import PairConfig, evaluation_pairs
from ..data.sources import open_dataset
from ..errors import InputError
from .apa import APAResult, apa_score, build_apa_reference
from .dropouts import dropout_runs, window_levels
from .metrics import mean_and_ci
from .protocol import pairs_as_arrays
from .seams import measure_seams, seam_report_for

SAMPLE_RATE = 48_000


@dataclass
class ControlsConfig:
    """Settings of :func:`evaluate_controls` (seconds unless stated)."""

    n: int = 12
    long_n: int = 4
    seed: int = 0
    split: str | None = "test"
    window_seconds: float = 10.0
    long_seconds: float = 30.0
    segment_seconds: float = 5.0
    slice_seconds: float = 10.0
    reference_seconds: float = 5.0
    strengths: tuple[float, ...] = (0.5, 1.0)
    sampler: str | None = None
    steps: int | None = None
    long_modes: tuple[str, ...] = ("direct", "windowed", "sliced")
    style: bool = True

    def __post_init__(self) -> None:
        for mode in self.long_modes:
            if long_mode_parts(mode) is None:
                raise InputError(f"long mode '{mode}': use direct, sliced, windowed or windowed:SECONDS")
        if not self.long_modes or len(set(self.long_modes)) != len(self.long_modes):
            raise InputError(f"long modes must be distinct and at least one, got {list(self.long_modes)}")
        if self.n < 2 or self.long_n < 1:
            raise InputError(f"need --n >= 2 and --long-n >= 1, got {self.n}, {self.long_n}")
        if not 0 < self.segment_seconds <= self.long_seconds / 2:
            raise InputError("--segment-seconds must be positive and at most half of --long-seconds")
        ratio = self.long_seconds / self.slice_seconds if self.slice_seconds > 0 else 0.0
        if ratio < 1 or abs(ratio - round(ratio)) > 1e-6:
            raise InputError(f"--long-seconds ({self.long_seconds:g}) must be a whole multiple of --slice-seconds "
                             f"({self.slice_seconds:g})")
        if any(not 0.0 < s <= 1.0 for s in self.strengths):
            raise InputError(f"style strengths must be in (0, 1], got {list(self.strengths)}")


def long_mode_parts(mode: str) -> tuple[str, float | None] | None:
    """``"direct"`` / ``"sliced"`` / ``"windowed"`` / ``"windowed:S"`` (windows of S seconds) -> (mode, S or
    None); None when ``mode`` is not one of these."""
    name, _, arg = mode.partition(":")
    if name in ("direct", "sliced", "windowed") and not arg:
        return name, None
    if name == "windowed":
        try:
            seconds = float(arg)
        except ValueError:
            return None
        return (name, seconds) if seconds > 0 else None
    return None


def held_out_pairs(songs, window_seconds: float, reference_seconds: float, n: int, seed: int) -> list[dict]:
    """``n`` held-out pairs (:func:`~diffariff.data.pairs.evaluation_pairs`, full context) as numpy
    ``[2, N]`` float32 context / target / reference (``reference_seconds`` long) with a tag ``prompt``."""
    cfg = PairConfig(window_seconds=window_seconds, sample_rate=SAMPLE_RATE, channels=2,
                     reference_seconds=reference_seconds)
    return pairs_as_arrays(evaluation_pairs(songs, cfg, int(n), int(seed)))


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-12))


def _embed(clap, clips: Sequence[np.ndarray]) -> np.ndarray:
    return clap.embed_audio(np.stack(clips), sample_rate=SAMPLE_RATE).numpy()


def _ci(values: Sequence[float]) -> dict:
    ci = mean_and_ci(values)
    return {"mean": ci.mean, "ci95": ci.half_width, "n": ci.n}


def _level_db(x: np.ndarray) -> float:
    return float(10 * np.log10(np.mean(np.square(x, dtype=np.float64)) + 1e-10))


def style_grounding(acc, clap, items: Sequence[dict], config: ControlsConfig, progress=None) -> dict:
    """Cosines of generated stems to the pair's reference clip and real target, without grounding
    (``"none"``) and per strength: ``{"none": {...}, "0.5": {...}, ...}``, each with the mean and 95 %
    CI of ``cos_reference`` and ``cos_target`` over the pairs, plus the paired gain over "none"."""
    ref_emb = _embed(clap, [it["reference"] for it in items])
    tgt_emb = _embed(clap, [it["target"] for it in items])
    rows: dict[str, dict[str, list[float]]] = {}
    labels = ["none"] + [f"{s:g}" for s in config.strengths]
    bar = tqdm(total=len(items) * len(labels), desc="style grounding", unit="stem", disable=progress is False)
    for i, it in enumerate(items):
        for label, strength in zip(labels, (None, *config.strengths), strict=True):
            stem = acc.generate(it["context"], text=it["prompt"], use_bridge=False, seed=config.seed + i,
                                sampler=config.sampler, steps=config.steps,
                                style_reference=None if strength is None else it["reference"],
                                style_strength=strength or 0.5)[0]
            e = _embed(clap, [stem])[0]
            row = rows.setdefault(label, {"cos_reference": [], "cos_target": []})
            row["cos_reference"].append(_cos(e, ref_emb[i]))
            row["cos_target"].append(_cos(e, tgt_emb[i]))
            bar.update(1)
    bar.close()
    out = {label: {k: _ci(v) for k, v in row.items()} for label, row in rows.items()}
    base = np.asarray(rows["none"]["cos_reference"])
    for label in labels[1:]:
        out[label]["gain_cos_reference"] = _ci(np.asarray(rows[label]["cos_reference"]) - base)
    out["real_target_cos_reference"] = _ci([_cos(t, r) for t, r in zip(tgt_emb, ref_emb, strict=True)])
    return out


def _generate(acc, it: dict, mode: str, seed: int, config: ControlsConfig) -> np.ndarray:
    """One stem ``[2, N]`` for long pair ``it``: ``direct`` / ``windowed`` (the pipeline's long modes) or
    ``sliced`` (every ``slice_seconds`` piece of the context generated on its own, then joined)."""
    kw = {"reference": it["reference"], "sampler": config.sampler, "steps": config.steps}
    name, window_seconds = long_mode_parts(mode)
    if name != "sliced":
        return acc.generate(it["context"], seed=seed, long_mode=name, window_seconds=window_seconds, **kw)[0]
    ctx = it["context"]
    step = int(round(config.slice_seconds * SAMPLE_RATE))
    pieces = [acc.generate(ctx[:, a:a + step], seed=seed + 1000 * j, **kw)[0]
              for j, a in enumerate(range(0, ctx.shape[1], step))]
    return np.concatenate(pieces, axis=1)[:, : ctx.shape[1]]


def apa_per_slice(clap, items: Sequence[dict], stems: dict[str, list[np.ndarray]], slice_seconds: float,
                  seed: int) -> dict[str, list[APAResult]]:
    """APA of each mode's stems at every slice position j (samples [j S, (j + 1) S) of all pairs, S =
    ``slice_seconds``), against one matched / mismatched reference per position shared by the modes:
    ``{mode: [APAResult of slice 0, slice 1, ...]}``. Needs >= 2 pairs."""
    s = int(round(slice_seconds * SAMPLE_RATE))
    k = min(it["context"].shape[1] for it in items) // s
    out: dict[str, list[APAResult]] = {mode: [] for mode in stems}
    for j in range(k):
        part = slice(j * s, (j + 1) * s)
        ctxs, reals = [it["context"][:, part] for it in items], [it["target"][:, part] for it in items]
        ref = build_apa_reference(clap, ctxs, reals, SAMPLE_RATE, seed=seed, window_seconds=min(5.0, slice_seconds))
        for mode, generated in stems.items():
            out[mode].append(apa_score(clap, ref, ctxs, [g[:, part] for g in generated]))
    return out


def length_generalisation(acc, clap, items: Sequence[dict], config: ControlsConfig, progress=None) -> dict:
    """Per-segment CLAP cosine to the real target and level (dBFS), APA per slice and pooled, for
    ``direct``, ``windowed`` and ``sliced`` generation of the long pairs; seams of the windowed stems
    (and of the real stems at the same times); the wall time of each generation."""
    seg = int(round(config.segment_seconds * SAMPLE_RATE))
    train_seconds = acc.train_frames * acc.samples_per_frame / SAMPLE_RATE
    out: dict = {"train_window_seconds": train_seconds, "segment_seconds": config.segment_seconds,
                 "slice_seconds": config.slice_seconds, "modes": {}}
    k = min(it["target"].shape[1] for it in items) // seg

    def segments(x: np.ndarray) -> list[np.ndarray]:
        return [x[:, j * seg:(j + 1) * seg] for j in range(k)]

    real = [_embed(clap, segments(it["target"])) for it in items]  # shared by all modes
    inside = [j for j in range(k) if (j + 1) * config.segment_seconds <= train_seconds]
    beyond = [j for j in range(k) if j not in inside]
    seams, real_seams, stems_by_mode, windows_per_stem = [], [], {}, 1
    modes = config.long_modes
    seams_of = next((m for m in modes if m.startswith("windowed")), None)  # seams of the first windowed mode
    bar = tqdm(total=len(items) * len(modes), desc="length generalisation", unit="stem", disable=progress is False)
    for mode in modes:
        cos = np.zeros((len(items), k))  # [item, segment]
        level = np.zeros((len(items), k))
        seconds, stems, holes, worst = [], [], [], []
        for i, it in enumerate(items):
            t0 = time.perf_counter()
            stem = _generate(acc, it, mode, config.seed + i, config)
            seconds.append(time.perf_counter() - t0)
            stems.append(stem)
            gen = _embed(clap, segments(stem))
            cos[i] = [_cos(g, r) for g, r in zip(gen, real[i], strict=True)]
            level[i] = [_level_db(x) for x in segments(stem)]
            holes.append(dropout_runs(stem, it["context"]))
            if len(acc.last_windows) > 1 and not mode.startswith("sliced"):
                spf = acc.samples_per_frame / SAMPLE_RATE
                wl = window_levels(stem, it["context"], [(a * spf, b * spf) for a, b in acc.last_windows])
                worst.append(min(r["relative_db"] for r in wl))
            if mode == seams_of and len(acc.last_windows) > 1:
                windows_per_stem = len(acc.last_windows)
                seams.append(seam_report_for(acc, stem))
                real_seams.append(measure_seams(it["target"], acc.window_boundaries()))
            bar.update(1)
        stems_by_mode[mode] = stems
        out["modes"][mode] = {
            "cos_target_per_segment": cos.mean(axis=0).tolist(),
            "level_db_per_segment": level.mean(axis=0).tolist(),
            "cos_target_within_train_window": _ci(cos[:, inside].ravel()) if inside else None,
            "cos_target_beyond_train_window": _ci(cos[:, beyond].ravel()) if beyond else None,
            "seconds_per_generation": float(np.mean(seconds)),
            # dropouts (eval.dropouts): stem level per window and per second against the context's
            "worst_window_relative_db": float(np.min(worst)) if worst else None,
            "dropout_seconds": float(np.mean([h["seconds"] for h in holes])),
            "longest_dropout_s": float(np.max([h["longest_s"] for h in holes])),
        }
    bar.close()
    if len(items) >= 2:
        whole = apa_per_slice(clap, items, stems_by_mode, config.long_seconds, config.seed)  # pooled: 5-s windows
        sliced = apa_per_slice(clap, items, stems_by_mode, config.slice_seconds, config.seed)
        for mode in modes:
            out["modes"][mode]["apa"] = whole[mode][0].apa
            out["modes"][mode]["apa_windows"] = whole[mode][0].n
            out["modes"][mode]["apa_per_slice"] = [r.apa for r in sliced[mode]]
    if seams:
        out["seams"] = {
            "mode": seams_of,
            "windows_per_stem": windows_per_stem,
            "generated_flux_ratio": _ci([s.flux_ratio for s in seams]),
            "generated_jump_ratio": _ci([s.jump_ratio for s in seams]),
            "real_flux_ratio": _ci([s.flux_ratio for s in real_seams]),
            "real_jump_ratio": _ci([s.jump_ratio for s in real_seams]),
        }
    return out


def evaluate_controls(bundle, clap, data, config: ControlsConfig, progress=None) -> dict:
    """Run both measurements with the bundle's Accompanist on held-out pairs of ``data``; ``clap`` is
    the evaluation CLAP (a :class:`~diffariff.clap.builtin.BuiltinClap`)."""
    from ..pipeline import Accompanist  # noqa: PLC0415

    acc = Accompanist.from_pretrained(bundle)
    songs = open_dataset(data, split=config.split)
    long_pairs = held_out_pairs(songs, config.long_seconds, config.reference_seconds, config.long_n, config.seed + 1)
    style = None
    if config.style:
        items = held_out_pairs(songs, config.window_seconds, config.reference_seconds, config.n, config.seed)
        style = style_grounding(acc, clap, items, config, progress)
    return {"style_grounding": style,
            "length_generalisation": length_generalisation(acc, clap, long_pairs, config, progress)}


def controls_table(results: dict) -> str:
    """Markdown summary of :func:`evaluate_controls` results."""
    def f(d: dict | None) -> str:
        return "-" if d is None else f"{d['mean']:.3f} ± {d['ci95']:.3f}"

    sg = results["style_grounding"]
    lines = []
    if sg is not None:
        lines += ["### Style grounding (CLAP cosine of the generated stem)", "",
                  "| grounding | to reference | to real target | gain to reference |", "|---|---|---|---|"]
        for label, row in sg.items():
            if isinstance(row, dict) and "cos_reference" in row:
                lines.append(f"| {label} | {f(row['cos_reference'])} | {f(row['cos_target'])} | "
                             f"{f(row.get('gain_cos_reference'))} |")
        lines += ["", f"Real target to reference: {f(sg['real_target_cos_reference'])}", ""]
    lg = results["length_generalisation"]
    lines += [f"### Length generalisation (training window {lg['train_window_seconds']:.1f} s, "
              f"segments of {lg['segment_seconds']:g} s)", "",
              "| mode | APA (all 5-s windows) | cos to real, within window | beyond window | per segment "
              "| level dB per segment | s / stem |",
              "|---|---|---|---|---|---|---|"]
    for mode, row in lg["modes"].items():
        per = " ".join(f"{c:.2f}" for c in row["cos_target_per_segment"])
        lev = " ".join(f"{v:.0f}" for v in row["level_db_per_segment"])
        apa = "-" if row.get("apa") is None else f"{row['apa']:.3f} ({row['apa_windows']} windows)"
        lines.append(f"| {mode} | {apa} | {f(row['cos_target_within_train_window'])} | "
                     f"{f(row['cos_target_beyond_train_window'])} | {per} | {lev} | {row['seconds_per_generation']:.1f} |")
    lines += ["", "### Dropouts (stem level against the context's: worst generation window; seconds "
                  "25 dB or more below the stem's median relative level while the context plays)", "",
              "| mode | worst window dB | dropout s per stem | longest s |", "|---|---|---|---|"]
    for mode, row in lg["modes"].items():
        w = row.get("worst_window_relative_db")
        lines.append(f"| {mode} | {'-' if w is None else f'{w:.1f}'} | {row.get('dropout_seconds', 0.0):.1f} | "
                     f"{row.get('longest_dropout_s', 0.0):.1f} |")
    if any("apa_per_slice" in row for row in lg["modes"].values()):
        n_slices = max(len(row.get("apa_per_slice", [])) for row in lg["modes"].values())
        lines += ["", f"### APA per {lg['slice_seconds']:g}-s slice of the long stems (sliced = each slice "
                      "generated on its own)", "",
                  "| mode | " + " | ".join(f"slice {j}" for j in range(n_slices)) + " | mean |",
                  "|---|" + "---|" * (n_slices + 1)]
        for mode, row in lg["modes"].items():
            if "apa_per_slice" in row:
                vals = row["apa_per_slice"]
                lines.append(f"| {mode} | " + " | ".join(f"{v:.2f}" for v in vals) + f" | {np.mean(vals):.3f} |")
    if "seams" in lg:
        s = lg["seams"]
        lines += ["", f"### Seams ({s['windows_per_stem']} windows per stem; ratio of the change at a border "
                      "to the median frame change)", "", "| | spectral flux ratio | level jump ratio |",
                  "|---|---|---|", f"| generated ({s.get('mode', 'windowed')}) | {f(s['generated_flux_ratio'])} | "
                                   f"{f(s['generated_jump_ratio'])} |",
                  f"| real stem, same times | {f(s['real_flux_ratio'])} | {f(s['real_jump_ratio'])} |"]
    return "\n".join(lines) + "\n"
