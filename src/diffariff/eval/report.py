"""Writing evaluation reports: ``results.json``, a Markdown table shaped like Table 1, PNG plots.

Every file is written atomically (:mod:`diffariff.fsutil`). Plots use matplotlib's Agg backend
(no display needed). Numbers are formatted ``mean ± half-width`` (95 % t-interval over batches;
the half-width is left out when only one batch exists).
"""

from __future__ import annotations

import math
import platform
import sys
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np

from .. import __version__
from ..fsutil import atomic_path, write_json_atomic, write_text_atomic
from .metrics import MeanCI, pca_project

#: Column titles of the generation table, in order, with the direction that is better.
GENERATION_COLUMNS = (
    ("kd", "KD (x1e-3) ↓"), ("fad", "FAD ↓"), ("coverage", "Cov ↑"), ("density", "Den ↑"),
    ("apa", "APA ↑"), ("cs_aa", "CS_AA ↑"), ("cs_ta", "CS_TA ↑"), ("rhythm", "Rhythm ↑"), ("key", "Key ↑"),
    ("grid", "Grid ↓"), ("alike", "Alike"),
)


def versions() -> dict:
    """Versions of diffariff, torch, numpy and Python (for results files)."""
    import torch  # noqa: PLC0415  (already imported by every caller; kept local for clarity)

    return {"diffariff": __version__, "torch": torch.__version__, "numpy": np.__version__,
            "python": platform.python_version()}


def command_line(argv: Sequence[str] | None = None) -> list[str]:
    """The command as run (``diffariff`` + arguments)."""
    return ["diffariff", *(sys.argv[1:] if argv is None else list(argv))]


def format_ci(ci: MeanCI | dict | None, digits: int = 2) -> str:
    """``"0.33 ± 0.02"``; ``"-"`` when the metric does not apply."""
    if ci is None:
        return "-"
    mean, half = (ci.mean, ci.half_width) if isinstance(ci, MeanCI) else (ci["mean"], ci.get("half_width"))
    if mean is None or not math.isfinite(mean):
        return "-"
    text = f"{mean:.{digits}f}"
    if half is not None and math.isfinite(half):
        text += f" ± {half:.{digits}f}"
    return text


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A GitHub-flavoured Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------- generation


def generation_results(evaluation, *, argv=None, arguments: dict | None = None, clap_path=None, clap_hash=None,
                       data_root=None, embed_calls: int | None = None) -> dict:
    """The ``results.json`` document of a :class:`~diffariff.eval.protocol.GenerationEvaluation`."""
    cfg = evaluation.config
    return {
        "format": "diffariff-eval-generation", "version": 1,
        "command": command_line(argv), "arguments": arguments, "versions": versions(),
        "data": None if data_root is None else str(data_root), "split": cfg.split,
        "clap": {"path": None if clap_path is None else str(clap_path), "sha256": clap_hash},
        "seeds": {"pairs": cfg.seed, "reference_pairs": cfg.seed + _reference_offset(),
                  "batches": cfg.seed, "derangements": cfg.seed, "noise": cfg.seed},
        "n": cfg.n, "reference_n": cfg.m, "batches": cfg.effective_batches, "k": cfg.effective_k,
        "config": asdict(cfg),
        "units": {"kd": "raw unbiased MMD^2 (cubic kernel) x 1e3, the paper's 'x1e-3' column",
                  "fad": "Fréchet distance of CLAP audio embeddings",
                  "coverage": "fraction in [0, 1]", "density": "raw (about 1 for matching sets)",
                  "apa": "[0, 1]", "cs_aa": "cosine", "cs_ta": "cosine",
                  "rhythm": "Pearson r of stem vs context onset envelopes, [-1, 1]",
                  "key": "Pearson r of stem vs context pitch-class profiles, [-1, 1]",
                  "grid": "share of the stem's 40-2000 Hz energy within 1 Hz of a multiple of 23.44 Hz "
                          "(a fixed comb; chance 0.085)",
                  "alike": "mean log-mel correlation between stems of different pairs in a batch "
                           "(context sensitivity: at or below the real stems' row)",
                  "ci": "mean ± 95 % Student-t half-width over batches of pairs"},
        "reference_side": "independent draw of held-out pairs (other windows); see diffariff.eval.protocol",
        "embed_calls": embed_calls,
        "rows": [row.as_dict() for row in evaluation.rows],
    }


