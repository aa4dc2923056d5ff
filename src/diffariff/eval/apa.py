"""Accompaniment Prompt Adherence (APA, Grachten & Nistal 2025).

With embeddings of three sets of mixes (see :mod:`diffariff.eval.mixing`):

* R  — matched mixes: context i + its true stem i,
* R' — mismatched mixes: context i + the true stem of another pair (a seeded derangement of the
  pairs, so no window is mixed with a stem of its own pair),
* C  — candidate mixes: context i + the generated stem for context i,

``APA = 1/2 + (FAD(C, R') - FAD(C, R)) / (2 FAD(R, R'))``: 1 when the candidates look like the
matched mixes, 1/2 when they are as far from both, 0 when they look like random pairings.

Clamping (decided here, following the paper and the authors' public description):

* each FAD is first clipped at 0 (round-off can make a Fréchet distance of -1e-12);
* if ``FAD(R, R') <= 0`` the embedding cannot tell matched from mismatched mixes, the scale of the
  metric is undefined and APA is 0 (no evidence of adherence). The authors' code only returns 0
  when numerator and denominator are both 0; we follow the stricter rule of the paper's summary;
* the denominator is raised to ``|numerator|`` when smaller, which keeps
  ``numerator / (2 denominator)`` in [-1/2, 1/2]: APA is then in [0, 1] by construction (it
  saturates at 1 for candidates much closer to R than R' is, at 0 for the reverse). A final clip
  to [0, 1] only guards against round-off, so "negatives -> 0" and ">1 -> 1" both hold.

Read APA beside FAD/KD, never alone: it is relative, so a candidate set far from *both* R and R'
but nearer R saturates at 1. Measured with the test suite's feature embedder, silent stems (mix =
context alone) score APA 1.0 with FAD(C, R) 2.1 vs 0.01 for 20-ms-late true stems. Report a
silent-stem baseline with every APA figure. With few pairs, FAD's positive small-sample bias also
pulls APA toward 1/2 (random pairings of 24 pairs: 0.04-0.33 over 5 seeds).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch

from ..audio import loudness, resample, to_channels
from ..errors import InputError
from .metrics import as_embeddings, fad
from .mixing import MIX_LUFS, PEAK_CEILING, WINDOW_SECONDS, build_mixes, windowed_pairs

#: Sample rate (Hz) embedders take unless they declare their own ``sample_rate`` attribute.
EMBED_SAMPLE_RATE = 48_000


@dataclass(frozen=True)
class APAResult:
    """APA and the three Fréchet distances it is made of (``n`` mixes per set)."""

    apa: float
    fad_candidate_matched: float
    fad_candidate_mismatched: float
    fad_matched_mismatched: float
    n: int

    def as_dict(self) -> dict:
        return asdict(self)


def apa_from_distances(fad_c_r: float, fad_c_rp: float, fad_r_rp: float) -> float:
    """APA from FAD(C, R), FAD(C, R') and FAD(R, R'), with the clamping of the module docstring."""
    d_cr, d_crp, d_rrp = (max(float(v), 0.0) for v in (fad_c_r, fad_c_rp, fad_r_rp))
    if d_rrp <= 0.0:
        return 0.0
    numerator = d_crp - d_cr
    denominator = max(d_rrp, abs(numerator))
    return float(np.clip(0.5 + numerator / (2.0 * denominator), 0.0, 1.0))


def apa_from_embeddings(candidate, matched, mismatched) -> APAResult:
    """APA from embeddings ``[N, D]`` of candidate (C), matched (R) and mismatched (R') mixes."""
    c = as_embeddings(candidate, "candidate-mix embeddings", min_rows=2)
    r = as_embeddings(matched, "matched-mix embeddings", min_rows=2)
    rp = as_embeddings(mismatched, "mismatched-mix embeddings", min_rows=2)
    d_cr, d_crp, d_rrp = fad(c, r), fad(c, rp), fad(r, rp)
    return APAResult(apa_from_distances(d_cr, d_crp, d_rrp), d_cr, d_crp, d_rrp, int(c.shape[0]))


def derangement(n: int, seed: int = 0) -> np.ndarray:
    """A uniformly random permutation ``int [n]`` with no fixed point (``p[i] != i``), seeded.

    Rejection sampling: about e ~ 2.7 shuffles on average. Needs n >= 2.
    """
    if n < 2:
        raise InputError(f"mismatched pairing needs at least 2 pairs, got {n}")
    rng = np.random.default_rng(seed)
    while True:
        p = rng.permutation(n)
        if not np.any(p == np.arange(n)):
            return p


def mismatched_stems(stem_windows: Sequence[np.ndarray], groups: np.ndarray, seed: int = 0) -> list[np.ndarray]:
    """For each window j, a stem window taken from another pair (a derangement of the pairs).

    Window j of pair g receives window ``(j's index within g) mod count(p[g])`` of pair ``p[g]``,
    cropped/zero-padded to window j's length when lengths differ (short clips).
    """
    groups = np.asarray(groups)
    pair_ids = np.unique(groups)
    perm = derangement(len(pair_ids), seed)
    members = {g: np.flatnonzero(groups == g) for g in pair_ids}
    partner = {g: pair_ids[perm[i]] for i, g in enumerate(pair_ids)}
    out = []
    for g in pair_ids:
        src = members[partner[g]]
        for local, j in enumerate(members[g]):
            s = stem_windows[src[local % len(src)]]
            n = stem_windows[j].shape[1]
            s = s[:, :n] if s.shape[1] >= n else np.pad(s, ((0, 0), (0, n - s.shape[1])))
            out.append((j, s))
    out.sort(key=lambda t: t[0])
    return [s for _, s in out]


def embed_mixes(embedder, mixes: Sequence[np.ndarray], sample_rate: int, *, batch_size: int = 8) -> np.ndarray:
    """Embeddings ``float64 [len(mixes), D]`` of ``[C, N]`` mixes via ``embedder.embed_audio``.

    Mixes are resampled to the embedder's rate (its ``sample_rate`` attribute, else 48 kHz) and
    batched as ``[B, C, N]`` runs of equal shape.
    """
    if not hasattr(embedder, "embed_audio"):
        raise InputError("the embedder must expose embed_audio(audio [B, C, N]) -> [B, D]")
    if batch_size < 1:
        raise InputError(f"batch_size must be >= 1, got {batch_size}")
    rate = int(getattr(embedder, "sample_rate", EMBED_SAMPLE_RATE) or EMBED_SAMPLE_RATE)
    audio = [resample(m, sample_rate, rate) for m in mixes]
    rows: list[np.ndarray] = []
    i = 0
    while i < len(audio):
        j = i + 1
        while j < len(audio) and j - i < batch_size and audio[j].shape == audio[i].shape:
            j += 1
        batch = torch.from_numpy(np.stack(audio[i:j]))
        with torch.no_grad():
            emb = embedder.embed_audio(batch)
        emb = emb.detach().float().cpu().numpy() if hasattr(emb, "detach") else np.asarray(emb)
        if emb.ndim != 2 or emb.shape[0] != j - i:
            raise InputError(f"embedder returned shape {emb.shape} for a batch of {j - i} clips (expected [B, D])")
        rows.append(emb.astype(np.float64))
        i = j
    if not rows:
        raise InputError("no mixes to embed")
    return np.concatenate(rows, axis=0)


def _stereo_windows(contexts: Sequence, stems: Sequence, sample_rate: int, window_seconds: float | None):
    ctx_w, stem_w, groups = windowed_pairs(contexts, stems, sample_rate, window_seconds)
    return [to_channels(w, 2) for w in ctx_w], [to_channels(w, 2) for w in stem_w], groups


@dataclass(frozen=True)
class APAReference:
    """The real side of APA, computed once per evaluation set and reused for every model.

    ``context_windows``: J stereo context windows ``[2, W]``; ``context_lufs`` ``[J]`` their
    loudness; ``groups`` ``int [J]`` the pair each window came from; ``matched`` / ``mismatched``:
    embeddings ``[J, D]`` of the R and R' mixes. The remaining fields record how they were made.
    """

    context_windows: list[np.ndarray]
    context_lufs: np.ndarray
    groups: np.ndarray
    matched: np.ndarray
    mismatched: np.ndarray
    sample_rate: int
    window_seconds: float | None
    seed: int
    target_lufs: float = MIX_LUFS
    ceiling: float = PEAK_CEILING
    batch_size: int = 8

    def mixes(self, stem_windows: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Mixes ``[2, W]`` of the reference's context windows with ``stem_windows`` (one per window)."""
        return build_mixes(
            self.context_windows, stem_windows, self.sample_rate, target_lufs=self.target_lufs,
            ceiling=self.ceiling, context_lufs=self.context_lufs,
        )


def build_apa_reference(
    embedder, contexts: Sequence, real_stems: Sequence, sample_rate: int,
    *, seed: int = 0, window_seconds: float | None = WINDOW_SECONDS, batch_size: int = 8,
    target_lufs: float = MIX_LUFS, ceiling: float = PEAK_CEILING,
) -> APAReference:
    """Window, mix and embed the matched (R) and mismatched (R') sets of aligned (context, stem) pairs.

    Audio: lists of ``[C, N_i]`` (C = 1 or 2, converted to stereo) at ``sample_rate`` Hz; pair i's
    context and stem have the same length. ``seed`` seeds the derangement that builds R'.
    """
    ctx_w, real_w, groups = _stereo_windows(contexts, real_stems, sample_rate, window_seconds)
    lufs = np.array([loudness(w, sample_rate) for w in ctx_w])
    wrong_w = mismatched_stems(real_w, groups, seed)
    kw = {"target_lufs": target_lufs, "ceiling": ceiling, "context_lufs": lufs}
    matched = embed_mixes(embedder, build_mixes(ctx_w, real_w, sample_rate, **kw), sample_rate, batch_size=batch_size)
    wrong = embed_mixes(embedder, build_mixes(ctx_w, wrong_w, sample_rate, **kw), sample_rate, batch_size=batch_size)
    return APAReference(ctx_w, lufs, groups, matched, wrong, int(sample_rate), window_seconds, int(seed),
                        target_lufs, ceiling, batch_size)


def candidate_embeddings(embedder, reference: APAReference, contexts: Sequence, candidate_stems: Sequence) -> np.ndarray:
    """Embeddings ``[J, D]`` of the candidate mixes C (context i + generated stem i), windowed like ``reference``.

    ``contexts`` must be the ones ``reference`` was built from (their windows are reused);
    ``candidate_stems[i]`` has the length of ``contexts[i]``.
    """
    ctx_w, cand_w, groups = _stereo_windows(contexts, candidate_stems, reference.sample_rate, reference.window_seconds)
    if len(ctx_w) != len(reference.context_windows) or not np.array_equal(groups, reference.groups):
        raise InputError("candidate stems do not match the reference's contexts (count or lengths differ)")
    mixes = reference.mixes(cand_w)
    return embed_mixes(embedder, mixes, reference.sample_rate, batch_size=reference.batch_size)


def apa_score(embedder, reference: APAReference, contexts: Sequence, candidate_stems: Sequence) -> APAResult:
    """APA of ``candidate_stems`` against a prepared :class:`APAReference`."""
    cand = candidate_embeddings(embedder, reference, contexts, candidate_stems)
    return apa_from_embeddings(cand, reference.matched, reference.mismatched)


def accompaniment_prompt_adherence(
    embedder, contexts: Sequence, real_stems: Sequence, candidate_stems: Sequence, sample_rate: int,
    *, seed: int = 0, window_seconds: float | None = WINDOW_SECONDS, batch_size: int = 8,
    target_lufs: float = MIX_LUFS, ceiling: float = PEAK_CEILING,
) -> APAResult:
    """APA of generated stems, from audio (one call; use :func:`build_apa_reference` + :func:`apa_score`
    to score several models against one reference).

    Args:
        embedder: object with ``embed_audio(audio [B, C, N] at 48 kHz) -> [B, D]`` (e.g. CLAP).
        contexts, real_stems, candidate_stems: aligned lists of ``[C, N_i]`` audio at
            ``sample_rate`` Hz; pair i's three clips have the same length.
        seed: seeds the derangement that builds the mismatched set R'.
        window_seconds: mixes are cut into windows of this length (5 s; ``None``: whole clips).

    At least 2 pairs are needed. FAD has a positive small-sample bias (it grows with D / J), which
    pulls APA toward 1/2: use many windows (the paper: thousands) for reportable numbers.
    """
    if not (len(contexts) == len(real_stems) == len(candidate_stems)):
        raise InputError(
            f"need as many real and candidate stems as contexts, got {len(contexts)}, "
            f"{len(real_stems)} and {len(candidate_stems)}"
        )
    reference = build_apa_reference(
        embedder, contexts, real_stems, sample_rate, seed=seed, window_seconds=window_seconds,
        batch_size=batch_size, target_lufs=target_lufs, ceiling=ceiling,
    )
    return apa_score(embedder, reference, contexts, candidate_stems)
