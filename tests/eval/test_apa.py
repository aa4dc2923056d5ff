"""APA and its mixing recipe, on rendered audio and on hand-computed distances."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from diffariff.audio import loudness, normalize_loudness
from diffariff.errors import InputError
from diffariff.eval.apa import (
    accompaniment_prompt_adherence,
    apa_from_distances,
    apa_from_embeddings,
    apa_score,
    build_apa_reference,
    derangement,
    embed_mixes,
    mismatched_stems,
)
from diffariff.eval.mixing import (
    MIX_LUFS,
    PEAK_CEILING,
    build_mixes,
    match_loudness,
    mix_pair,
    split_windows,
    windowed_pairs,
)
from diffariff.eval.reconstruction import mel_filterbank

SR = 48_000
N_FFT, HOP = 4096, 2048


class FeatureEmbedder:
    """A tiny deterministic audio embedder from signal features, for property tests.

    ``embed_audio([B, C, N] at 48 kHz) -> [B, 16]``: 4 broad log-mel band energies (timbre / balance)
    and the 12 pitch-class (chroma) log-energies sorted in decreasing order (a key-invariant
    harmony profile), averaged over time. A matched mix (context and stem in one key) has a steep
    sorted-chroma profile, a mismatched one (two keys) a flatter one, as CLAP would also notice.
    """

    sample_rate = SR

    def __init__(self) -> None:
        self.mel = mel_filterbank(SR, N_FFT, n_mels=4).numpy()
        freqs = np.fft.rfftfreq(N_FFT, 1.0 / SR)
        self.pitched = (freqs > 55.0) & (freqs < 4000.0)
        pitch = 12.0 * np.log2(np.maximum(freqs[self.pitched], 1.0) / 440.0) + 69.0
        self.pitch_class = np.round(pitch).astype(int) % 12

    def embed_audio(self, audio: torch.Tensor) -> torch.Tensor:
        x = audio.to(torch.float64).mean(dim=1)
        spec = torch.stft(x, N_FFT, HOP, window=torch.hann_window(N_FFT, dtype=torch.float64),
                          return_complex=True).abs().numpy() ** 2  # [B, F, T]
        mel = np.log10(np.einsum("mf,bft->bmt", self.mel, spec) + 1e-8).mean(axis=2)
        chroma = np.zeros((spec.shape[0], 12, spec.shape[2]))
        for pc in range(12):
            chroma[:, pc] = spec[:, self.pitched][:, self.pitch_class == pc].sum(axis=1)
        chroma /= chroma.sum(axis=1, keepdims=True) + 1e-12
        profile = -np.sort(-np.log(chroma.mean(axis=2) + 1e-3), axis=1)
        return torch.from_numpy(np.concatenate([mel, profile], axis=1))


CLIP = 5.0
#: Key roots (MIDI) and General MIDI programs (0-based): piano, organ, strings, guitar contexts;
#: bass, flute, trumpet, vibraphone stems.
ROOTS = [48, 55, 50, 57, 52, 59]
CONTEXT_PROGRAMS = [0, 19, 48, 24]
STEM_PROGRAMS = [33, 73, 56, 11]
MAJOR = [0, 2, 4, 5, 7, 9, 11, 12]


@pytest.fixture(scope="module")
def pairs(render_notes):
    """24 aligned 5-s (context, stem) pairs, each with its own (context instrument, key).

    Each program is rendered once playing all 6 keys in turn (5 s per key), then cut per key: pair
    (j, m) = context program j in key m + stem program (j + m) % 4 in key m.
    """
    n_ctx, n_stem = int(CLIP / 0.25), int(CLIP / 0.5)
    ctx_notes = sum((([r, r + 4, r + 7, r + 12] * n_ctx)[:n_ctx] for r in ROOTS), [])
    stem_notes = sum(([r + 12 + MAJOR[(i * 3) % 8] for i in range(n_stem)] for r in ROOTS), [])
    total = CLIP * len(ROOTS)
    ctx_audio = [render_notes(p, ctx_notes, seconds=total) for p in CONTEXT_PROGRAMS]
    stem_audio = [render_notes(p, stem_notes, beat_seconds=0.5, seconds=total) for p in STEM_PROGRAMS]
    n = int(CLIP * SR)
    contexts, stems = [], []
    for j in range(len(CONTEXT_PROGRAMS)):
        for m in range(len(ROOTS)):
            contexts.append(ctx_audio[j][:, m * n:(m + 1) * n])
            stems.append(stem_audio[(j + m) % len(STEM_PROGRAMS)][:, m * n:(m + 1) * n])
    return contexts, stems


# --------------------------------------------------------------------------------------- mixing


def test_mix_is_at_target_loudness_with_matched_stem(pairs):
    ctx, stem = pairs[0][0], pairs[1][7]
    matched = match_loudness(stem, ctx, SR)
    assert loudness(matched, SR) == pytest.approx(loudness(ctx, SR), abs=0.05)
    mix = mix_pair(ctx, stem, SR)
    assert mix.shape == ctx.shape and mix.dtype == np.float32
    assert loudness(mix, SR) == pytest.approx(MIX_LUFS, abs=0.05)
    assert np.max(np.abs(mix)) <= PEAK_CEILING + 1e-6
    np.testing.assert_allclose(mix, normalize_loudness(ctx + matched, SR, MIX_LUFS), atol=1e-6)


def test_mix_is_peak_limited_when_it_would_clip(pairs):
    ctx, stem = pairs[0][0], pairs[1][0]
    mix = mix_pair(ctx, stem, SR, target_lufs=-6.0)  # -6 LUFS would need peaks far above 0 dBFS
    assert np.max(np.abs(mix)) == pytest.approx(PEAK_CEILING, abs=1e-6)
    assert loudness(mix, SR) < -6.5  # the limiter took the gain back


def test_silent_context_keeps_stem_level(pairs):
    stem = pairs[1][2]
    silent = np.zeros_like(stem)
    np.testing.assert_array_equal(match_loudness(stem, silent, SR), stem)
    mix = mix_pair(silent, stem, SR)
    np.testing.assert_allclose(mix, normalize_loudness(stem, SR, MIX_LUFS), atol=1e-6)
    assert np.all(mix_pair(silent, silent, SR) == 0.0)


def test_mono_stem_in_stereo_context_and_bad_lengths(pairs):
    ctx, stem = pairs[0][3][:, :SR], pairs[1][3][:1, :SR]
    assert mix_pair(ctx, stem, SR).shape == (2, SR)
    with pytest.raises(InputError, match="lengths differ"):
        mix_pair(ctx, stem[:, :100], SR)
    with pytest.raises(InputError, match="2 stems"):
        build_mixes([ctx], [stem, stem], SR)


def test_split_windows():
    x = np.ones((2, 12 * SR), dtype=np.float32)
    assert [w.shape for w in split_windows(x[:, : 10 * SR], SR)] == [(2, 5 * SR)] * 2
    assert len(split_windows(x, SR)) == 2  # the trailing 2 s are dropped
    assert [w.shape for w in split_windows(x[:, : 3 * SR], SR)] == [(2, 3 * SR)]  # short: whole
    assert split_windows(x, SR, None)[0].shape == x.shape
    ctx_w, stem_w, groups = windowed_pairs([x[:, : 10 * SR], x[:, : 5 * SR]], [x[:, : 10 * SR], x[:, : 5 * SR]], SR)
    assert len(ctx_w) == len(stem_w) == 3 and groups.tolist() == [0, 0, 1]


# ---------------------------------------------------------------------------------- pairing


def test_derangement_and_mismatched_stems():
    for seed in range(20):
        p = derangement(7, seed)
        assert sorted(p.tolist()) == list(range(7)) and not np.any(p == np.arange(7))
    np.testing.assert_array_equal(derangement(9, 3), derangement(9, 3))
    with pytest.raises(InputError, match="at least 2"):
        derangement(1)
    # Stems tagged by their pair: no window receives a stem of its own pair.
    groups = np.array([0, 0, 1, 1, 2, 3, 3])
    stems = [np.full((1, 10), g, dtype=np.float32) for g in groups]
    wrong = mismatched_stems(stems, groups, seed=5)
    assert len(wrong) == len(stems)
    assert all(int(w[0, 0]) != g for w, g in zip(wrong, groups))


# ------------------------------------------------------------------------ APA from distances


@pytest.mark.parametrize(
    ("d_cr", "d_crp", "d_rrp", "expected"),
    [
        (0.0, 2.0, 2.0, 1.0),  # candidates = matched set
        (2.0, 0.0, 2.0, 0.0),  # candidates = mismatched set
        (0.7, 0.7, 2.0, 0.5),  # equally far from both
        (0.1, 0.4, 1.0, 0.65),  # 1/2 + 0.3 / 2
        (0.1, 5.0, 1.0, 1.0),  # |numerator| 4.9 > 1: denominator raised, saturates (raw 2.95)
        (5.0, 0.1, 1.0, 0.0),  # the reverse: raw -1.95 -> 0
        (0.2, 0.3, 0.0, 0.0),  # FAD(R, R') = 0: undefined scale -> 0
        (0.2, 0.3, -1e-9, 0.0),
        (-1e-12, 1.0, 1.0, 1.0),  # round-off negative FAD counts as 0
    ],
)
def test_apa_clamping(d_cr, d_crp, d_rrp, expected):
    assert apa_from_distances(d_cr, d_crp, d_rrp) == pytest.approx(expected)


def test_apa_from_embeddings_identity():
    rng = np.random.default_rng(0)
    r, rp = rng.normal(size=(40, 6)), rng.normal(1.0, 1.0, size=(40, 6))
    res = apa_from_embeddings(r, r, rp)
    assert res.apa == 1.0 and res.fad_candidate_matched == pytest.approx(0.0, abs=1e-9)
    assert apa_from_embeddings(rp, r, rp).apa == pytest.approx(0.0, abs=1e-9)  # round-off differs by CPU
    assert res.n == 40 and set(res.as_dict()) >= {"apa", "fad_matched_mismatched"}


# ------------------------------------------------------------------------------ APA on audio


def test_embed_mixes_batches_and_checks_shape(pairs):
    emb = FeatureEmbedder()
    mixes = [pairs[0][0][:, :SR], pairs[0][1][:, :SR], pairs[0][2][:, : SR // 2]]
    out = embed_mixes(emb, mixes, SR, batch_size=2)
    assert out.shape == (3, 16)
    np.testing.assert_allclose(out[2], embed_mixes(emb, mixes[2:], SR)[0])

    class Bad:
        def embed_audio(self, audio):
            return torch.zeros(audio.shape[0])

    with pytest.raises(InputError, match="expected"):
        embed_mixes(Bad(), mixes, SR)
    with pytest.raises(InputError, match="embed_audio"):
        embed_mixes(object(), mixes, SR)


@pytest.fixture(scope="module")
def reference(pairs):
    contexts, stems = pairs
    return build_apa_reference(FeatureEmbedder(), contexts, stems, SR, seed=0)


def test_apa_reference_layout(pairs, reference):
    assert len(reference.context_windows) == 24 and reference.groups.tolist() == list(range(24))
    assert reference.matched.shape == reference.mismatched.shape == (24, 16)
    assert reference.context_lufs.shape == (24,) and np.all(reference.context_lufs > -70.0)


def test_apa_true_stems_is_one(pairs, reference):
    contexts, stems = pairs
    true = apa_score(FeatureEmbedder(), reference, contexts, stems)
    assert true.apa == 1.0 and true.n == 24
    assert true.fad_candidate_matched == pytest.approx(0.0, abs=1e-9)
    assert true.fad_matched_mismatched > 0.0


def test_apa_close_stems_high_and_random_pairings_low(pairs, reference):
    contexts, stems = pairs
    embedder = FeatureEmbedder()
    late = [np.pad(s, ((0, 0), (960, 0)))[:, : s.shape[1]] for s in stems]  # played 20 ms late
    close = apa_score(embedder, reference, contexts, late)
    assert close.apa > 0.9
    shuffled = [stems[i] for i in derangement(len(stems), seed=123)]  # another random pairing
    random = apa_score(embedder, reference, contexts, shuffled)
    assert random.apa < 0.3
    assert random.fad_candidate_matched > 3 * close.fad_candidate_matched


def test_accompaniment_prompt_adherence_one_call_is_seeded(pairs):
    contexts, stems = (p[:4] for p in pairs)
    cands = stems[1:] + stems[:1]
    first = accompaniment_prompt_adherence(FeatureEmbedder(), contexts, stems, cands, SR, seed=2)
    assert first == accompaniment_prompt_adherence(FeatureEmbedder(), contexts, stems, cands, SR, seed=2)
    assert 0.0 <= first.apa <= 1.0 and first.n == 4


def test_apa_input_errors(pairs, reference):
    contexts, stems = pairs
    with pytest.raises(InputError, match="as many"):
        accompaniment_prompt_adherence(FeatureEmbedder(), contexts, stems, stems[:3], SR)
    with pytest.raises(InputError, match="at least 2"):
        accompaniment_prompt_adherence(FeatureEmbedder(), contexts[:1], stems[:1], stems[:1], SR)
    with pytest.raises(InputError, match="do not match"):
        apa_score(FeatureEmbedder(), reference, contexts[:5], stems[:5])