def _reference_offset() -> int:
    from .protocol import REFERENCE_SEED_OFFSET  # noqa: PLC0415  (avoid an import cycle at load)

    return REFERENCE_SEED_OFFSET


def generation_table(results: dict) -> str:
    """``table.md``: rows = real, settings, bounds; columns KD, FAD, Cov, Den, APA, CS_AA, CS_TA, Rhythm, Key, Grid, Alike."""
    header = ["Row", "Kind"] + [title for _, title in GENERATION_COLUMNS]
    rows = []
    for row in results["rows"]:
        metrics = row["metrics"]
        digits = {"kd": 2, "density": 2}
        rows.append([row["label"], row["kind"]] + [format_ci(metrics.get(k), digits.get(k, 3 if k != "fad" else 3))
                                                   for k, _ in GENERATION_COLUMNS])
    clap = results.get("clap") or {}
    draw = (results.get("config") or {}).get("stem_draw", "first")
    notes = [
        f"N = {results['n']} held-out pairs ({results.get('split')}), reference set = {results['reference_n']} pairs "
        f"of an independent draw, {results['batches']} batches, k = {results['k']}"
        + ("." if draw == "first" else f"; targets: song j's j-th stem ('{draw}' draw)."),
        f"CLAP: {clap.get('path')} (sha256 {str(clap.get('sha256'))[:12]}).",
        "Bounds: real = true target stems; random = true stems of other pairs; noise = white noise at "
        "the target's loudness; silence = zero stems (APA baseline). '-' = not applicable (no context).",
        "Rhythm / Key: signal-level fit of each stem to its own pair's context (onset envelopes / pitch "
        "classes, diffariff.eval.musical_fit); read them against the real and random rows.",
    ]
    return "# Generation evaluation\n\n" + markdown_table(header, rows) + "\n" + "\n".join(f"- {n}" for n in notes) + "\n"


def _save_figure(fig, path: Path) -> Path:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, bbox_inches="tight", format="png")
    return path


def _pyplot():
    import matplotlib  # noqa: PLC0415  (matplotlib is only needed for plots)

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt  # noqa: PLC0415

    return plt


def plot_metric_bars(results: dict, path) -> Path:
    """One panel per metric: a bar (with CI) per non-bound row, bounds as horizontal lines."""
    plt = _pyplot()
    rows = results["rows"]
    bars = [r for r in rows if r["kind"] != "bound"]
    bounds = [r for r in rows if r["kind"] == "bound"]
    colors = {"real": "tab:green", "random": "tab:orange", "noise": "tab:red", "silence": "tab:gray"}
    fig, axes = plt.subplots(1, len(GENERATION_COLUMNS), figsize=(3.0 * len(GENERATION_COLUMNS), 3.6))
    for ax, (key, title) in zip(axes, GENERATION_COLUMNS):
        labels, means, errs = [], [], []
        for r in bars:
            m = r["metrics"].get(key)
            labels.append(r["label"])
            means.append(m["mean"] if m else np.nan)
            errs.append((m.get("half_width") or 0.0) if m else 0.0)
        x = np.arange(len(labels))
        if labels:
            ax.bar(x, means, yerr=errs, color="tab:blue", alpha=0.8, capsize=3)
            ax.set_xticks(x, labels, rotation=60, ha="right", fontsize=7)
        else:
            ax.set_xticks([])
        for r in bounds:
            m = r["metrics"].get(key)
            if m and m["mean"] is not None and math.isfinite(m["mean"]):
                ax.axhline(m["mean"], color=colors.get(r["name"], "black"), linestyle="--", linewidth=1,
                           label=r["label"])
        ax.set_title(title, fontsize=9)
    handles, names = axes[0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, names, loc="upper center", ncol=len(handles), fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0, 1, 0.9))
    out = _save_figure(fig, Path(path))
    plt.close(fig)
    return out


