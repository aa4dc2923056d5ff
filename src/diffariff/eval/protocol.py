"""The generation evaluation protocol of Improved Diff-A-Riff's Table 1, on held-out pairs.

Data: ``N`` held-out (context, target, CLAP reference) pairs drawn with
:func:`diffariff.data.pairs.evaluation_pairs` (seed ``seed``; the context is every other stem of
the song), and a second, independent draw of ``M`` pairs (seed ``seed + REFERENCE_SEED_OFFSET``:
same held-out songs, other windows) that forms the **real reference side**:

* the reference set of the distribution metrics (KD, FAD, density, coverage) is the CLAP audio
  embeddings of the second draw's true target stems (the paper: 5000 real examples);
* APA's R (matched mixes) and R' (mismatched mixes, a seeded derangement) are built from the
  second draw too.

Why a second draw: if the reference set were the evaluated pairs' own targets, the ``real`` row
would be trivially perfect (FAD 0, APA 1). With other windows of the same songs, ``real`` measures
what two samples of real data differ by (the paper's real row: FAD 0.01, APA 0.99), and every row
(real, bounds, settings) is scored against exactly the same reference side, with the same number of
candidates, so small-sample biases are equal across rows. A candidate set made of the evaluated
pairs' true stems therefore scores exactly like ``real``.

Rows: ``real`` (the true targets), each candidate setting, and the bounds ``random`` (true stems of
other pairs: a seeded derangement), ``noise`` (white noise at each target's BS.1770 loudness) and
``silence`` (all-zero stems: the APA baseline :mod:`diffariff.eval.apa` asks for). Scores per row:
KD (raw MMD^2 x 1e3, as the paper's "x1e-3" column), FAD, coverage, density (raw, in [0, 1] and
[0, inf)), APA, CS_AA (cosine of the stem embedding to the reference clip's), CS_TA (to the text
embedding of the target's prompt), and the signal-level rhythm and key fits of the stem to its
context (:mod:`diffariff.eval.musical_fit`; every row, so the no-context rows read as baselines), and
the grid share (:func:`diffariff.eval.reconstruction.grid_energy_share`: a fixed comb instead of notes)
and the likeness of the stems of different pairs (:mod:`diffariff.eval.likeness`: context sensitivity).
Each is a mean with a 95 % Student-t interval over ``batches`` disjoint seeded batches of pairs (5 in
the paper).

A **generator** is a plain callable ``(pair_item, setting_name, seed) -> stem [C, N]`` (float, 48 kHz,
C = 1 or 2); ``candidates.bundle_generators`` is the one place that will build them from a model bundle.
Where the stems of every row come from (candidate files, generators, the noise and random bounds):
:mod:`diffariff.eval.candidates`; the conditioning settings: :mod:`diffariff.eval.settings`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from tqdm.auto import tqdm

from ..audio import loudness
from ..data.pairs import PairConfig, check_stem_draw, evaluation_pairs
from ..data.songs import Song
from ..data.sources import open_dataset
from ..errors import ConfigError, InputError
from .apa import apa_from_embeddings, derangement, mismatched_stems
from .cache import CachedEmbedder
from .candidates import (
    Generator,
    _disable,
    folder_source,
    generator_source,
    noise_stems,
    random_stems,
    scan_candidates,
)
from .likeness import likeness
from .metrics import (
    KD_REPORT_SCALE,
    MeanCI,
    batch_indices,
    batched_distribution_metrics,
    clap_score,
    mean_and_ci,
    per_batch,
)
from .mixing import MIX_LUFS, PEAK_CEILING, build_mixes, windowed_pairs
from .musical_fit import ContextFeatures, context_features, musical_fit
from .reconstruction import grid_energy_share
from .settings import CHANNELS, SAMPLE_RATE, setting_for

#: The reference draw uses ``seed + REFERENCE_SEED_OFFSET``.
REFERENCE_SEED_OFFSET = 1_000_003
#: Metric keys, in table order.
METRICS = ("kd", "fad", "coverage", "density", "apa", "cs_aa", "cs_ta", "rhythm", "key", "grid", "alike")


@dataclass
class GenerationEvalConfig:
    """Settings of :func:`evaluate_generation`.

    Attributes:
        n: evaluated pairs (>= 2 per batch).
        reference_n: pairs of the independent real reference draw (None: ``n``).
        seed: seeds both draws, the batches, the derangements and the noise bound.
        split: held-out split of the dataset ("all" or None: every song).
        window_seconds: pair length (seconds); also the CLAP reference clip length.
        apa_window_seconds: APA mixes are cut into windows of this length (seconds).
        batches: disjoint batches for the mean and CI (fewer when ``n < 2 * batches``).
        k: neighbours of density / coverage (at most ``reference_n - 1``).
        prompt_tags: the CS_TA prompt is the target stem's first this-many tags.
        batch_size: clips per CLAP forward pass.
        stem_draw: target stem of each pair, one of ``diffariff.data.pairs.STEM_DRAWS``: "first" (each song's stems in turn from
            its first: the default, kept so that earlier reports reproduce; with fewer than 2 pairs per song
            mostly drums and bass) or "cycle" (pair j takes song j's j-th stem, so a draw over many songs still
            spans the roles). Both the evaluated and the reference draw use it.
    """

    n: int = 100
    reference_n: int | None = None
    seed: int = 0
    split: str | None = "test"
    window_seconds: float = 10.0
    apa_window_seconds: float | None = 5.0
    batches: int = 5
    k: int = 5
    prompt_tags: int = 5
    batch_size: int = 8
    stem_draw: str = "first"

    def __post_init__(self) -> None:
        check_stem_draw(self.stem_draw)
        if int(self.n) < 2:
            raise ConfigError(f"--n must be at least 2 pairs, got {self.n}")
        if self.reference_n is not None and int(self.reference_n) < 3:
            raise ConfigError(f"--reference-n must be at least 3 pairs, got {self.reference_n}")
        if not self.window_seconds > 0:
            raise ConfigError(f"--window-seconds must be positive, got {self.window_seconds}")
        if self.apa_window_seconds is not None and not self.apa_window_seconds > 0:
            raise ConfigError(f"APA window must be positive, got {self.apa_window_seconds}")
        if self.batches < 1 or self.k < 1 or self.prompt_tags < 1 or self.batch_size < 1:
            raise ConfigError("batches, k, prompt_tags and batch_size must be >= 1")

    @property
    def m(self) -> int:
        """Pairs of the reference draw."""
        return int(self.n if self.reference_n is None else self.reference_n)

    @property
    def effective_batches(self) -> int:
        """Batches actually used: at most ``n // 2`` so every batch has 2 pairs."""
        return max(1, min(int(self.batches), int(self.n) // 2))

    @property
    def effective_k(self) -> int:
        """Neighbourhood size actually used (the reference set needs more than k items)."""
        return max(1, min(int(self.k), self.m - 1))

    def pair_config(self) -> PairConfig:
        return PairConfig(window_seconds=float(self.window_seconds), sample_rate=SAMPLE_RATE, channels=CHANNELS)


# ------------------------------------------------------------------------------------- pairs


def target_prompt(item: Mapping, max_tags: int = 5) -> str:
    """The CS_TA prompt of a pair: its target's first ``max_tags`` tags, comma-separated
    ("electric bass, fingered bass, fingerstyle, warm, round"); the instrument name without tags."""
    tags = [str(t).strip() for t in item.get("target_tags") or [] if str(t).strip()]
    if tags:
        return ", ".join(tags[:max_tags])
    return str(item.get("target_instrument") or item.get("target_family") or item.get("target_stem") or "music")


def draw_pairs(songs, config: GenerationEvalConfig, n: int, seed: int) -> list[dict]:
    """``n`` held-out pairs (see :func:`evaluation_pairs`) with numpy ``[2, N]`` float32 audio and a
    ``prompt``, each also holding ``other_pair`` / ``other_context``: the pair and the context that the
    ``random`` bound's derangement (seeded by ``seed``) gives it. N = ``round(window_seconds * 48000)``
    samples."""
    pairs = evaluation_pairs(songs, config.pair_config(), int(n), int(seed), stem_draw=config.stem_draw)
    items = pairs_as_arrays(pairs, config.prompt_tags)
    if len(items) >= 2:
        for item, j in zip(items, derangement(len(items), int(seed))):
            item["other_pair"] = int(j)
            item["other_context"] = items[int(j)]["context"]
    return items


def pairs_as_arrays(items: list[dict], prompt_tags: int = 5) -> list[dict]:
    """Evaluation pairs with numpy ``[2, N]`` float32 context / target / reference and a tag ``prompt``
    (:func:`target_prompt`), converted in place."""
    for item in items:
        for key in ("context", "target", "reference"):
            item[key] = np.ascontiguousarray(item[key].numpy(), dtype=np.float32)
        item["prompt"] = target_prompt(item, prompt_tags)
    return items


def pair_manifest(items: Sequence[Mapping], config: GenerationEvalConfig, data_root=None) -> dict:
    """JSON-able description of the drawn pairs, enough for a generator to rebuild every input."""
    rate = SAMPLE_RATE
    return {
        "format": "diffariff-eval-pairs", "version": 1, "data": None if data_root is None else str(data_root),
        "split": config.split, "seed": config.seed, "n": len(items), "sample_rate": rate,
        "window_seconds": config.window_seconds, "stem_draw": config.stem_draw,
        "candidate_names": "<setting>/<index>.wav or <index>.wav",
        "pairs": [
            {
                "index": int(it["index"]), "song": it["song"], "target_stem": it["target_stem"],
                "target_instrument": it.get("target_instrument"), "target_role": it.get("target_role"),
                "start": int(it["start"]), "start_seconds": it["start"] / rate,
                "samples": int(it["target"].shape[-1]), "reference_start": int(it["reference_start"]),
                "reference_start_seconds": it["reference_start"] / rate, "context_stems": list(it["context_stems"]),
                "prompt": it["prompt"], "target_tags": list(it.get("target_tags") or []),
                "other_context_pair": it.get("other_pair"),
            }
            for it in items
        ],
    }


# ---------------------------------------------------------------------------- the two sides


@dataclass
class RealSide:
    """Embeddings of the independent real reference draw: target stems ``[M, D]`` and the APA
    matched (R) / mismatched (R') mixes ``[J, D]`` (J windows)."""

    stems: np.ndarray
    matched: np.ndarray
    mismatched: np.ndarray
    pairs: int


@dataclass
class PairSide:
    """What every row of the evaluated pairs shares: their stereo context windows ``[2, W]``, those
    windows' loudness (LUFS) and pair index ``groups [J]``, the CS references: reference-clip
    embeddings ``[N, D]`` and prompt embeddings ``[N, D]``, and the contexts' rhythm / key features."""

    items: list[dict]
    context_windows: list[np.ndarray]
    context_lufs: np.ndarray
    groups: np.ndarray
    reference_emb: np.ndarray
    text_emb: np.ndarray
    context_fit: ContextFeatures


def _mix_embeddings(cemb: CachedEmbedder, ctx_w, stem_w, lufs, namespace: str, progress) -> np.ndarray:
    mixes = build_mixes(ctx_w, stem_w, SAMPLE_RATE, target_lufs=MIX_LUFS, ceiling=PEAK_CEILING, context_lufs=lufs)
    with tqdm(total=len(mixes), desc=f"embed {namespace} mixes", unit="clip", disable=_disable(progress)) as bar:
        return cemb.embed_audio(mixes, namespace, progress=bar)


def _stem_embeddings(cemb: CachedEmbedder, stems, namespace: str, progress) -> np.ndarray:
    with tqdm(total=len(stems), desc=f"embed {namespace} stems", unit="clip", disable=_disable(progress)) as bar:
        return cemb.embed_audio(stems, namespace, progress=bar)


def build_real_side(cemb: CachedEmbedder, items: Sequence[Mapping], config: GenerationEvalConfig,
                    progress=None) -> RealSide:
    """Embed the reference draw's targets and its APA R / R' mixes (namespace ``real-reference``)."""
    ns = "real-reference"
    targets = [it["target"] for it in items]
    stems = _stem_embeddings(cemb, targets, ns, progress)
    ctx_w, real_w, groups = windowed_pairs([it["context"] for it in items], targets, SAMPLE_RATE,
                                           config.apa_window_seconds)
    lufs = np.array([loudness(w, SAMPLE_RATE) for w in ctx_w])
    wrong_w = mismatched_stems(real_w, groups, int(config.seed))
    matched = _mix_embeddings(cemb, ctx_w, real_w, lufs, ns, progress)
    mismatched = _mix_embeddings(cemb, ctx_w, wrong_w, lufs, ns, progress)
    cemb.cache.flush()
    return RealSide(stems, matched, mismatched, len(items))


def build_pair_side(cemb: CachedEmbedder, items: list[dict], config: GenerationEvalConfig,
                    progress=None) -> PairSide:
    """Window the evaluated contexts and embed the reference clips and prompts (namespace ``pairs``)."""
    contexts = [it["context"] for it in items]
    ctx_w, _, groups = windowed_pairs(contexts, contexts, SAMPLE_RATE, config.apa_window_seconds)
    lufs = np.array([loudness(w, SAMPLE_RATE) for w in ctx_w])
    ref_emb = _stem_embeddings(cemb, [it["reference"] for it in items], "pairs", progress)
    text_emb = cemb.embed_text([it["prompt"] for it in items], "text")
    cemb.cache.flush()
    return PairSide(items, ctx_w, lufs, groups, ref_emb, text_emb, context_features(contexts, SAMPLE_RATE))


# ------------------------------------------------------------------------------------ scoring


@dataclass
class RowResult:
    """One table row: ``metrics[name] -> MeanCI`` (missing names are not applicable), the stem
    embeddings ``[N, D]`` (for the PCA plot) and APA's Fréchet distances (means over batches)."""

    name: str
    label: str
    kind: str
    metrics: dict[str, MeanCI]
    embeddings: np.ndarray = field(repr=False)
    apa_distances: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {"name": self.name, "label": self.label, "kind": self.kind,
                "metrics": {k: _ci_dict(v) for k, v in self.metrics.items()},
                "apa_distances": self.apa_distances}


def _ci_dict(ci: MeanCI) -> dict:
    d = ci.as_dict()
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in d.items()}


def score_stems(cemb: CachedEmbedder, stems: Sequence[np.ndarray], pairs: PairSide, real: RealSide,
                config: GenerationEvalConfig, *, name: str, label: str, kind: str, apa: bool = True,
                progress=None) -> RowResult:
    """Every metric of one row for ``stems`` (one ``[2, N]`` per evaluated pair, in pair order)."""
    if len(stems) != len(pairs.items):
        raise InputError(f"row '{name}': {len(stems)} stems for {len(pairs.items)} pairs")
    ns = f"row-{name}"
    emb = _stem_embeddings(cemb, stems, ns, progress)
    b, seed = config.effective_batches, int(config.seed)
    dist = batched_distribution_metrics(emb, real.stems, n_batches=b, seed=seed, k=config.effective_k)
    metrics: dict[str, MeanCI] = {}
    kd = dist["kd"]
    metrics["kd"] = MeanCI(kd.mean * KD_REPORT_SCALE, kd.half_width * KD_REPORT_SCALE, kd.n, kd.confidence)
    metrics["fad"], metrics["coverage"], metrics["density"] = dist["fad"], dist["coverage"], dist["density"]
    distances: dict[str, float] = {}
    if apa:
        _, stem_w, groups = windowed_pairs([it["context"] for it in pairs.items], list(stems), SAMPLE_RATE,
                                           config.apa_window_seconds)
        if not np.array_equal(groups, pairs.groups):
            raise InputError(f"row '{name}': stems do not window like the contexts (lengths differ)")
        cand = _mix_embeddings(cemb, pairs.context_windows, stem_w, pairs.context_lufs, ns, progress)
        values, parts = [], []
        for idx in batch_indices(len(stems), b, seed):
            rows = np.flatnonzero(np.isin(groups, idx))
            res = apa_from_embeddings(cand[rows], real.matched, real.mismatched)
            values.append(res.apa)
            parts.append((res.fad_candidate_matched, res.fad_candidate_mismatched, res.fad_matched_mismatched))
        metrics["apa"] = mean_and_ci(values)
        mean_parts = np.mean(np.array(parts), axis=0)
        distances = {"fad_c_r": float(mean_parts[0]), "fad_c_rprime": float(mean_parts[1]),
                     "fad_r_rprime": float(mean_parts[2])}
    metrics["cs_aa"] = mean_and_ci(per_batch(clap_score, emb, pairs.reference_emb, n_batches=b, seed=seed))
    metrics["cs_ta"] = mean_and_ci(per_batch(clap_score, emb, pairs.text_emb, n_batches=b, seed=seed))
    # in time / in key, straight from the waveforms (every row: the context-free ones are baselines)
    for key, values in musical_fit(stems, pairs.context_fit, SAMPLE_RATE).items():
        metrics[key] = mean_and_ci([float(values[idx].mean()) for idx in batch_indices(len(stems), b, seed)])
    # a fixed comb of partials on the 23.44 Hz grid instead of notes (NaN for a silent stem: left out)
    grid = np.array([grid_energy_share(s, SAMPLE_RATE) for s in stems])
    grid_batches = [float(np.nanmean(grid[idx])) for idx in batch_indices(len(stems), b, seed)
                    if np.isfinite(grid[idx]).any()]
    if grid_batches:  # the silence row has none: not applicable
        metrics["grid"] = mean_and_ci(grid_batches)
    # context sensitivity: how alike the stems of different pairs are (per batch; silent stems left out)
    alike_batches = []
    for idx in batch_indices(len(stems), b, seed):
        values = likeness([stems[i] for i in idx], SAMPLE_RATE)
        if np.isfinite(values).any():
            alike_batches.append(float(np.nanmean(values)))
    if alike_batches:
        metrics["alike"] = mean_and_ci(alike_batches)
    cemb.cache.flush()
    return RowResult(name, label, kind, metrics, emb, distances)


# ------------------------------------------------------------------------------- entry point


@dataclass
class GenerationEvaluation:
    """Everything :func:`evaluate_generation` measured: rows in table order, the evaluated pairs'
    manifest and the reference-set embeddings ``[M, D]``."""

    rows: list[RowResult]
    manifest: dict
    reference_embeddings: np.ndarray
    config: GenerationEvalConfig
    embed_calls: int = 0


def evaluate_generation(
    embedder: CachedEmbedder, data_root, config: GenerationEvalConfig, *,
    candidates_dir=None, generators: Mapping[str, Generator] | None = None,
    bounds: Sequence[str] = ("random", "noise", "silence"), progress=None, songs: Sequence[Song] | None = None,
) -> GenerationEvaluation:
    """Run the protocol (module docstring): draw pairs, build both real sides, score ``real``, every
    candidate setting (files of ``candidates_dir`` and/or ``generators``) and the ``bounds``.

    The songs are those of ``data_root`` (its ``config.split``), or ``songs`` when given (``data_root`` is
    then only recorded in the manifest and may be None).

    Candidate files are checked before any embedding, so a missing stem fails fast (InputError).
    """
    unknown = [b for b in bounds if b not in ("random", "noise", "silence")]
    if unknown:
        raise InputError(f"unknown bound(s) {unknown} (use random, noise, silence)")
    songs = list(songs) if songs is not None else open_dataset(data_root, split=config.split)
    items = draw_pairs(songs, config, config.n, config.seed)
    sources: dict[str, Callable[[], list[np.ndarray]]] = {}
    if candidates_dir is not None:
        for name, files in scan_candidates(candidates_dir, config.n).items():
            sources[name] = folder_source(files, items)
    for name, gen in (generators or {}).items():
        if name in sources:
            raise InputError(f"setting '{name}' given both as candidate files and as a generator")
        sources[name] = generator_source(gen, items, name, config.seed, progress)
    reference_items = draw_pairs(songs, config, config.m, config.seed + REFERENCE_SEED_OFFSET)
    real = build_real_side(embedder, reference_items, config, progress)
    del reference_items  # only their embeddings are needed from here on
    pairs = build_pair_side(embedder, items, config, progress)
    rows = [score_stems(embedder, [it["target"] for it in items], pairs, real, config,
                        name="real", label="real", kind="bound", progress=progress)]
    for name, load in sources.items():
        setting = setting_for(name)
        rows.append(score_stems(embedder, load(), pairs, real, config, name=name, label=setting.label,
                                kind="setting", apa=setting.context, progress=progress))
    makers = {"random": lambda: random_stems(items, config.seed), "noise": lambda: noise_stems(items, config.seed),
              "silence": lambda: [np.zeros_like(it["target"]) for it in items]}
    for bound in bounds:
        rows.append(score_stems(embedder, makers[bound](), pairs, real, config, name=bound, label=bound,
                                kind="bound", progress=progress))
    return GenerationEvaluation(rows, pair_manifest(items, config, data_root), real.stems, config, embedder.calls)
