"""Two bundles scored by the generation protocol on the same held-out pairs: what a fine-tune changed.

:func:`compare_bundles` draws ``n`` pairs from a list of songs (:func:`~diffariff.eval.protocol.draw_pairs`,
the ``cycle`` stem draw so every role is a target), generates one stem per pair with each bundle in one
Table 1 setting (default ``clap_a+ctx``: the context and a CLAP reference clip of the target's song), and
scores both against the same real reference side with the same CLAP (embeddings of the real clips are
computed once: a shared :class:`~diffariff.eval.cache.CachedEmbedder`). Scores: KD, FAD, APA, CS_AA and
the rhythm and key fit of the stem to its context (:mod:`diffariff.eval.musical_fit`), each a mean with
its 95 % interval over ``batches`` disjoint batches, plus the ``real`` row (the true stems) for scale.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from ..checkpoint import file_sha256
from ..data.songs import Song
from ..errors import InputError
from .cache import CachedEmbedder, EmbeddingCache
from .candidates import bundle_generators
from .protocol import GenerationEvalConfig, evaluate_generation

#: The scores compared (names of :data:`diffariff.eval.protocol.METRICS`).
COMPARED = ("kd", "fad", "apa", "cs_aa", "rhythm", "key")


def compare_bundles(bundles: Mapping[str, str | os.PathLike], songs: Sequence[Song], clap_path: str | os.PathLike,
                    cache_dir: str | os.PathLike, *, n: int = 32, batches: int = 4, seed: int = 0,
                    window_seconds: float = 10.0, setting: str = "clap_a+ctx", sampler: str | None = "dpmpp_2m",
                    steps: int | None = 25, progress=None) -> dict:
    """``{"pairs": n, "setting": ..., "rows": {name: {metric: {"mean", "half_width", "n"}}}}`` with one row
    per bundle (keys of ``bundles``) and ``"real"``. ``songs`` need stems at least ``window_seconds`` long
    (and a second window for the reference clip); ``n`` >= 2 pairs. The CLAP at ``clap_path`` embeds every
    clip (embeddings cached in ``cache_dir``)."""
    from ..clap.builtin import BuiltinClap  # noqa: PLC0415  (torch-heavy)

    if not bundles:
        raise InputError("no bundles to compare")
    if "real" in bundles:
        raise InputError("'real' is the name of the true stems' row; name the bundles otherwise")
    config = GenerationEvalConfig(n=n, seed=seed, split=None, window_seconds=window_seconds, batches=batches,
                                  stem_draw="cycle")
    clap_path = Path(clap_path)
    embedder = CachedEmbedder(BuiltinClap.load(clap_path), EmbeddingCache(Path(cache_dir), file_sha256(clap_path)))
    rows: dict[str, dict] = {}
    for name, bundle in bundles.items():
        generators = bundle_generators(bundle, [setting], sampler=sampler, steps=steps)
        evaluation = evaluate_generation(embedder, None, config, generators=generators, bounds=(), songs=songs,
                                         progress=progress)
        for row in evaluation.rows:
            label = "real" if row.name == "real" else name
            rows[label] = {k: _ci(row.metrics[k]) for k in COMPARED if k in row.metrics}
    return {"pairs": int(n), "batches": config.effective_batches, "setting": setting, "sampler": sampler,
            "steps": steps, "rows": rows}


def _ci(ci) -> dict:
    return {"mean": float(ci.mean), "half_width": float(ci.half_width), "n": int(ci.n)}


def comparison_lines(result: dict, order: Sequence[str]) -> list[str]:
    """A plain-text table of :func:`compare_bundles`' result: one column per row name of ``order`` (then
    ``real``), one line per score, ``mean +- half-width``."""
    names = [*order, "real"]
    head = f"  {'score':<8}" + "".join(f"{name:>18}" for name in names)
    lines = [head]
    for metric in COMPARED:
        cells = []
        for name in names:
            ci = result["rows"].get(name, {}).get(metric)
            cells.append(f"{'-':>18}" if ci is None else f"{ci['mean']:>11.3f} ± {ci['half_width']:<4.2f}")
        lines.append(f"  {metric:<8}" + "".join(cells))
    return lines