def plot_pca(evaluation, path) -> Path:
    """2-D PCA of the reference set, the real row and every setting (noise / silence left out: they
    would squash the real data into one point)."""
    plt = _pyplot()
    sets = [("reference set", evaluation.reference_embeddings)]
    sets += [(r.label, r.embeddings) for r in evaluation.rows if r.name not in ("noise", "silence")]
    proj = pca_project(*(s for _, s in sets), n_components=2)
    fig, ax = plt.subplots(figsize=(6, 5))
    markers = "o^sDvP*Xh<>p"
    for i, ((label, _), pts) in enumerate(zip(sets, proj.points)):
        ax.scatter(pts[:, 0], pts[:, 1], s=14, alpha=0.7, marker=markers[i % len(markers)], label=label)
    ratio = proj.explained_variance_ratio
    ax.set_xlabel(f"PC1 ({100 * ratio[0]:.0f} %)")
    ax.set_ylabel(f"PC2 ({100 * ratio[1]:.0f} %)")
    ax.set_title("CLAP audio embeddings of stems")
    ax.legend(fontsize=7)
    fig.tight_layout()
    out = _save_figure(fig, Path(path))
    plt.close(fig)
    return out


def write_generation_report(evaluation, out_dir, **info) -> dict:
    """Write ``results.json``, ``table.md``, ``pairs.json``, ``metrics.png`` and ``pca.png`` into
    ``out_dir``; return the results document. ``info``: see :func:`generation_results`."""
    out = Path(out_dir)
    results = generation_results(evaluation, **info)
    write_json_atomic(out / "pairs.json", evaluation.manifest)
    write_json_atomic(out / "results.json", results)
    write_text_atomic(out / "table.md", generation_table(results))
    plot_metric_bars(results, out / "metrics.png")
    plot_pca(evaluation, out / "pca.png")
    return results


# ------------------------------------------------------------------------------------ codec


CODEC_COLUMNS = (("mr_stft", "MR-STFT ↓"), ("log_mel", "log-mel L1 ↓"), ("si_sdr", "SI-SDR (dB) ↑"),
                 ("level_db", "level (dB) →0"), ("band_db", "octave-band error (dB) ↓"),
                 ("pitch_class", "pitch-class corr ↑"), ("chroma_cqt", "CQT chroma corr (librosa) ↑"),
                 ("phase_share", "phase share of error"),
                 ("grid_share", "grid share (23.4 Hz) →orig"))


def codec_table(results: dict) -> str:
    """``table.md`` of a codec evaluation: one row per system, per clip kind (stems, mixes, all)."""
    kinds = results.get("kinds", ["all"])
    header = ["System"] + [f"{title} [{kind}]" for kind in kinds for _, title in CODEC_COLUMNS]
    rows = []
    for system in results["systems"]:
        cells = [system["name"]]
        for kind in kinds:
            metrics = system["metrics"].get(kind) or {}
            cells += [format_ci(metrics.get(key), 2) for key, _ in CODEC_COLUMNS]
        rows.append(cells)
    notes = [f"{results['clips']} held-out clips of {results['seconds']} s ({results.get('split')}), "
             f"{results['channels']}-channel at 48 kHz; mean ± 95 % t-interval over clips."]
    notes += [f"{s['name']}: {s['note']}" for s in results["systems"] if s.get("note")]
    notes += results.get("notes", [])
    return "# Codec evaluation\n\n" + markdown_table(header, rows) + "\n" + "\n".join(f"- {n}" for n in notes) + "\n"
