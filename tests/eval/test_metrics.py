"""Distribution metrics against cases with known answers."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.stats
import torch

from diffariff.errors import InputError
from diffariff.eval.metrics import (
    KD_REPORT_SCALE,
    batch_indices,
    batched_distribution_metrics,
    clap_score,
    density_coverage,
    fad,
    frechet_distance,
    kernel_distance,
    knn_radii,
    mean_and_ci,
    paired_cosine,
    pca_project,
    per_batch,
)


def _gauss(n: int, d: int, mean: float = 0.0, std: float = 1.0, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(mean, std, size=(n, d))


# ----------------------------------------------------------------------------------------- FAD


def test_fad_identical_sets_is_zero():
    x = _gauss(300, 16)
    assert fad(x, x) == pytest.approx(0.0, abs=1e-8)
    assert fad(x, x, method="sqrtm") == pytest.approx(0.0, abs=1e-6)


def test_frechet_closed_form_isotropic():
    # N(m1, s1^2 I) vs N(m2, s2^2 I): |m1 - m2|^2 + d (s1 - s2)^2.
    d = 12
    m1, m2 = np.full(d, 0.5), np.linspace(-1.0, 1.0, d)
    s1, s2 = 0.7, 1.9
    expected = float(np.sum((m1 - m2) ** 2) + d * (s1 - s2) ** 2)
    for method in ("eigh", "sqrtm"):
        got = frechet_distance(m1, s1**2 * np.eye(d), m2, s2**2 * np.eye(d), method=method)
        assert got == pytest.approx(expected, rel=1e-9)


def test_fad_from_samples_approaches_closed_form():
    d = 6
    a = _gauss(20_000, d, mean=0.0, std=1.0, seed=1)
    b = _gauss(20_000, d, mean=0.5, std=2.0, seed=2)
    expected = d * 0.5**2 + d * (1.0 - 2.0) ** 2  # 7.5
    assert fad(a, b) == pytest.approx(expected, rel=0.03)


def test_eigh_and_sqrtm_agree_on_full_rank_covariances():
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=(8, 8)), rng.normal(size=(8, 8))
    s1, s2 = a @ a.T + 0.1 * np.eye(8), b @ b.T + 0.1 * np.eye(8)
    m1, m2 = rng.normal(size=8), rng.normal(size=8)
    e = frechet_distance(m1, s1, m2, s2, method="eigh")
    s = frechet_distance(m1, s1, m2, s2, method="sqrtm")
    assert e == pytest.approx(s, rel=1e-7)
    # Against the definition with scipy on the product directly.
    import scipy.linalg

    ref = np.sum((m1 - m2) ** 2) + np.trace(s1 + s2) - 2 * np.trace(scipy.linalg.sqrtm(s1 @ s2).real)
    assert e == pytest.approx(ref, rel=1e-7)


def test_fad_with_fewer_samples_than_dimensions():
    x, y = _gauss(10, 64, seed=4), _gauss(10, 64, mean=1.0, seed=5)
    value = fad(x, y)
    assert np.isfinite(value) and value > 30.0  # mean shift alone contributes ~64
    assert fad(x, x) == pytest.approx(0.0, abs=1e-8)
    assert np.isfinite(fad(x, y, method="sqrtm"))


def test_fad_input_errors():
    with pytest.raises(InputError, match="sizes differ"):
        fad(_gauss(5, 3), _gauss(5, 4))
    with pytest.raises(InputError, match="at least 2 rows"):
        fad(_gauss(1, 3), _gauss(5, 3))
    with pytest.raises(InputError, match="2-D"):
        fad(np.zeros(5), _gauss(5, 3))
    bad = _gauss(5, 3)
    bad[0, 0] = np.nan
    with pytest.raises(InputError, match="NaN"):
        fad(bad, _gauss(5, 3))
    with pytest.raises(InputError, match="unknown"):
        frechet_distance(np.zeros(2), np.eye(2), np.zeros(2), np.eye(2), method="magic")


# ------------------------------------------------------------------------------------------ KD


def test_kd_hand_computed():
    # k(a, b) = (a b / 1 + 1)^3 in 1-D: Kxx off-diag 1, Kyy off-diag 343, Kxy mean 93/4.
    x, y = np.array([[0.0], [1.0]]), np.array([[2.0], [3.0]])
    assert kernel_distance(x, y) == pytest.approx(1.0 + 343.0 - 2.0 * 93.0 / 4.0)


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)  # L2-normalised, like CLAP embeddings


def test_kd_identical_small_and_shift_large():
    x = _unit(_gauss(400, 16, seed=6))
    same = kernel_distance(x, _unit(_gauss(400, 16, seed=7)))
    # Unbiased MMD^2 of a set with itself is -2 (mean diagonal - mean off-diagonal kernel) / N < 0.
    assert -2e-3 < kernel_distance(x, x) < 0.0
    assert abs(same) < 2e-3
    shifted = kernel_distance(x, _unit(_gauss(400, 16, mean=0.3, seed=8)))
    assert shifted > 10 * abs(same)
    assert KD_REPORT_SCALE == 1e3


def test_kd_subsets_seeded_and_full_when_subset_covers_all():
    x, y = _gauss(60, 8, seed=9), _gauss(50, 8, mean=0.3, seed=10)
    assert kernel_distance(x, y, subset_size=1000, n_subsets=3) == pytest.approx(kernel_distance(x, y))
    a = kernel_distance(x, y, subset_size=20, n_subsets=10, seed=1)
    assert a == kernel_distance(x, y, subset_size=20, n_subsets=10, seed=1)
    assert a != kernel_distance(x, y, subset_size=20, n_subsets=10, seed=2)


# --------------------------------------------------------------------------- density / coverage


def test_density_coverage_hand_computed():
    real = np.array([[0.0], [1.0], [2.0], [3.0], [10.0]])
    np.testing.assert_allclose(knn_radii(real, k=1), [1.0, 1.0, 1.0, 1.0, 7.0])
    # 0.5 lies in the balls of 0 and 1; 9 lies in the ball of 10 only.
    den, cov = density_coverage(real, np.array([[0.5], [9.0]]), k=1)
    assert den == pytest.approx(3 / 2)
    assert cov == pytest.approx(3 / 5)
    # Balls are open: a fake exactly at the radius (distance 7 from 10) is outside.
    assert density_coverage(real, np.array([[17.0]]), k=1) == (0.0, 0.0)


def test_density_coverage_constructed_sets():
    real = _gauss(200, 8, seed=11)
    den, cov = density_coverage(real, real)
    assert cov == 1.0 and den >= 1.0 / 5
    assert density_coverage(real, real + 100.0) == (0.0, 0.0)
    fake = _gauss(50, 8, mean=0.5, seed=20)
    assert density_coverage(real, fake, radii=knn_radii(real)) == density_coverage(real, fake)


def test_density_coverage_same_distribution():
    # Naeem et al.: for identical distributions E[density] = 1 and E[coverage] ~ 1 - 2^-k.
    real, fake = _gauss(1000, 8, seed=12), _gauss(1000, 8, seed=13)
    den, cov = density_coverage(real, fake, k=5)
    assert 0.85 < den < 1.15
    assert 0.93 < cov < 1.0


def test_density_coverage_needs_more_reals_than_k():
    with pytest.raises(InputError, match="at least 6 rows"):
        density_coverage(_gauss(5, 3), _gauss(5, 3), k=5)


# --------------------------------------------------------------------------------- CLAP score


def test_clap_score_cosine():
    a = np.array([[1.0, 0.0], [0.0, 2.0]])
    b = np.array([[1.0, 1.0], [0.0, 5.0]])
    np.testing.assert_allclose(paired_cosine(a, b), [1 / np.sqrt(2), 1.0])
    assert clap_score(a, b) == pytest.approx((1 / np.sqrt(2) + 1.0) / 2)
    assert clap_score(torch.tensor(a), -torch.tensor(a)) == pytest.approx(-1.0)
    with pytest.raises(InputError, match="same shape"):
        clap_score(a, b[:1])


# ------------------------------------------------------------------------ batching / reporting


def test_mean_and_ci_hand_computed():
    r = mean_and_ci([1.0, 2.0, 3.0])
    half = scipy.stats.t.ppf(0.975, 2) * 1.0 / np.sqrt(3)
    assert r.mean == 2.0 and r.n == 3 and r.half_width == pytest.approx(half)
    assert r.low == pytest.approx(2.0 - half) and r.high == pytest.approx(2.0 + half)
    assert np.isnan(mean_and_ci([4.0]).half_width)
    with pytest.raises(InputError):
        mean_and_ci([])


def test_batch_indices_partition_and_per_batch():
    parts = batch_indices(52, 5, seed=3)
    assert len(parts) == 5
    assert sorted(np.concatenate(parts).tolist()) == list(range(52))
    assert [p.tolist() for p in parts] == [p.tolist() for p in batch_indices(52, 5, seed=3)]
    gen, ref = _gauss(50, 4, seed=14), _gauss(50, 4, seed=15)
    scores = per_batch(clap_score, gen, ref, n_batches=5)
    assert len(scores) == 5
    assert np.mean(scores) == pytest.approx(clap_score(gen, ref))  # equal batch sizes
    with pytest.raises(InputError, match="cannot split"):
        batch_indices(3, 5)


def test_batched_distribution_metrics_ranks_sets():
    ref = _gauss(600, 8, seed=16)
    good = batched_distribution_metrics(_gauss(500, 8, seed=17), ref, n_batches=5)
    bad = batched_distribution_metrics(_gauss(500, 8, mean=1.0, std=1.5, seed=18), ref, n_batches=5)
    assert set(good) == {"fad", "kd", "density", "coverage"}
    assert good["fad"].n == 5
    assert good["fad"].mean < bad["fad"].mean
    assert good["kd"].mean < bad["kd"].mean
    assert good["coverage"].mean > bad["coverage"].mean
    assert good["density"].mean > bad["density"].mean


def test_pca_project():
    rng = np.random.default_rng(19)
    t = rng.normal(size=(100, 1))
    direction = np.array([[3.0, 4.0, 0.0, 0.0]]) / 5.0
    a = t[:50] * direction + 1e-3 * rng.normal(size=(50, 4))
    b = t[50:] * direction + 1e-3 * rng.normal(size=(50, 4))
    proj = pca_project(a, b)
    assert [p.shape for p in proj.points] == [(50, 2), (50, 2)]
    assert proj.explained_variance_ratio[0] > 0.999
    np.testing.assert_allclose(np.abs(proj.components[0]), [0.6, 0.8, 0.0, 0.0], atol=1e-3)
    assert proj.components[0, np.argmax(np.abs(proj.components[0]))] > 0  # fixed sign
    np.testing.assert_allclose(proj.transform(a), proj.points[0])
